"""The deployment files: the compose file's two instances, started the way its image starts
them (``headend serve`` with ``HEADEND_CONFIG``, the admin key from a secret file, the store
and Redis URLs from the environment), on a real PostgreSQL and Redis on loopback, without
Docker (these machines cannot pull base images). They share keys, sessions and limits, and
Prometheus' scrape configuration reaches both."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import ROOT, RunningServer, start_server, stop_server
from tests.postgres import fresh_database

pytestmark = pytest.mark.e2e

COMPOSE = ROOT / "deploy" / "compose"
SECRET = "compose-admin-key-0123456789abcdef"


def dockerfile_command() -> list[str]:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("ENTRYPOINT"):
            command: list[str] = json.loads(line.removeprefix("ENTRYPOINT"))
            return command
    raise AssertionError("the Dockerfile has no ENTRYPOINT")


def test_the_compose_files_agree() -> None:
    compose = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    services = compose["services"]
    instances = [name for name in services if name.startswith("headend-")]
    assert len(instances) == 2
    for name in instances:
        service = services[name]
        assert service["environment"]["HEADEND_CONFIG"] == "/etc/headend/headend.yaml"
        assert "admin_key" in service["secrets"]
        assert service["stop_grace_period"] == "40s"  # above the 30 s drain
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    assert {"postgres", "redis", "prometheus"} <= set(services)
    scrape = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["static_configs"][0]["targets"] == [f"{name}:8080" for name in instances]
    assert scrape["authorization"]["credentials_file"] == "/run/secrets/admin_key"
    assert dockerfile_command()[:2] == ["headend", "serve"]
    assert "USER headend" in (ROOT / "Dockerfile").read_text()  # never root


def instance(tmp_path: Path, name: str, postgres_url: str, redis_url: str) -> RunningServer:
    """One compose instance, as its container starts it (on loopback here)."""
    secret = tmp_path / "admin_key"
    secret.write_text(SECRET + "\n")
    (tmp_path / name).mkdir()
    (tmp_path / name / "agents").mkdir()  # none of its own: the packaged agents, as in the image
    return start_server(
        tmp_path / name / "agents",
        tmp_path / f"{name}.log",
        env={
            "HEADEND_CONFIG": str(COMPOSE / "headend.yaml"),
            "HEADEND_ADMIN_KEY_FILE": str(secret),
            "STORE_URL": postgres_url,
            "REDIS_URL": redis_url,
        },
        access_log=True,
    )


def test_two_instances_share_keys_sessions_and_limits(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    store = fresh_database(postgres_url, "compose")
    one = instance(tmp_path, "headend-1", store, redis_url)
    two = instance(tmp_path, "headend-2", store, redis_url)
    try:
        admin = {"Authorization": f"Bearer {SECRET}"}
        created = httpx.post(
            one.base_url + "/admin/keys",
            json={"name": "compose", "scopes": ["chat", "sessions:read"], "rpm": 3},
            headers=admin,
        )
        assert created.status_code == 200, created.text
        key = {"Authorization": f"Bearer {created.json()['secret']}"}

        def ask(server: RunningServer, **extra: object) -> httpx.Response:
            return httpx.post(
                server.base_url + "/v1/chat/completions",
                json={
                    "model": "assistant",
                    "messages": [{"role": "user", "content": "Hi"}],
                    "max_tokens": 2,
                    **extra,
                },
                headers=key,
                timeout=60,
            )

        first = ask(one)  # a key made on one instance works on the other
        assert first.status_code == 200, first.text
        session = first.json()["session_id"]
        second = ask(two, session_id=session)  # and the session continues there
        assert second.status_code == 200, second.text
        stored = httpx.get(two.base_url + f"/v1/sessions/{session}", headers=key)
        assert stored.status_code == 200
        assert len(stored.json()["messages"]) == 4  # both turns, in the shared store
        assert ask(one).status_code == 200
        refused = ask(two)  # the key's 3 a minute, counted across both instances
        assert refused.status_code == 429
        for server in (one, two):  # what Prometheus scrapes, with the secret file's key
            scraped = httpx.get(server.base_url + "/metrics", headers=admin)
            assert scraped.status_code == 200
            assert "headend_requests_total" in scraped.text
    finally:
        stop_server(one)
        stop_server(two)
    lines = [json.loads(line) for line in one.output().splitlines() if line.strip()]
    assert any(line["logger"] == "headend.access" for line in lines)  # JSON logs, as configured
    assert SECRET not in one.output() + two.output()
