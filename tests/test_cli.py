"""The headend command: check and agents."""

from __future__ import annotations

from pathlib import Path

import pytest

from headend.cli import main


def test_check_passes_on_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HEADEND_CONFIG", raising=False)
    assert main(["check"]) == 0
    assert "2 agent(s) from packaged agents" in capsys.readouterr().out


def test_check_fails_naming_file_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "bad.md").write_text("---\ntemprature: 1\n---\nhi\n")
    (tmp_path / "headend.yaml").write_text("server:\n  port: 9000\n")
    assert main(["check"]) == 1
    err = capsys.readouterr().err
    assert f"{agents / 'bad.md'}: temprature: unknown key" in err


def test_check_refuses_a_schedule_that_is_not_five_cron_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    agents = tmp_path / "agents"
    agents.mkdir()
    schedule = '---\nschedule:\n  - cron: "0 9 * *"\n    input: Go.\n---\nhi\n'
    (agents / "digest.md").write_text(schedule)
    (tmp_path / "headend.yaml").write_text("server:\n  port: 9000\n")
    assert main(["check"]) == 1
    err = capsys.readouterr().err
    assert f"{agents / 'digest.md'}: schedule.0.cron" in err
    assert "five fields" in err


def test_check_refuses_a_webhook_without_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "agents").mkdir()
    config = "webhooks:\n  - url: https://hooks.example.com/x\n    secret: ''\n"
    (tmp_path / "headend.yaml").write_text(config)
    assert main(["check"]) == 1
    assert "webhooks[0].secret: empty" in capsys.readouterr().err


def test_agents_lists_file_and_api_agents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from headend.store.sqlite import SqliteStore

    async def seed() -> None:
        store = SqliteStore(tmp_path / "headend.db")
        await store.start()
        text = "---\ndescription: Answers FAQs.\nmodel: local\n---\nBe brief.\n"
        await store.create_agent("faq", text, "key_1", 1.0)
        version = await store.record_agent_version("faq", text, "api", "key_1", 2.0)
        await store.publish_agent("faq", version.version, "key_1", 2.0, text)
        await store.create_agent("wip", "---\nmodel: local\n---\nNot yet.\n", "key_1", 3.0)
        await store.close()

    asyncio.run(seed())
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HEADEND_CONFIG", raising=False)
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "scout.md").write_text("---\ndescription: Looks around.\nmodel: local\n---\nhi\n")
    assert main(["agents", "--agents", str(agents)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["ID", "ORIGIN", "MODEL", "DESCRIPTION"]
    assert out[1].split() == ["scout", "file", "local", "Looks", "around."]
    assert out[2].split() == ["faq", "api", "v1", "local", "Answers", "FAQs."]
    assert out[3].split() == ["wip", "api", "(draft", "only)", "local"]


def test_sessions_prune_deletes_sessions_idle_past_the_ttl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from headend.store.sqlite import SqliteStore

    async def seed() -> None:
        store = SqliteStore(tmp_path / "h.db")
        await store.start()
        for name in ("a", "b"):
            await store.create_session(name, None, "chat", {})
        await store.close()

    asyncio.run(seed())
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "headend.yaml"
    config.write_text("store: sqlite:///h.db\n")
    assert main(["sessions", "prune", "--config", str(config)]) == 1
    assert "no sessions.ttl" in capsys.readouterr().err
    config.write_text("store: sqlite:///h.db\nsessions: {ttl: 30d}\n")
    assert main(["sessions", "prune", "--config", str(config)]) == 0
    assert "deleted 0 session(s)" in capsys.readouterr().out
    assert main(["sessions", "prune", "--config", str(config), "--older-than", "0s"]) == 0
    assert "deleted 2 session(s)" in capsys.readouterr().out


def test_keys_create_list_rotate_revoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "headend.yaml"
    config.write_text("store: sqlite:///h.db\n")
    base = ["--config", str(config)]
    assert (
        main(
            [
                "keys",
                "create",
                *base,
                "--name",
                "ci",
                "--scope",
                "chat",
                "--scope",
                "models:read",
                "--agent",
                "assistant",
                "--expires",
                "30d",
                "--rpm",
                "60",
                "--tpm",
                "40000",
                "--max-concurrency",
                "2",
            ]
        )
        == 0
    )
    key_id, secret = capsys.readouterr().out.split("\n")[:2]
    key_id = key_id.split()[0]
    assert secret.startswith("sk-he-")
    assert main(["keys", "list", *base]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing
    assert "chat,models:read" in listing
    assert "assistant" in listing
    assert secret not in listing
    assert "active" in listing
    assert "rpm 60, tpm 40000, at once 2" in listing
    assert main(["keys", "rotate", *base, key_id]) == 0
    assert capsys.readouterr().out.strip().startswith("sk-he-")
    assert main(["keys", "revoke", *base, key_id]) == 0
    assert main(["keys", "revoke", *base, key_id]) == 1
    assert main(["keys", "create", *base, "--name", "x", "--scope", "root"]) == 1
    assert "unknown scope" in capsys.readouterr().err


def test_keys_create_refuses_agents_nobody_has_unless_it_may_write_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "headend.yaml").write_text(
        'store: sqlite:///h.db\nproviders:\n  up: {type: openai, base_url: "http://x/v1"}\n'
        "  local: {type: llama_cpp}\nmodels:\n  gpt: up/gpt\n"
    )
    base = ["keys", "create", "--config", str(tmp_path / "headend.yaml"), "--name", "k"]
    assert main([*base, "--agent", "asistant"]) == 1  # a typo
    err = capsys.readouterr().err
    assert "error: no agent or model route is named 'asistant'" in err
    assert "known: assistant, clock, gpt" in err
    assert main([*base, "--agent", "assistant", "--agent", "gpt"]) == 0
    # A key that may write agents is limited to the ones it may make, which need not exist.
    assert main([*base, "--agent", "mine", "--scope", "chat", "--scope", "agents:write"]) == 0
    capsys.readouterr()


def test_keys_create_takes_an_agent_made_through_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from headend.store.sqlite import SqliteStore

    async def seed() -> None:
        store = SqliteStore(tmp_path / "h.db")
        await store.start()
        await store.create_agent("wip", "---\nmodel: local\n---\nNot yet.\n", "key_1", 1.0)
        await store.close()

    asyncio.run(seed())
    monkeypatch.chdir(tmp_path)
    (tmp_path / "headend.yaml").write_text("store: sqlite:///h.db\n")
    base = ["keys", "create", "--config", str(tmp_path / "headend.yaml"), "--name", "k"]
    assert main([*base, "--agent", "wip"]) == 0  # only drafted so far, but it is in the store
    assert main([*base, "--agent", "wop"]) == 1
    assert "known: assistant, clock, wip" in capsys.readouterr().err


def test_keys_create_refuses_limits_that_are_not_positive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "headend.yaml"
    config.write_text("store: sqlite:///h.db\n")
    with pytest.raises(SystemExit) as exited:
        main(["keys", "create", "--config", str(config), "--name", "x", "--rpm", "0"])
    assert exited.value.code == 2
    assert "not a positive whole number" in capsys.readouterr().err
    base = ["keys", "create", "--config", str(config), "--name", "x"]
    for amount in ("0", "-3", "nan", "inf", "lots"):
        with pytest.raises(SystemExit):
            main([*base, "--budget", amount])
        assert "not a positive amount" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--budget", "5", "--budget-period", "year"])
    assert "invalid choice: 'year'" in capsys.readouterr().err
    assert main([*base, "--budget-period", "day"]) == 1
    assert "budget_period needs a budget" in capsys.readouterr().err


def test_keys_create_with_tool_grants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "headend.yaml"
    config.write_text("store: sqlite:///h.db\n")
    base = ["keys", "create", "--config", str(config)]
    assert main([*base, "--name", "reader", "--read-only"]) == 0
    assert main([*base, "--name", "sums", "--tool", "calculator", "--tool", "agent:x"]) == 0
    assert main([*base, "--name", "bare", "--no-tools"]) == 0
    assert main([*base, "--name", "careful", "--require-approval"]) == 0
    capsys.readouterr()
    assert main(["keys", "list", "--config", str(config)]) == 0
    rows = {line.split()[2]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert " read-only " in rows["reader"]
    assert " calculator,agent:x " in rows["sums"] or " agent:x,calculator " in rows["sums"]
    assert " none " in rows["bare"]
    assert " all+approval " in rows["careful"]  # its calls that do more than read ask first
    assert main([*base, "--name", "x", "--tool", "rm_rf"]) == 1
    assert "unknown tool 'rm_rf'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main([*base, "--name", "x", "--tool", "calculator", "--read-only"])
    assert exited.value.code == 2


def test_keys_create_publishable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "headend.yaml"
    config.write_text("store: sqlite:///h.db\n")
    (tmp_path / "agents").mkdir()
    for agent in ("support", "a"):
        (tmp_path / "agents" / f"{agent}.md").write_text("---\nmodel: local\n---\nHelp.\n")
    base = ["keys", "create", "--config", str(config), "--name", "shop"]
    site = ["--origin", "https://shop.example.com:443", "--origin", "http://localhost:3000"]
    assert main([*base, "--publishable", "--agent", "support", *site, "--visitor-rpm", "5"]) == 0
    key_id, secret, identity = capsys.readouterr().out.splitlines()[:3]
    assert secret.startswith("pk-he-")
    assert identity.startswith("identity secret (for data-user-hash): ")
    assert main(["keys", "list", "--config", str(config)]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert row.startswith(key_id.split()[0])
    assert " chat " in row
    assert " support " in row
    assert " read-only " in row
    assert "rpm 300, visitor rpm 5" in row
    assert "https://shop.example.com,http://localhost:3000" in row  # as browsers send them
    assert main(["keys", "rotate", "--config", str(config), key_id.split()[0]]) == 0
    assert capsys.readouterr().out.startswith("pk-he-")
    for wrong, says in (
        (["--publishable", "--agent", "support"], "at least one origin"),
        (["--publishable", *site], "at least one agent"),
        (["--agent", "support", *site], "for --publishable keys"),
        (["--publishable", "--agent", "a", "--origin", "shop.example.com"], "scheme and host"),
        (["--publishable", "--agent", "a", *site, "--scope", "admin"], "chat scope only"),
    ):
        assert main([*base, *wrong]) == 1
        assert says in capsys.readouterr().err


SECRET_CONFIG = """
providers:
  up: {type: openai, base_url: "https://api.example.com/v1", api_key: "${UPSTREAM_SECRET_X}"}
mcp_servers:
  crm: {url: "https://mcp.example.com/mcp", headers: {Authorization: "Bearer ${MCP_SECRET_X}"}}
models:
  gpt: up/gpt
store: sqlite:///${STORE_DIR_X}/headend.db
"""


def test_commands_that_call_no_provider_start_without_its_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UPSTREAM_SECRET_X", raising=False)
    monkeypatch.delenv("MCP_SECRET_X", raising=False)
    monkeypatch.setenv("STORE_DIR_X", str(tmp_path))
    (tmp_path / "headend.yaml").write_text(SECRET_CONFIG)
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "bot.md").write_text("---\nmodel: gpt\n---\nhi\n")
    for command in (
        ["keys", "create", "--name", "ops", "--scope", "admin"],
        ["keys", "list"],
        ["usage"],
        ["audit"],
        ["sessions", "prune", "--older-than", "1d"],
        ["agents"],
    ):
        assert main(command) == 0, (command, capsys.readouterr().err)
    assert "ops" in capsys.readouterr().out
    assert (tmp_path / "headend.db").is_file()  # the store's own ${VAR} was read

    # Serving and checking need every secret, and name the one missing.
    for command in (["check"], ["serve", "--port", "0"]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert "providers.up.api_key: environment variable UPSTREAM_SECRET_X is not set" in err
        assert "MCP_SECRET_X is not set" in err

    # A variable the store needs is still required by the store's commands.
    monkeypatch.delenv("STORE_DIR_X")
    assert main(["keys", "list"]) == 1
    assert "store: environment variable STORE_DIR_X is not set" in capsys.readouterr().err


def test_check_refuses_what_serve_would_refuse_and_warns_of_dropped_agents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "headend.yaml"
    # A gateway-only config: the packaged agents (on `local`) are not served, and check says so.
    config.write_text('providers:\n  up: {type: openai, base_url: "http://x/v1"}\n')
    assert main(["check", "--config", str(config)]) == 0
    err = capsys.readouterr().err
    assert "warning: the packaged agent 'assistant' is not served" in err
    assert "add a 'local' provider or put agent files in" in err
    # A model file that is not there, and an agent on a model loaded for embeddings only.
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "bot.md").write_text("---\nmodel: emb\n---\nhi\n")
    config.write_text(
        "providers:\n  emb: {type: llama_cpp, embeddings: true}\n"
        "  lm: {type: llama_cpp, model_path: missing.gguf}\n"
    )
    assert main(["check", "--config", str(config)]) == 1
    assert f"providers.lm.model_path: no file at {tmp_path / 'missing.gguf'}" in (
        capsys.readouterr().err
    )
    config.write_text("providers:\n  emb: {type: llama_cpp, embeddings: true}\n")
    assert main(["check", "--config", str(config)]) == 1
    assert "model: provider 'emb' serves embeddings only" in capsys.readouterr().err


def test_help_lists_every_command_in_plain_words(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "``" not in out
    for command in ("serve", "agents", "check", "sessions", "keys", "usage", "audit"):
        assert f"    {command} " in out
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    serve = capsys.readouterr().out
    assert "the least important lines logged" in serve  # --log-level says what it does
    with pytest.raises(SystemExit):
        main(["keys", "create", "--help"])
    assert "default: chat and models:read" in " ".join(capsys.readouterr().out.split())


def test_check_refuses_an_embedding_model_that_is_not_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "reader.md").write_text("---\nknowledge: {embedding: nowhere}\n---\nhi\n")
    (tmp_path / "headend.yaml").write_text("knowledge: {embedding: elsewhere}\n")
    assert main(["check"]) == 1
    err = capsys.readouterr().err
    assert "headend.yaml: knowledge.embedding: 'elsewhere' is neither 'builtin'" in err
    assert f"{agents / 'reader.md'}: knowledge.embedding: 'nowhere' is neither" in err


@pytest.mark.parametrize(
    ("agent", "config", "says"),
    [
        (
            "guardrails:\n  - check: regex\n    patterns: ['(open']\n",
            "",
            "bad.md: guardrails.0.regex.patterns: Value error, pattern '(open' is not a",
        ),
        (
            "guardrails:\n  - check: pii\n    on: [input]\n",
            "",
            "write apply_to, not on (YAML reads an unquoted on: as true)",
        ),
        (
            "tools: [calculator]\nguardrails:\n  - check: tool_calls\n    max: {terminal: 2}\n",
            "",
            "tool_calls limits terminal: not among this agent's tools (calculator)",
        ),
        (
            "guardrails:\n  - {check: judge, model: nowhere, prompt: Is it medical}\n",
            "",
            "bad.md: guardrails.0.model: 'nowhere'",
        ),
        (
            "",
            "guardrails:\n  - {check: hours, timezone: Europe/Paris, open: ['weekdays']}\n",
            "guardrails.0.hours.open: Value error, 'weekdays': write days and hours as",
        ),
        (
            "",
            "guardrails:\n  - {check: judge, model: gone, prompt: x}\n",
            "guardrails.0.model: 'gone'",
        ),
    ],
)
def test_check_validates_every_guardrail_field(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    agent: str,
    config: str,
    says: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "bad.md").write_text(f"---\n{agent}---\nhi\n")
    (tmp_path / "headend.yaml").write_text("server:\n  port: 9000\n" + config)
    assert main(["check"]) == 1
    assert says in capsys.readouterr().err
