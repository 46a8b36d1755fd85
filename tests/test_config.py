"""Settings: precedence defaults < YAML < .env < environment < flags, and clear errors."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from wyoming_orpheus.config import NORMALIZE_CATEGORIES, ConfigError, Settings, declared
from wyoming_orpheus.config.cli import load_settings
from wyoming_orpheus.config.document import render, with_table
from wyoming_orpheus.config.settings import SECTION_OF

REPO = Path(__file__).resolve().parents[1]


def load(
    tmp_path: Path, argv: list[str] | None = None, env: dict[str, str] | None = None
) -> Settings:
    return load_settings(argv or [], env or {}, tmp_path)


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path)
    assert settings.wyoming.uri == "tcp://0.0.0.0:10200"
    assert settings.http.http_port == 5005 and settings.http.http_enabled
    assert (
        settings.sampling.temperature,
        settings.sampling.top_p,
        settings.sampling.repetition_penalty,
    ) == (0.6, 0.9, 1.1)
    assert settings.speech.voice == "tara"
    assert settings.decoder.snac_model == "hubertsiuzdak/snac_24khz"
    assert settings.wyoming.zeroconf is None
    # No LLM server named anywhere: managed mode, with its defaults.
    assert settings.llm.upstreams == ()
    assert settings.managed.llm_gguf == "lex-au/Orpheus-3b-FT-Q8_0.gguf"
    assert settings.managed.llama_server is None and settings.managed.llm_gpu_layers is None
    assert settings.managed.llama_server_args == ()


@pytest.mark.parametrize(
    ("argv", "env", "yaml"),
    [
        (["--llm-url", "http://gpu:8080/v1"], {}, None),
        ([], {"ORPHEUS_LLM_URLS": "http://gpu:8080/v1"}, None),
        ([], {"ORPHEUS_API_URL": "http://gpu:8080/v1"}, None),
        ([], {}, "upstreams: [http://gpu:8080/v1]\n"),
        ([], {}, "llm_urls: [http://gpu:8080/v1]\n"),
        ([], {}, "llm_urls: []\nupstreams: [http://gpu:8080/v1]\n"),
    ],
)
def test_naming_a_server_anywhere_leaves_managed_mode(
    tmp_path: Path, argv: list[str], env: dict[str, str], yaml: str | None
) -> None:
    if yaml is not None:
        argv = [*argv, "--config", write(tmp_path / "c.yaml", yaml)]
    settings = load(tmp_path, argv, env)
    assert [u.url for u in settings.llm.upstreams] == ["http://gpu:8080/v1"]


def test_managed_mode_settings_from_each_source(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.yaml",
        "llm_gguf: /models/orpheus.gguf\nllm_gpu_layers: 20\nllama_server_args: [--threads, '4']\n",
    )
    from_file = load(tmp_path, ["--config", config])
    assert from_file.managed.llm_gguf == "/models/orpheus.gguf"
    assert from_file.managed.llm_gpu_layers == 20
    assert from_file.managed.llama_server_args == ("--threads", "4")
    env = {
        "ORPHEUS_LLAMA_SERVER": "/opt/llama/llama-server",
        "ORPHEUS_LLM_GPU_LAYERS": "all",
        "ORPHEUS_LLAMA_SERVER_ARGS": "--flash-attn on --alias 'my model'",
    }
    from_env = load(tmp_path, [], env)
    assert from_env.managed.llama_server == "/opt/llama/llama-server"
    assert from_env.managed.llm_gpu_layers == 999
    assert from_env.managed.llama_server_args == ("--flash-attn", "on", "--alias", "my model")
    flags = [
        "--llm-gguf=owner/repo:Q4_K_M",
        "--llm-gpu-layers=0",
        "--llama-server-arg=--threads 8",
        "--llama-server-arg=--no-mmap",
    ]
    from_flags = load(tmp_path, flags, env)
    assert from_flags.managed.llm_gguf == "owner/repo:Q4_K_M"
    assert from_flags.managed.llm_gpu_layers == 0
    assert from_flags.managed.llama_server_args == ("--threads", "8", "--no-mmap")  # flags win


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.yaml", "temperature: 0.5\ntop_p: 0.5\nvoice: leo\nhttp_port: 6000\n"
    )
    write(tmp_path / ".env", "ORPHEUS_TOP_P=0.7\nORPHEUS_VOICE=dan\nORPHEUS_HTTP_PORT=6001\n")
    env = {"ORPHEUS_VOICE": "zoe", "ORPHEUS_HTTP_PORT": "6002"}
    settings = load(tmp_path, ["--config", config, "--http-port", "6003"], env)
    assert settings.sampling.temperature == 0.5  # YAML over default
    assert settings.sampling.top_p == 0.7  # .env over YAML
    assert settings.speech.voice == "zoe"  # environment over .env
    assert settings.http.http_port == 6003  # flag over environment


def test_legacy_environment_names_keep_working(tmp_path: Path) -> None:
    env = {
        "ORPHEUS_API_URL": "http://gpu:1234/v1/completions",
        "ORPHEUS_API_TIMEOUT": "60",
        "ORPHEUS_MAX_TOKENS": "4096",
        "ORPHEUS_TEMPERATURE": "0.7",
        "ORPHEUS_TOP_P": "0.95",
        "ORPHEUS_HOST": "127.0.0.1",
        "ORPHEUS_PORT": "5006",
    }
    settings = load(tmp_path, env=env)
    assert settings.llm.upstreams[0].url == "http://gpu:1234/v1/completions"
    assert settings.requests.request_timeout == 60 and settings.sampling.max_tokens == 4096
    assert (settings.sampling.temperature, settings.sampling.top_p) == (0.7, 0.95)
    assert (settings.http.http_host, settings.http.http_port) == ("127.0.0.1", 5006)


def test_flags(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        [
            "--uri",
            "tcp://127.0.0.1:10300",
            "--zeroconf",
            "--no-http",
            "--llm-url",
            "http://a:8080/v1",
            "--llm-url",
            "http://b:11434",
            "--llm-api",
            "ollama",
            "--llm-model",
            "legraphista/orpheus",
            "--llm-slots",
            "2",
            "--snac-model",
            "/models/snac",
            "--device",
            "cpu",
            "--voice",
            "leah",
            "--debug",
        ],
    )
    assert settings.wyoming.uri == "tcp://127.0.0.1:10300"
    assert (
        settings.wyoming.zeroconf == ""
        and not settings.http.http_enabled
        and settings.process.debug
    )
    assert [u.url for u in settings.llm.upstreams] == ["http://a:8080/v1", "http://b:11434"]
    assert {u.api for u in settings.llm.upstreams} == {"ollama"}
    assert settings.llm.upstreams[0].model == "legraphista/orpheus"
    assert [u.slots for u in settings.llm.upstreams] == [2, 2]  # every llm_* reaches them
    assert (settings.decoder.snac_model, settings.decoder.device, settings.speech.voice) == (
        "/models/snac",
        "cpu",
        "leah",
    )
    assert load(tmp_path, ["--zeroconf", "kitchen"]).wyoming.zeroconf == "kitchen"


def test_yaml_upstreams_with_voice_bindings(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.yaml",
        "llm_api_key: secret\nllm_slots: 2\nupstreams:\n  - http://en:8080/v1\n"
        "  - {url: 'http://de:8080', voices: [de], prompt_format: audio, slots: 1}\n",
    )
    settings = load(tmp_path, ["--config", config])
    english, german = settings.llm.upstreams
    assert english.voices == () and english.api_key == "secret" and english.slots == 2
    assert german.voices == ("de",) and german.prompt_format == "audio" and german.slots == 1
    # A higher layer's --llm-url replaces the YAML list.
    assert [
        u.url for u in load(tmp_path, ["--config", config, "--llm-url", "http://x:1"]).llm.upstreams
    ] == ["http://x:1"]


def test_normalize_takes_all_none_a_list_or_exclusions(tmp_path: Path) -> None:
    assert load(tmp_path).speech.normalize == frozenset(NORMALIZE_CATEGORIES)
    assert load(tmp_path, ["--normalize", "none"]).speech.normalize == frozenset()
    assert load(tmp_path, ["--normalize", "numbers,units"]).speech.normalize == {"numbers", "units"}
    without = load(tmp_path, env={"ORPHEUS_NORMALIZE": "-urls,-dates"}).speech.normalize
    assert without == frozenset(NORMALIZE_CATEGORIES) - {"urls", "dates"}
    # As a flag, removals take the = form (the help says so): "-urls" alone reads as a flag.
    assert load(tmp_path, ["--normalize=-urls,-dates"]).speech.normalize == without
    config = write(tmp_path / "c.yaml", "normalize: false\nnormalize_urls: drop\n")
    settings = load(tmp_path, ["--config", config])
    assert settings.speech.normalize == frozenset() and settings.speech.normalize_urls == "drop"


def test_custom_voices_are_declared_on_their_upstream(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.yaml",
        "upstreams:\n"
        "  - http://en:8080/v1\n"
        "  - url: http://finetune:8080/v1\n"
        "    voices:\n"
        "      - {name: bernd, language: de, gender: male, description: Our neighbour}\n"
        "      - {name: ada, language: en-GB}\n"
        "      - jana\n",
    )
    english, tuned = load(tmp_path, ["--config", config]).llm.upstreams
    assert english.custom_voices == ()
    assert tuned.voices == ("jana",)
    bernd, ada = tuned.custom_voices
    assert (bernd.name, bernd.language, bernd.gender, bernd.description) == (
        "bernd", "de", "male", "Our neighbour"
    )  # fmt: skip
    assert (ada.language, ada.description) == ("en-GB", "ada (en-GB)")


def test_the_documented_example_config_loads(tmp_path: Path) -> None:
    settings = load(tmp_path, ["--config", str(REPO / "config" / "wyoming-orpheus.yaml")])
    assert settings.speech.voice == "tara"


@pytest.mark.parametrize(
    ("argv", "env", "yaml_text", "message"),
    [
        (
            ["--http-port", "70000"],
            {},
            None,
            "http_port='70000' (from flag --http-port) must be between 1 and 65535",
        ),
        (
            [],
            {"ORPHEUS_TEMPERATURE": "-1"},
            None,
            "temperature='-1' (from environment ORPHEUS_TEMPERATURE) must be between 0 and 2",
        ),
        (
            ["--llm-url", "localhost:8080"],
            {},
            None,
            "(from flag --llm-url) must be an http:// or https:// URL",
        ),
        (
            ["--uri", "http://x"],
            {},
            None,
            "uri='http://x' (from flag --uri) must start with tcp://",
        ),
        (
            ["--device", "tpu"],
            {},
            None,
            "device='tpu' (from flag --device) must be one of auto, cpu, cuda, mps",
        ),
        ([], {}, "colour: blue\n", "unknown setting 'colour' in config file"),
        ([], {}, "max_tokens: lots\n", "max_tokens='lots' (from config file"),
        (
            [],
            {},
            "upstreams: [{url: 'http://a', voice: [de]}]\n",
            "unknown setting 'voice' in upstreams[0]",
        ),
        ([], {}, "- a list\n", "must hold a mapping of settings"),
        (
            ["--llm-gpu-layers", "most"],
            {},
            None,
            "llm_gpu_layers='most' (from flag --llm-gpu-layers) must be an integer",
        ),
        (
            [],
            {"ORPHEUS_LLAMA_SERVER_ARGS": "--alias 'open"},
            None,
            "(from environment ORPHEUS_LLAMA_SERVER_ARGS) is not a valid option string",
        ),
        (["--normalize", "numbers,weather"], {}, None, "names unknown categories (weather)"),
        (["--normalize", "numbers,-urls"], {}, None, "or only ones to remove"),
        (["--output-gain-db", "40"], {}, None, "must be between -30 and 20"),
        (
            [],
            {},
            "upstreams: [{url: 'http://a', voices: [{name: x}]}]\n",
            "voice x needs a language code",
        ),
        (
            [],
            {},
            "upstreams: [{url: 'http://a', voices: [{name: x, language: en, age: 3}]}]\n",
            "unknown voice keys age",
        ),
        ([], {}, "key: [unclosed\n", "is not valid YAML"),
    ],
)
def test_invalid_values_name_the_setting_and_the_source(
    tmp_path: Path, argv: list[str], env: dict[str, str], yaml_text: str | None, message: str
) -> None:
    if yaml_text is not None:
        argv = [*argv, "--config", write(tmp_path / "c.yaml", yaml_text)]
    with pytest.raises(ConfigError) as info:
        load(tmp_path, argv, env)
    assert message in str(info.value)


def test_unreadable_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file .*missing.yaml"):
        load(tmp_path, ["--config", str(tmp_path / "missing.yaml")])


def test_no_module_reads_the_environment_at_import() -> None:
    code = (
        "import os; os.environ['ORPHEUS_VOICE']='leo';"
        "import wyoming_orpheus.config as c; assert c.Settings().speech.voice == 'tara'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--http-port", "70000"], "http_port"),
        (["--config", "/nonexistent/x.yaml"], "cannot read config file"),
        (["--temperature", "-1"], "temperature"),
    ],
)
def test_a_bad_setting_exits_2_with_one_line(
    tmp_path: Path, argv: list[str], fragment: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wyoming_orpheus", *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith("wyoming-orpheus: error:") and fragment in lines[0]
    )


def test_help_documents_every_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wyoming_orpheus", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for flag in (
        "--uri",
        "--zeroconf",
        "--http-host",
        "--http-port",
        "--no-http",
        "--llm-url",
        "--llm-api",
        "--llm-model",
        "--snac-model",
        "--device",
        "--voice",
        "--debug",
        "--log-format",
        "--version",
        "--config",
    ):
        assert flag in result.stdout


def test_a_url_with_a_password_and_an_api_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="cannot carry both"):
        load_settings(
            ["--llm-url", "http://u:p@gpu:8080/v1", "--llm-api-key", "k"], {}, Path("/nonexistent")
        )


def test_the_documented_config_file_is_the_one_the_declarations_write() -> None:
    # NOTE: issue 25: each setting is declared once (its section in config/); the file is
    # generated from the declarations, so it cannot drift from the defaults or the help.
    written = (REPO / "config" / "wyoming-orpheus.yaml").read_text(encoding="utf-8")
    assert written == render(), (
        "config/wyoming-orpheus.yaml is stale: run "
        "python -m wyoming_orpheus.config.document > config/wyoming-orpheus.yaml"
    )
    # And it says what the server does: loaded, the file gives the built-in defaults.
    assert load(REPO, ["--config", str(REPO / "config" / "wyoming-orpheus.yaml")]) == Settings()


def test_every_setting_is_declared_with_its_parser_help_and_flag() -> None:
    names = {spec.name for spec in declared()}
    fields = {
        f.name
        for section in dataclasses.fields(Settings)
        for f in dataclasses.fields(section.default_factory())  # type: ignore[misc]
    }
    assert fields <= names, "a section field without a declaration (config/declare.setting)"
    assert len(fields) == len(SECTION_OF), "two sections declare the same key"
    result = subprocess.run(
        [sys.executable, "-m", "wyoming_orpheus", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    flags = [spec.flag for spec in declared() if spec.flag is not None]
    assert len(flags) >= len(names) - 1  # only `upstreams` (a YAML structure) has no flag
    for flag in flags:
        assert flag in result.stdout
    # The help states the declared default, never a restated one.
    assert "Sampling temperature. (0-2; default: 0.6) [env ORPHEUS_TEMPERATURE]" in " ".join(
        result.stdout.split()
    )


def test_the_readme_states_the_declared_flags_and_limits() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme == with_table(readme), "README's settings table is stale: run " + (
        "python -m wyoming_orpheus.config.document"
    )
    # Every limit row that names one setting states that setting's default.
    limits = readme[readme.index("### Limits") :]
    limits = limits[: limits.index("\n\n", limits.index("|---"))]
    defaults = {spec.name: spec.default for spec in declared()}
    checked = 0
    for row in limits.splitlines()[2:]:
        setting = row.rstrip(" |").rsplit("|", 1)[-1].strip().strip("`")
        value = defaults.get(setting)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            assert f"{value:g}" in row, f"README's limits table: {setting} is {value:g}: {row}"
            checked += 1
    assert checked >= 6


@pytest.mark.slow
def test_mypy_checks_each_field_against_its_parser(tmp_path: Path) -> None:
    # Issue 30: setting() returned Any, so a field's type and its parser could disagree
    # unnoticed. Now it is typed by its parser: mypy refuses these three and takes the fourth.
    wrong = tmp_path / "wrong_section.py"
    wrong.write_text(
        "from dataclasses import dataclass\n"
        "from wyoming_orpheus.config.declare import setting\n"
        "from wyoming_orpheus.config.values import float_in, int_in\n"
        "@dataclass(frozen=True)\n"
        "class Wrong:\n"
        '    a: str = setting(5, parse=int_in(1, 10), help="")\n'
        '    b: int = setting(None, parse=int_in(1, 10, optional=True), help="")\n'
        '    c: bool = setting(True, parse=float_in(0, 1), help="")\n'
        '    d: int = setting(3, parse=int_in(1, 10), help="")\n',
        encoding="utf-8",
    )
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent", str(wrong)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert [int(line.split(":")[1]) for line in errors] == [6, 7, 8], checked.stdout
