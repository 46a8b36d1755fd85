"""Settings: the typed, frozen settings and their loading from defaults, YAML, .env, env, flags."""

from .choices import (
    ALL_GPU_LAYERS,
    DEVICES,
    LLM_APIS,
    LLM_GGUF_DEFAULT,
    LOG_FORMAT_DEFAULT,
    NORMALIZE_CATEGORIES,
    OPENAI_VOICES_DEFAULT,
    PROMPT_FORMATS,
    URL_MODES,
)
from .declare import Spec
from .loading import (
    ENV_PREFIX,
    LAYER_ORDER,
    RawLayer,
    build_settings,
    env_layer,
    ignored_settings,
    read_dotenv,
    read_yaml_file,
)
from .settings import ConfigError, Settings, UpstreamSettings, declared

__all__ = [
    "ALL_GPU_LAYERS",
    "DEVICES",
    "ENV_PREFIX",
    "LAYER_ORDER",
    "LLM_APIS",
    "LLM_GGUF_DEFAULT",
    "LOG_FORMAT_DEFAULT",
    "NORMALIZE_CATEGORIES",
    "OPENAI_VOICES_DEFAULT",
    "PROMPT_FORMATS",
    "URL_MODES",
    "ConfigError",
    "RawLayer",
    "Settings",
    "Spec",
    "UpstreamSettings",
    "build_settings",
    "declared",
    "env_layer",
    "ignored_settings",
    "read_dotenv",
    "read_yaml_file",
]
