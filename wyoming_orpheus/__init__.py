"""Orpheus TTS for Home Assistant (Wyoming) and OpenAI speech clients."""

__version__ = "0.1.0"
