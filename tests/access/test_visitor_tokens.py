"""Visitor tokens and origins, on their own: what a forged, altered or foreign token gets."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from headend.access import visitor_tokens as tokens
from headend.access.origins import normalize_origin
from headend.access.visitor_tokens import VisitorClaims

SECRET = "signing-secret-of-one-key"
CLAIMS = VisitorClaims("key_1", "v_abc", "https://shop.example.com", 1000.0, 4600.0)


def test_a_token_round_trips_only_under_its_keys_secret() -> None:
    token = tokens.mint(CLAIMS, SECRET)
    assert token.startswith("vt-he-")
    assert tokens.verified(token, SECRET) == CLAIMS
    assert tokens.verified(token, "another-keys-secret") is None


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t[:-2] + ("xy" if not t.endswith("xy") else "zz"),  # the signature
        lambda t: t.replace("vt-he-", "vt-he-e", 1),  # the payload
        lambda t: t.split(".")[0] + ".",  # no signature
        lambda t: t.split(".")[0],
        lambda t: "vt-he-" + "A" * 2000,
        lambda t: "sk-he-" + t[6:],
    ],
    ids=["signature", "payload", "empty-signature", "no-dot", "huge", "prefix"],
)
def test_an_altered_token_is_refused(change: object) -> None:
    assert callable(change)
    assert tokens.verified(change(tokens.mint(CLAIMS, SECRET)), SECRET) is None


def test_claims_cannot_be_swapped_between_tokens() -> None:
    mine = tokens.mint(CLAIMS, SECRET)
    theirs = tokens.mint(VisitorClaims("key_1", "v_other", CLAIMS.origin, 1, 2), SECRET)
    spliced = mine.split(".")[0] + "." + theirs.split(".")[1]
    assert tokens.verified(spliced, SECRET) is None


def test_the_user_hash_is_the_documented_hmac_and_visitors_are_not_user_ids() -> None:
    identity = tokens.identity_secret(SECRET)
    expected = hmac.new(identity.encode(), b"user@example.com", hashlib.sha256).hexdigest()
    assert tokens.user_hash(SECRET, "user@example.com") == expected
    visitor = tokens.signed_in_visitor(SECRET, "user@example.com")
    assert visitor.startswith("u_")
    assert "example" not in visitor
    assert visitor == tokens.signed_in_visitor(SECRET, "user@example.com")
    assert visitor != tokens.signed_in_visitor("other", "user@example.com")
    assert identity not in (SECRET, tokens.identity_secret("other"))


@pytest.mark.parametrize(
    ("given", "origin"),
    [
        ("https://Shop.Example.com", "https://shop.example.com"),
        ("https://shop.example.com:443/", "https://shop.example.com"),
        ("http://localhost:8000", "http://localhost:8000"),
        ("http://[::1]:80", "http://[::1]"),
    ],
)
def test_origins_are_kept_as_browsers_send_them(given: str, origin: str) -> None:
    assert normalize_origin(given) == origin


@pytest.mark.parametrize(
    "given",
    [
        "shop.example.com",
        "ftp://shop.example.com",
        "https://shop.example.com/cart",
        "https://u@shop.example.com",
        "https://shop.example.com:99999",
        "https://",
    ],
)
def test_what_is_not_an_origin_is_refused(given: str) -> None:
    with pytest.raises(ValueError, match="origin"):
        normalize_origin(given)
