"""The OpenAI-compatible HTTP door: a sibling of the Wyoming door over the same engine."""

from .app import HttpServer, HttpState, create_app

__all__ = ["HttpServer", "HttpState", "create_app"]
