"""Which proxy a URL goes through: the provider's own, else the environment's as curl reads
it (lower-case names first, ``all_proxy`` as the fallback, ``no_proxy`` by domain, address,
CIDR block and port)."""

from __future__ import annotations

import pytest

from headend.proxies import parse_proxy, proxy_for

ENV = {"https_proxy": "http://egress:3128", "HTTP_PROXY": "http://plain:8080"}


def test_the_scheme_picks_the_variable_and_the_provider_s_own_wins() -> None:
    assert proxy_for("https://api.openai.com/v1", None, ENV).url == "http://egress:3128"  # type: ignore[union-attr]
    assert proxy_for("http://vllm:8000/v1", None, ENV).url == "http://plain:8080"  # type: ignore[union-attr]
    own = proxy_for("https://api.openai.com/v1", "http://mine:9", ENV)
    assert own is not None
    assert own.url == "http://mine:9"
    assert proxy_for("https://api.openai.com/v1", None, {}) is None
    fallback = proxy_for("https://x.test/", None, {"ALL_PROXY": "http://all:1"})
    assert fallback is not None
    assert fallback.url == "http://all:1"
    # The lower-case name is read first, as curl does.
    both = {"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:2"}
    assert proxy_for("https://x.test/", None, both).url == "http://lower:1"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("url", "no_proxy", "direct"),
    [
        ("https://api.openai.com/v1", "openai.com", True),
        ("https://api.openai.com/v1", ".openai.com", True),
        ("https://openai.com/v1", ".openai.com", True),
        ("https://notopenai.com/v1", "openai.com", False),
        ("https://api.anthropic.com/v1", "openai.com, anthropic.com", True),
        ("http://10.1.2.3:8000/v1", "10.0.0.0/8", True),
        ("http://10.1.2.3:8000/v1", "10.1.2.3", True),
        ("http://11.1.2.3:8000/v1", "10.0.0.0/8", False),
        ("http://[::1]:8000/v1", "::1", True),
        ("http://[fd00::5]:8000/v1", "fd00::/8", True),
        ("http://vllm:8000/v1", "vllm:8000", True),
        ("http://vllm:8001/v1", "vllm:8000", False),
        ("https://anything.test/", "*", True),
        ("https://LOCALHOST./x", "localhost", True),
        ("https://api.openai.com/v1", "", False),
    ],
)
def test_no_proxy(url: str, no_proxy: str, direct: bool) -> None:
    env = {"https_proxy": "http://egress:3128", "http_proxy": "http://egress:3128"}
    assert (proxy_for(url, None, {**env, "NO_PROXY": no_proxy}) is None) is direct


def test_a_proxy_url_is_checked_and_never_shown_with_its_credentials() -> None:
    proxy = parse_proxy("http://user:p%3Ass@egress.corp:3128")
    assert (proxy.host, proxy.port) == ("egress.corp", 3128)
    assert proxy.authorization == "Basic dXNlcjpwOnNz"  # user:p:ss
    assert proxy.shown == "http://…@egress.corp:3128"
    assert parse_proxy("http://egress").port == 80
    for bad, said in (
        ("https://egress:3128", "a proxy is an http:// URL"),
        ("socks5://egress:1080", "a proxy is an http:// URL"),
        ("http://:3128", "has no host"),
        ("http://egress:99999", "Port out of range"),
    ):
        with pytest.raises(ValueError, match=said):
            parse_proxy(bad)
    with pytest.raises(ValueError, match="http:// URL") as info:
        parse_proxy("https://user:hunter2@egress:3128")
    assert "hunter2" not in str(info.value)
