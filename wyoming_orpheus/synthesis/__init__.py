"""One request, end to end: text -> LLM tokens -> frames -> PCM, its slot, its report."""

from ..upstream.completion import Sampling
from .synthesizer import BusyError, Synthesizer, VoiceError

__all__ = ["BusyError", "Sampling", "Synthesizer", "VoiceError"]
