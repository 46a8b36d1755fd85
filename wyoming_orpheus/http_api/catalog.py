"""GET /v1/audio/voices, /v1/voices and /v1/models: what this server offers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..engine import Engine
from ..voices import Voice

# Model names clients send; all of them are Orpheus here.
MODELS = ("orpheus", "tts-1", "tts-1-hd", "gpt-4o-mini-tts")


def _voice(voice: Voice) -> dict[str, Any]:
    return {
        "id": voice.name,
        "name": voice.name,
        "language": voice.language,
        "gender": voice.gender,
        "description": voice.description,
    }


async def audio_voices(request: web.Request, engine: Engine) -> web.Response:
    """List voices as `{"voices": [...]}` (Open WebUI and Kokoro clients read this)."""
    return web.json_response({"voices": [_voice(v) for v in engine.synthesizer.catalog.voices]})


async def voices(request: web.Request, engine: Engine) -> web.Response:
    """List voices as an OpenAI-style list object."""
    data = [{"object": "voice", **_voice(v)} for v in engine.synthesizer.catalog.voices]
    return web.json_response({"object": "list", "data": data})


async def models(request: web.Request, engine: Engine) -> web.Response:
    """List the model names this server answers to."""
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "wyoming-orpheus"}
        for name in MODELS
    ]
    return web.json_response({"object": "list", "data": data})
