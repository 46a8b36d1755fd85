"""The compose files: valid Compose, and every setup wired the way it says (no Docker engine here).

Each setup is read as `docker compose -f ... config` would (tests/compose_model.py), checked
against the Compose specification's JSON schema, and its wyoming-orpheus command is parsed by
the product's own loader; llama.cpp's command lines are checked against the real llama-server's
own list of options.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests import compose_model
from tests.stand_ins.llama_server import options as llama_server_options
from wyoming_orpheus.config import Settings
from wyoming_orpheus.config.cli import load_settings
from wyoming_orpheus.upstream.completion import endpoint_url

DOCKER = Path(__file__).resolve().parents[1] / "docker"
# Each setup: the -f files in order, and the variables it requires (`${VAR:?...}`).
SETUPS: dict[str, tuple[list[str], dict[str, str]]] = {
    "llama.cpp": (["compose.yaml"], {}),
    "vLLM": (["compose.vllm.yaml"], {}),
    "Ollama": (["compose.ollama.yaml"], {}),
    "CPU only": (["compose.cpu.yaml"], {"LLM_URL": "http://127.0.0.1:8080/v1"}),
    "German": (["compose.yaml", "compose.german.yaml"], {"GGUF_REPO_DE": "someone/de-gguf"}),
}
# A request carries at most segment_max_chars of text: ~4000 tokens with its prompt.
TOKENS_PER_REQUEST = 4096


def model_of(setup: str) -> dict[str, Any]:
    files, env = SETUPS[setup]
    return compose_model.load_model([DOCKER / name for name in files], env)


def orpheus_settings(model: dict[str, Any], tmp_path: Path) -> Settings:
    """Parse the wyoming-orpheus command with the product's loader, mounted files mapped back."""
    service = model["services"]["wyoming-orpheus"]
    mounts = {}
    for volume in service["volumes"]:
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            mounts[target] = str((DOCKER / source).resolve())
    args = [mounts.get(arg, arg) for arg in service["command"]]
    return load_settings(args, {}, tmp_path)


def llm_port(service: dict[str, Any]) -> int | None:
    """The loopback port an LLM service listens on (llama.cpp, vLLM: --port; Ollama: env)."""
    command = service.get("command") or []
    if "--port" in command:
        return int(command[command.index("--port") + 1])
    for entry in service.get("environment", []):
        if entry.startswith("OLLAMA_HOST="):
            return int(entry.rsplit(":", 1)[1])
    return None


def dependencies(model: dict[str, Any], name: str) -> set[str]:
    """Every service a service waits for, directly or through others."""
    found: set[str] = set()
    todo = [name]
    while todo:
        for dependency in model["services"][todo.pop()].get("depends_on", {}):
            if dependency not in found:
                found.add(dependency)
                todo.append(dependency)
    return found


def option_value(command: list[str], option: str) -> int:
    return int(command[command.index(option) + 1])


@pytest.mark.parametrize("setup", SETUPS)
def test_every_compose_file_is_valid_compose(setup: str) -> None:
    files, env = SETUPS[setup]
    for name in files:
        document = compose_model.read_file(DOCKER / name, env)
        assert compose_model.schema_errors(document) == [], name
    assert compose_model.schema_errors(model_of(setup)) == []


def test_the_schema_check_catches_a_broken_file() -> None:
    broken = model_of("llama.cpp")
    broken["services"]["llama-cpp"]["deploy"]["resources"]["reservations"]["gpus"] = 1
    broken["services"]["wyoming-orpheus"]["depends_on"]["llama-cpp"]["condition"] = "healthy"
    errors = compose_model.schema_errors(broken)
    assert any("gpus" in error for error in errors)
    assert any("condition" in error for error in errors)


@pytest.mark.parametrize("setup", SETUPS)
def test_wyoming_orpheus_reaches_its_llm_servers_once_they_are_healthy(
    setup: str, tmp_path: Path
) -> None:
    model = model_of(setup)
    settings = orpheus_settings(model, tmp_path)
    assert settings.wyoming.uri == "tcp://0.0.0.0:10200" and settings.http.http_port == 5005
    assert settings.wyoming.zeroconf == ""
    ports = {llm_port(s): name for name, s in model["services"].items() if llm_port(s)}
    waits_for = dependencies(model, "wyoming-orpheus")
    for upstream in settings.llm.upstreams:
        url = urlparse(endpoint_url(upstream))
        if setup == "CPU only":
            assert url.geturl() == SETUPS[setup][1]["LLM_URL"] + "/completions"
            continue
        # Host networking: the LLM server listens on loopback only, not on the LAN.
        assert url.hostname == "127.0.0.1" and url.port in ports, upstream.url
        assert ports[url.port] in waits_for, f"{upstream.url} is not waited for"
    for name, service in model["services"].items():
        assert service["network_mode"] == "host", name
        for dependency, rule in service.get("depends_on", {}).items():
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in model["services"][dependency], dependency


def test_the_german_setup_sends_german_voices_to_the_second_server(tmp_path: Path) -> None:
    settings = orpheus_settings(model_of("German"), tmp_path)
    english, german = settings.llm.upstreams
    assert urlparse(english.url).port == 8080 and english.voices == ()
    assert urlparse(german.url).port == 8081 and german.voices == ("de",)


def test_a_required_variable_stops_compose_with_its_message() -> None:
    with pytest.raises(compose_model.InterpolationError, match="LLM_URL"):
        compose_model.load_model([DOCKER / "compose.cpu.yaml"], {})


@pytest.mark.parametrize("setup", SETUPS)
def test_gpu_setups_reserve_the_gpu_and_build_cuda_torch(setup: str, tmp_path: Path) -> None:
    model = model_of(setup)
    service = model["services"]["wyoming-orpheus"]
    settings = orpheus_settings(model, tmp_path)
    reservations = service.get("deploy", {}).get("resources", {}).get("reservations", {})
    index = service["build"]["args"]["TORCH_INDEX"]
    if settings.decoder.device == "cuda":
        assert reservations["devices"][0]["capabilities"] == ["gpu"]
        assert re.search(r"/whl/cu\d+$", index), index
    else:
        assert settings.decoder.device == "cpu" and not reservations
        assert index.endswith("/whl/cpu") and service["image"].endswith(":cpu")


@pytest.mark.parametrize("setup", SETUPS)
def test_volumes_are_declared_and_mounted_files_exist(setup: str) -> None:
    model = model_of(setup)
    for name, service in model["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).is_file(), f"{name} mounts {source}"
            else:
                assert source in model["volumes"], f"{name} uses undeclared volume {source}"


def test_llama_cpp_command_lines_are_options_of_the_real_llama_server() -> None:
    known = llama_server_options()
    assert "--hf-repo" in known and "--parallel" in known
    for setup in SETUPS:
        for name, service in model_of(setup)["services"].items():
            if "llama.cpp" in service["image"]:
                options = [arg for arg in service["command"] if arg.startswith("-")]
                assert set(options) <= known, f"{setup}/{name}: {set(options) - known}"


@pytest.mark.parametrize("setup", ["llama.cpp", "German"])
def test_llama_cpp_slots_fit_the_streams(setup: str, tmp_path: Path) -> None:
    model = model_of(setup)
    streams = orpheus_settings(model, tmp_path).decoder.max_concurrent
    assert streams is not None
    for name, service in model["services"].items():
        if "llama.cpp" in service["image"]:
            slots = option_value(service["command"], "--parallel")
            context = option_value(service["command"], "--ctx-size")
            # Each answer holds a slot for the segment playing and one for the next segment.
            assert slots >= 2 * streams, name
            assert context // slots >= TOKENS_PER_REQUEST, name
            assert (
                "--hf-repo" in service["command"]
                and "LLAMA_CACHE=/models" in (service["environment"])
            )


def test_vllm_serves_the_model_name_wyoming_orpheus_sends(tmp_path: Path) -> None:
    model = model_of("vLLM")
    command = model["services"]["vllm"]["command"]
    served = command[command.index("--served-model-name") + 1]
    assert orpheus_settings(model, tmp_path).llm.upstreams[0].model == served
    assert int(command[command.index("--max-model-len") + 1]) >= TOKENS_PER_REQUEST


def test_ollama_creates_the_model_wyoming_orpheus_asks_for(tmp_path: Path) -> None:
    model = model_of("Ollama")
    settings = orpheus_settings(model, tmp_path)
    create = model["services"]["ollama-create"]
    assert create["command"][:2] == ["create", settings.llm.upstreams[0].model]
    assert settings.llm.upstreams[0].api == "ollama"
    rule = model["services"]["wyoming-orpheus"]["depends_on"]["ollama-create"]
    assert rule["condition"] == "service_completed_successfully"
    parallel = next(
        e for e in model["services"]["ollama"]["environment"] if "NUM_PARALLEL" in e
    ).split("=")[1]
    assert settings.decoder.max_concurrent is not None
    assert int(parallel) >= 2 * settings.decoder.max_concurrent
    assert settings.llm.upstreams[0].slots == int(parallel)  # planned for what Ollama runs


def test_the_ollama_modelfile_keeps_the_raw_prompt_and_the_sampling() -> None:
    lines = [
        line.strip()
        for line in (DOCKER / "ollama" / "Modelfile").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parameters = {
        line.split()[1]: float(line.split()[2]) for line in lines if line.startswith("PARAMETER")
    }
    defaults = Settings()
    assert lines[0].startswith("FROM hf.co/")
    assert 'TEMPLATE "{{ .Prompt }}"' in lines
    assert parameters["repeat_penalty"] == defaults.sampling.repetition_penalty
    assert parameters["temperature"] == defaults.sampling.temperature
    assert parameters["top_p"] == defaults.sampling.top_p
    assert parameters["num_ctx"] >= TOKENS_PER_REQUEST


def test_every_compose_file_belongs_to_a_checked_setup() -> None:
    checked = {name for files, _ in SETUPS.values() for name in files}
    assert {path.name for path in DOCKER.glob("compose*.yaml")} == checked


@pytest.mark.parametrize(
    "name", [*sorted({f for fs, _ in SETUPS.values() for f in fs}), "common.yaml"]
)
def test_every_variable_is_explained_in_the_file_header(name: str) -> None:
    path = DOCKER / name
    header = "\n".join(
        line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")
    )
    for variable in compose_model.variables(path):
        assert variable in header, f"{name} reads {variable} without explaining it"
