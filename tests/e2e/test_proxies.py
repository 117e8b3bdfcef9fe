"""headend behind an egress proxy (Debian's tinyproxy on loopback), as a company network
reaches the internet: the upstream over https through a CONNECT tunnel, streams included,
``NO_PROXY`` honoured, a provider's own ``proxy:``, a proxy that refuses named as the cause,
and the agent's ``http_fetch`` and MCP over HTTP going the same way, the SSRF fence checking
the target and not the proxy."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningServer, free_port, stop_server
from tests.daemons import mcp_over_http
from tests.e2e.sites import ADMIN, HI, serve
from tests.providers.test_h1 import certificate
from tests.proxy_server import RunningProxy
from tests.upstream import FakeUpstream, Reply
from tests.web_page import Site

pytestmark = pytest.mark.e2e

CONFIG = """
providers:
  up: {{type: openai, base_url: "{url}/v1", retry: {{attempts: 1}}}}
  refused: {{type: openai, base_url: "{url}/v1", retry: {{attempts: 1}}, proxy: "{refusing}"}}
  own: {{type: openai, base_url: "{url}/v1", retry: {{attempts: 1}}, proxy: "{proxy}"}}
models:
  gpt: up/gpt
  blocked: refused/gpt
  owned: own/gpt
mcp_servers:
  web: {{url: "http://127.0.0.1:{mcp_port}/mcp"}}
"""
AGENTS = {
    "fetcher": "---\nmodel: up/f\ntools: [http_fetch, mcp:web/shout]\n"
    "allow_hosts: [localhost]\n---\nYou fetch.\n",
}


@pytest.fixture(scope="module")
def tls_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeUpstream, Path]]:
    """The fake upstream over https, as OpenAI and Anthropic are; its certificate file."""
    cert, key = certificate(tmp_path_factory.mktemp("tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = FakeUpstream(context)
    server.start()
    yield server, cert
    server.stop()


@pytest.fixture(scope="module")
def mcp_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with mcp_over_http(free_port(), tmp_path_factory.mktemp("mcp") / "pids") as port:
        yield port


def proxied_site(
    root: Path,
    upstream: FakeUpstream,
    cert: Path,
    env: dict[str, str],
    **urls: str | int,
) -> RunningServer:
    (root / "agents").mkdir()
    for name, text in AGENTS.items():
        (root / "agents" / f"{name}.md").write_text(text)
    (root / "headend.yaml").write_text(CONFIG.format(url=upstream.url("px"), **urls))
    # The upstream's certificate is trusted the way an operator adds a company CA.
    return serve(root, "server.log", env={"SSL_CERT_FILE": str(cert), **env})


@pytest.fixture(scope="module")
def behind(
    tls_upstream: tuple[FakeUpstream, Path],
    tinyproxy: RunningProxy,
    refusing: RunningProxy,
    mcp_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningServer]:
    """headend whose environment sends everything through tinyproxy."""
    upstream, cert = tls_upstream
    env = {"HTTPS_PROXY": tinyproxy.url, "HTTP_PROXY": tinyproxy.url, "NO_PROXY": ""}
    server = proxied_site(
        tmp_path_factory.mktemp("behind"),
        upstream,
        cert,
        env,
        proxy=tinyproxy.url,
        refusing=refusing.url,
        mcp_port=mcp_port,
    )
    yield server
    stop_server(server)


def chat(server: RunningServer, model: str, **extra: object) -> httpx.Response:
    return httpx.post(
        server.api + "/chat/completions",
        json={"model": model, "messages": HI, **extra},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=30,
    )


def tunnels(proxy: RunningProxy, upstream: FakeUpstream) -> int:
    return proxy.forwarded(f"CONNECT localhost:{upstream.port}")


def test_the_upstream_is_reached_through_the_environment_s_proxy(
    behind: RunningServer, tls_upstream: tuple[FakeUpstream, Path], tinyproxy: RunningProxy
) -> None:
    upstream, _ = tls_upstream
    upstream.reset()
    before = tunnels(tinyproxy, upstream)
    upstream.script("px", Reply(text="through the tunnel"), Reply(text="one two three"))
    plain = chat(behind, "gpt")
    assert plain.status_code == 200, plain.text
    assert plain.json()["choices"][0]["message"]["content"] == "through the tunnel"
    streamed = chat(behind, "gpt", stream=True)
    assert streamed.status_code == 200
    deltas = [
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in streamed.text.splitlines()
        if line.startswith("data: {") and json.loads(line[6:])["choices"]
    ]
    assert "".join(deltas) == "one two three"
    assert streamed.text.rstrip().endswith("data: [DONE]")
    assert len(upstream.received("px")) == 2
    assert tunnels(tinyproxy, upstream) > before  # through the proxy, kept alive between


def test_no_proxy_and_a_provider_s_own_proxy(
    tls_upstream: tuple[FakeUpstream, Path],
    tinyproxy: RunningProxy,
    refusing: RunningProxy,
    mcp_port: int,
    tmp_path: Path,
) -> None:
    upstream, cert = tls_upstream
    upstream.reset()
    # NO_PROXY names the upstream: direct, but for `own`, whose proxy is its own.
    env = {"HTTPS_PROXY": refusing.url, "NO_PROXY": "localhost,127.0.0.1"}
    server = proxied_site(
        tmp_path, upstream, cert, env, proxy=tinyproxy.url, refusing=refusing.url, mcp_port=mcp_port
    )
    try:
        before = tunnels(tinyproxy, upstream)
        assert chat(server, "gpt").status_code == 200  # direct: the refusing proxy not asked
        assert tunnels(tinyproxy, upstream) == before
        assert tunnels(refusing, upstream) == 0
        owned = chat(server, "owned")
        assert owned.status_code == 200, owned.text
        assert tunnels(tinyproxy, upstream) == before + 1
    finally:
        stop_server(server)


def test_a_proxy_that_refuses_is_named_as_the_cause(behind: RunningServer) -> None:
    answer = chat(behind, "blocked")
    assert answer.status_code == 502
    message = answer.json()["error"]["message"]
    assert "the proxy refused the tunnel: HTTP/1.0 403" in message, message
    assert "127.0.0.1" not in message  # never an address


def test_http_fetch_goes_through_the_proxy_and_the_fence_checks_the_target(
    behind: RunningServer, tls_upstream: tuple[FakeUpstream, Path], tinyproxy: RunningProxy
) -> None:
    upstream, _ = tls_upstream
    upstream.reset()
    page = Site()
    page.page = "the page behind the proxy"
    metadata = "http://169.254.169.254/latest/meta-data/"
    try:
        upstream.script(
            "px",
            Reply(text="", tool_calls=[call("http_fetch", {"url": page.origin + "/"}, "c1")]),
            Reply(text="", tool_calls=[call("http_fetch", {"url": metadata}, "c2")]),
            Reply(text="done"),
        )
        answer = chat(behind, "fetcher")
        assert answer.status_code == 200, answer.text
    finally:
        page.stop()
    results = [m for m in upstream.received("px")[-1].body["messages"] if m["role"] == "tool"]
    assert "the page behind the proxy" in results[0]["content"]
    assert "refused" in results[1]["content"]
    assert tinyproxy.forwarded(f"GET {page.origin}/") == 1  # fetched through the proxy
    assert tinyproxy.forwarded("169.254.169.254") == 0  # refused before the proxy was asked


def test_mcp_over_http_goes_through_the_proxy(
    behind: RunningServer,
    tls_upstream: tuple[FakeUpstream, Path],
    tinyproxy: RunningProxy,
    mcp_port: int,
) -> None:
    upstream, _ = tls_upstream
    upstream.reset()
    upstream.script(
        "px",
        Reply(text="", tool_calls=[call("mcp__web__shout", {"text": "quiet"}, "m1")]),
        Reply(text="done"),
    )
    answer = chat(behind, "fetcher")
    assert answer.status_code == 200, answer.text
    results = [m for m in upstream.received("px")[-1].body["messages"] if m["role"] == "tool"]
    assert results[0]["content"] == "QUIET"
    assert tinyproxy.forwarded(f"POST http://127.0.0.1:{mcp_port}/mcp") >= 1


def call(name: str, arguments: dict[str, object], call_id: str) -> dict[str, str]:
    return {"id": call_id, "name": name, "arguments": json.dumps(arguments)}
