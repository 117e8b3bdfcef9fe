"""The SSRF fence: every form of an internal address an attacker may write, refused, on the
policy itself and end to end through ``http_fetch`` against a real loopback site."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from headend.tools.base import ToolContext, ToolError
from headend.tools.builtin.http_fetch import HttpFetch
from headend.tools.fence import Fence, refused_reason
from tests.secret_site import SECRET, SecretSite

# Loopback written in every way a URL parser may turn back into 127.0.0.1.
LOOPBACK_FORMS = [
    "127.0.0.1",
    "localhost",
    "[::1]",
    "１２７.０.０.１",  # fullwidth digits and dots
    "127。0。0。1",  # ideographic full stops
    "①②⑦.⓪.⓪.①",  # circled digits
    "127.1",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "0",
    "0.0.0.0",
    "[::ffff:127.0.0.1]",
    "[::127.0.0.1]",  # IPv4-compatible
    "[2002:7f00:1::1]",  # 6to4 around 127.0.0.1
    "[64:ff9b::7f00:1]",  # NAT64 around 127.0.0.1
]
# The same tricks around other fenced ranges, checked on the policy alone: a test must never
# send traffic off loopback, even when the fence it tests is broken.
OTHER_FORMS = [
    "１６９.２５４.１６９.２５４",
    "169。254。169。254",
    "１０.０.０.１",
    "10。0。0。1",
    "100.64.0.1",
    "100.127.255.254",
    "[2002:a9fe:a9fe::1]",  # 6to4 around 169.254.169.254
    "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",  # Teredo
    "[::ffff:169.254.169.254]",
    "[fd00::1]",
    "[fe80::1]",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.0.8",
    "198.18.0.1",
]


def context(tmp_path: Path, allow: tuple[str, ...] = ()) -> ToolContext:
    return ToolContext(
        agent_id="t", request_id="r", scratch=tmp_path / "scratch", allow_hosts=frozenset(allow)
    )


@pytest.fixture(scope="module")
def site() -> Iterator[SecretSite]:
    running = SecretSite()
    yield running
    running.stop()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "172.16.5.5",
        "169.254.169.254",
        "100.64.0.0",
        "100.100.100.200",
        "::1",
        "fe80::1",
        "fe80::1%eth0",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "2002:7f00:1::1",
        "2002:a00:1::",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "ff02::1",
        "fc00::1",
        "240.0.0.1",
        "192.0.2.1",
    ],
)
def test_fenced_addresses(address: str) -> None:
    assert refused_reason(address) is not None


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "2002:5db8:d822::1"]
)
def test_public_addresses_pass(address: str) -> None:
    assert refused_reason(address) is None


@pytest.mark.parametrize("host", ["１２７.０.０.１", "127。0。0。1", "①②⑦.⓪.⓪.①"])
def test_the_policy_reads_the_host_as_the_client_does(host: str) -> None:
    with pytest.raises(ToolError, match=r"refused: 127\.0\.0\.1 is a loopback"):
        Fence(frozenset()).target(f"http://{host}/")


@pytest.mark.parametrize("host", LOOPBACK_FORMS)
async def test_http_fetch_never_reaches_loopback(
    tmp_path: Path, site: SecretSite, host: str
) -> None:
    before = len(site.hits)
    with pytest.raises(ToolError, match="refused"):
        await HttpFetch().run({"url": f"http://{host}:{site.port}/secret"}, context(tmp_path))
    assert len(site.hits) == before


@pytest.mark.parametrize("host", OTHER_FORMS)
def test_other_internal_forms_are_refused_before_connecting(host: str) -> None:
    with pytest.raises(ToolError, match="refused"):
        Fence(frozenset()).target(f"http://{host}/latest/meta-data/")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1/", "ftp://x/"])
async def test_only_http_and_https(tmp_path: Path, url: str) -> None:
    with pytest.raises(ToolError, match="only http"):
        await HttpFetch().run({"url": url}, context(tmp_path))


@pytest.mark.parametrize("host", ["１２７.０.０.１", "127。0。0。1", "127.0.0.1", "[::1]"])
async def test_a_redirect_from_an_allowed_host_is_fenced_again(
    tmp_path: Path, site: SecretSite, host: str
) -> None:
    to = f"http://{host}:{site.port}/secret"
    before = list(site.hits)
    with pytest.raises(ToolError, match="refused"):
        await HttpFetch().run(
            {"url": f"http://localhost:{site.port}/redirect?to={to}"},
            context(tmp_path, allow=("localhost",)),
        )
    assert site.hits[len(before) :] == ["/redirect"]  # the hop was made, the secret not read


async def test_an_allowed_host_is_reached(tmp_path: Path, site: SecretSite) -> None:
    result = await HttpFetch().run(
        {"url": f"http://localhost:{site.port}/secret"}, context(tmp_path, allow=("localhost",))
    )
    assert result.startswith("HTTP 200")
    assert SECRET in result


async def test_a_redirect_within_allowed_hosts_is_followed(
    tmp_path: Path, site: SecretSite
) -> None:
    to = f"http://127.0.0.1:{site.port}/secret"
    result = await HttpFetch().run(
        {"url": f"http://localhost:{site.port}/redirect?to={to}"},
        context(tmp_path, allow=("localhost", "127.0.0.1")),
    )
    assert SECRET in result


def test_the_socket_check_stops_what_got_past_the_name_checks() -> None:
    fence = Fence(frozenset())
    with pytest.raises(ToolError, match="loopback"):
        fence.socket((2, 1, 6, "", ("127.0.0.1", 80)))
    with pytest.raises(ToolError, match="carries"):
        fence.socket((10, 1, 6, "", ("::ffff:10.0.0.1", 80, 0, 0)))
    fence.socket((2, 1, 6, "", ("93.184.216.34", 80))).close()
