"""headend.yaml: interpolation, defaults and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from headend.config import load_settings
from headend.errors import ConfigError
from headend.providers.registry import builtin_provider_types


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "headend.yaml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, env={})
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8080
    assert settings.server.max_body_bytes == 10 * 1024 * 1024
    assert settings.providers["local"].type == "llama_cpp"


def test_env_interpolation_with_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "server:\n  port: ${PORT}\n  host: ${HOST:-0.0.0.0}\nagents_dir: ${DIR}/agents\n",
    )
    settings = load_settings(path, env={"PORT": "9001", "DIR": "/srv"})
    assert settings.server.port == 9001
    assert settings.server.host == "0.0.0.0"
    assert settings.effective_agents_dir() == Path("/srv/agents")


def test_config_found_through_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 9100\n")
    assert load_settings(None, env={"HEADEND_CONFIG": str(path)}).server.port == 9100


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "agents_dir: my-agents\n")
    assert load_settings(path, env={}).effective_agents_dir() == tmp_path / "my-agents"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server:\n  port: ${NOPE}\n", "server.port: environment variable NOPE is not set"),
        ("server:\n  prot: 1\n", "server.prot: unknown key"),
        ("server:\n  port: high\n", "server.port:"),
        ("server:\n  port: 70000\n", "server.port:"),
        ("bogus: 1\n", "bogus: unknown key"),
        ("server: [1\n", "invalid YAML"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("limits:\n  agent_concurrency: 0\n", "limits.agent_concurrency:"),
        ("limits:\n  queue_timeout: soon\n", "limits.queue_timeout:"),
        ("limits:\n  queue: 5\n", "limits.queue: unknown key"),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("providers:\n  x: {type: teleport}\n", "providers.x.type: unknown provider type"),
        ("providers:\n  x: {type: llama_cpp, n_ctx: -1}\n", "providers.x.n_ctx:"),
        ("providers:\n  x: {type: llama_cpp, colour: red}\n", "providers.x.colour: unknown key"),
        (
            "providers:\n  x: {type: llama_cpp, model_path: missing.gguf}\n",
            "providers.x.model_path: no file at",
        ),
    ],
)
def test_provider_sections_are_validated_by_their_type(
    tmp_path: Path, text: str, expected: str
) -> None:
    settings = load_settings(write(tmp_path, text), env={})
    with pytest.raises(ConfigError) as caught:
        builtin_provider_types().build(settings)
    assert expected in str(caught.value)
    assert str(tmp_path / "headend.yaml") in str(caught.value)


def test_an_empty_model_path_means_the_bundled_model(tmp_path: Path) -> None:
    text = "providers:\n  local: {type: llama_cpp, model_path: '${MODEL:-}'}\n"
    settings = load_settings(write(tmp_path, text), env={})
    provider = builtin_provider_types().build(settings)["local"]
    assert provider.model_path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"  # type: ignore[attr-defined]
    assert provider.model_path.is_file()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mcp_servers:\n  x: {command: a, url: 'http://b'}\n", "mcp_servers.x: Value error"),
        ("mcp_servers:\n  x: {args: [a]}\n", "give either 'command' (stdio) or 'url'"),
        ("mcp_servers:\n  x: {command: a, colour: red}\n", "mcp_servers.x.colour: unknown key"),
    ],
)
def test_mcp_servers_are_validated(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), env={})
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("12h", 43200.0),
        ("30d", 2592000.0),
        ("2w", 1209600.0),
        ("1.5h", 5400.0),
    ],
)
def test_session_ttl_durations(tmp_path: Path, value: str, seconds: float) -> None:
    settings = load_settings(write(tmp_path, f"sessions: {{ttl: '{value}'}}\n"), env={})
    assert settings.sessions.ttl == seconds


def test_a_bad_duration_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sessions\.ttl"):
        load_settings(write(tmp_path, "sessions: {ttl: soon}\n"), env={})


def test_limits_with_durations(tmp_path: Path) -> None:
    path = write(tmp_path, "limits:\n  concurrency: 64\n  queue_timeout: 2m\nredis: ${R}\n")
    settings = load_settings(path, env={"R": "redis://127.0.0.1:6379/0"})
    assert settings.limits.concurrency == 64
    assert settings.limits.queue_timeout == 120.0
    assert settings.limits.agent_concurrency == 4  # as the ai-agent headend runs them
    assert settings.redis == "redis://127.0.0.1:6379/0"


def test_the_admin_key_may_come_from_a_file(tmp_path: Path) -> None:
    """As Docker and Kubernetes hand secrets over: a file, named by HEADEND_ADMIN_KEY_FILE."""
    secret = tmp_path / "admin_key"
    secret.write_text("from-a-file-0123456789abcdef\n")
    settings = load_settings(None, {"HEADEND_ADMIN_KEY_FILE": str(secret)})
    assert settings.server.admin_key == "from-a-file-0123456789abcdef"
    both = {"HEADEND_ADMIN_KEY": "from-env-0123456789", "HEADEND_ADMIN_KEY_FILE": str(secret)}
    assert load_settings(None, both).server.admin_key == "from-env-0123456789"
    for broken in (tmp_path / "missing", tmp_path / "empty"):
        if broken.name == "empty":
            broken.write_text("  \n")
        with pytest.raises(ConfigError) as caught:
            load_settings(None, {"HEADEND_ADMIN_KEY_FILE": str(broken)})
        assert "HEADEND_ADMIN_KEY_FILE" in str(caught.value.problems)
