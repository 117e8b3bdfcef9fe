"""The built-in detectors: personal data (PII) and secrets found in text, as spans.

A regex finds a candidate and a rule confirms it where one exists (Luhn, ISO 13616 mod 97, the
NIR key, HMRC's NINO prefixes, SSA's SSN ranges, ``ipaddress``, a token's entropy), so that
ordinary technical text (versions, dates, times, UUIDs, hashes, ports, code) raises nothing.
Secrets follow the self-identifying rules of gitleaks' default config, loosened at the end so
that a key followed by a full stop or a bracket in prose is still found.

Hits come sorted by start and never overlap: of two that do, the longer stays, then the earlier.

Streaming: a PII hit spans at most ``MAX_PII_CHARS``, a secret at most ``MAX_SECRET_CHARS``,
except three open-ended kinds: ``PRIVATE_KEY`` (its BEGIN line through its END line), ``JWT``
and ``PYPI_TOKEN``. Those are found from their first ``MAX_SECRET_CHARS`` characters, as a hit
that runs to where the text ends. Any hit that ends where the text ends may go on in text not
seen yet.
"""

from __future__ import annotations

import bisect
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Hit:
    """``text[start:end]`` holds personal data or a secret of ``kind``."""

    start: int
    end: int
    kind: str


PII_KINDS: tuple[str, ...] = ("EMAIL", "PHONE", "CARD", "IBAN", "SSN", "NINO", "NIR", "IP")
MAX_PII_CHARS = 254  # an e-mail address at RFC 5321's limit; every other kind is under 50


def find_pii(text: str, kinds: frozenset[str] | None = None) -> list[Hit]:
    """Every piece of personal data of ``kinds`` (None: all of ``PII_KINDS``) in ``text``."""
    if kinds is not None and not kinds <= _PII_KIND_SET:
        raise ValueError(f"unknown PII kinds: {', '.join(sorted(kinds - _PII_KIND_SET))}")
    wanted = _PII_KIND_SET if kinds is None else kinds
    return _resolve(
        hit
        for finds, finder in _PII_FINDERS
        if finds & wanted
        for hit in finder(text)
        if hit.kind in wanted
    )


def _resolve(hits: Iterable[Hit]) -> list[Hit]:
    """The hits that overlap none kept before them, longest first: sorted by start."""
    kept: list[Hit] = []
    starts: list[int] = []
    for hit in sorted(hits, key=lambda h: (h.start - h.end, h.start)):
        i = bisect.bisect_left(starts, hit.start)
        if (i == len(kept) or hit.end <= kept[i].start) and (
            i == 0 or kept[i - 1].end <= hit.start
        ):
            kept.insert(i, hit)
            starts.insert(i, hit.start)
    return kept


_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,63}"
    r"(?![\w\-]|\.[A-Za-z0-9])"
)
# A file's extension is no top-level domain: icon@2x.png, report@v2.pdf name files.
_FILE_EXTENSION = re.compile(
    r"(?i:txt|png|jpe?g|gif|svg|webp|pdf|json|ya?ml|html?|css|jsx?|tsx?|csv|log|tar|t?gz|xml|ini"
    r"|cfg|conf|toml|lock|whl|exe|dll|[ch]pp|java|pyc|ipynb|docx|xlsx|pptx)"
)


def _emails(text: str) -> Iterator[Hit]:
    at = text.find("@")
    while at != -1:
        hit = _email_at(text, at)
        if hit:
            yield hit
        at = text.find("@", at + 1)
    if "%40" in text:
        yield from _encoded_emails(text)


def _encoded_emails(text: str) -> Iterator[Hit]:
    """Addresses written with ``%40`` for the ``@`` (a URL's query, a form's body): found in
    the text decoded so, their places counted in the text as written."""
    decoded = text.replace("%40", "@")
    starts = []  # where each decoded character begins in ``text``
    at = 0
    while at < len(text):
        starts.append(at)
        at += 3 if text.startswith("%40", at) else 1
    starts.append(len(text))
    at = decoded.find("@")
    while at != -1:
        if text[starts[at]] == "%":
            hit = _email_at(decoded, at)
            if hit:
                yield Hit(starts[hit.start], starts[hit.end], "EMAIL")
        at = decoded.find("@", at + 1)


def _email_at(text: str, at: int) -> Hit | None:
    start = at
    while start > at - 65 and start and _local_char(text[start - 1]):
        start -= 1
    if start in (at, at - 65) or text[at - 1] == ".":  # no local part, or one over 64
        return None
    domain = _DOMAIN.match(text, at + 1)
    if not domain:
        return None
    if _FILE_EXTENSION.fullmatch(domain.group().rsplit(".", 1)[1]):
        return None
    end = domain.end()
    while text[start] == ".":
        start += 1
    after = text[end : end + 2]
    # Code rather than an address: x@self.proj(y), a git remote git@host.com:org/repo.
    if after[:1] in ("(", "[") or (after[:1] == ":" and after[1:].strip()):
        return None
    return Hit(start, end, "EMAIL") if end - start <= MAX_PII_CHARS else None


def _local_char(c: str) -> bool:
    return c.isalnum() or c in "._%+-"


# Where a number may start: not inside a word or a dotted number, and followed by enough digits
# and separators for the shortest of the kinds below (1.2.3.4).
_NUMBER = re.compile(r"[0-9(](?<![\w.][0-9(])(?:(?<=[0-9])|(?<=\()(?=[0-9]))(?=[0-9 .\-()AB]{6})")
# A number never ends where a word, a dotted or dashed number or a path goes on.
_END = r"(?![\w@]|[.\-/:]\w)"
# Each kind's shape from one start, all tried there: one may fail its check and another pass.
_SHAPES = re.compile(
    r"(?:(?=(?P<CARD>\d{13,19}"
    r"|\d{4}(?P<c>[ \-])\d{4}(?P=c)\d{4}(?P=c)\d{1,4}(?:(?P=c)\d{1,3})?"  # 4111 1111 1111 1111
    r"|\d{4}(?P<a>[ \-])\d{6}(?P=a)\d{4,5})"  # 3782 822463 10005
    r"(?![\w@]|[.\-/:]\d)))?"
    r"(?:(?=(?P<SSN>\d\d\d(?P<s>[ \-])\d\d(?P=s)\d{4})" + _END + "))?"
    r"(?:(?=(?P<NIR>[1-478](?P<n>[ .\-]?)\d\d(?P=n)(?:0[1-9]|1[0-2]|[2-9]\d)(?P=n)"
    r"(?:\d\d|2[AB])(?P=n)\d{3}(?P=n)\d{3}(?P=n)\d\d)" + _END + "))?"
    r"(?:(?=(?P<PHONE>\([2-9]\d\d\) ?\d{3}[ .\-]\d{4}"  # (555) 123-4567
    r"|\(0\d{1,4}\) ?\d{2,8}(?:(?P<r>[ .\-])\d{2,4}(?:(?P=r)\d{2,4}){0,2})?"  # (020) 7946 0958
    r"|0\d{1,4}(?P<t>[ .\-])\d{2,8}(?:(?P=t)\d{2,4}){0,3}"  # 06 12 34 56 78, 020 7946 0958
    r"|1(?P<p>[.\-])[2-9]\d\d(?P=p)\d{3}(?P=p)\d{4}"  # 1-800-555-0199
    r"|[2-9]\d\d(?P<q>[.\-])\d{3}(?P=q)\d{4})" + _END + "))?"  # 555-123-4567
    r"(?:(?=(?P<IP>\d{1,3}(?:\.\d{1,3}){3})(?!\w|\.\d|/\d)))?"
)
_PHONE_PLUS = re.compile(r"\+(?<![\w+]\+)[1-9](?:[ .\-]?(?:\(\d{1,4}\)|\d))*+" + _END)


def _numbers(text: str) -> Iterator[Hit]:
    """Cards, SSNs, NIRs, IPv4 addresses and phone numbers written without a ``+``."""
    covered = 0
    for start in _NUMBER.finditer(text):
        s = start.start()
        if s < covered:
            continue
        m = _SHAPES.match(text, s)
        assert m is not None  # every group is optional
        # After a dash, a slash or a sign, only an address (10.0.0.1-10.0.0.9, http://10.0.0.1).
        loose = s > 0 and text[s - 1] in "-/+@#$€£¥"
        for hit in _shapes(text, m, loose):
            covered = max(covered, hit.end)
            yield hit


def _shapes(text: str, m: re.Match[str], loose: bool) -> Iterator[Hit]:
    s = m.start()
    # A card may be followed by more numbers (its expiry, its CVV), not preceded by them.
    if (number := m["CARD"]) and not loose and not _glued(text, s, s, " -"):
        # Four groups and a short fifth may be a card and the start of the next number.
        sep = m["c"]
        options = (
            [number, number[: number.rfind(sep)]] if sep and number.count(sep) == 4 else [number]
        )
        for option in options:
            if _card_ok(_digits(option)):
                yield Hit(s, s + len(option), "CARD")
                break
    ssn = m["SSN"]
    if ssn and not loose and _ssn_ok(_digits(ssn)) and not _glued(text, s, s + len(ssn), m["s"]):
        yield Hit(s, s + len(ssn), "SSN")
    if (nir := m["NIR"]) and not loose and not _glued(text, s, s + len(nir), m["n"]):
        digits = "".join(c for c in nir if c.isalnum())
        base = int(digits[:13].replace("2A", "19").replace("2B", "18"))  # Corsica's departments
        if 97 - base % 97 == int(digits[13:]):
            yield Hit(s, s + len(nir), "NIR")
    if (phone := m["PHONE"]) and not loose:
        trunk = m["t"] is not None or m["r"] is not None or phone.startswith("(0")
        sep = m["r"] or m["t"] or m["p"] or m["q"]
        if (not trunk or 10 <= len(_digits(phone)) <= 11) and not _glued(
            text, s, s + len(phone), sep
        ):
            yield Hit(s, s + len(phone), "PHONE")
    if (ip := m["IP"]) and _ipv4_ok(text, s, ip):
        yield Hit(s, s + len(ip), "IP")


def _plus_phones(text: str) -> Iterator[Hit]:
    for m in _PHONE_PLUS.finditer(text):
        if 7 <= len(_digits(m.group())) <= 15:
            yield Hit(m.start(), m.end(), "PHONE")


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdecimal())


def _glued(text: str, start: int, end: int, seps: str | None) -> bool:
    """Whether the number at ``start:end``, grouped by one of ``seps``, has a group before it
    or (when ``end > start``) after it: a part of a longer number."""
    if not seps:
        return False
    before, after = text[max(start - 2, 0) : start], text[end : end + 2] if end > start else ""
    return (len(before) == 2 and before[0].isdecimal() and before[1] in seps) or (
        len(after) == 2 and after[0] in seps and after[1].isdecimal()
    )


# The networks' first digits (from, to) and their numbers' lengths: Visa, Mastercard, Amex,
# Diners, JCB, Discover, UnionPay, Maestro.
_CARD_IINS: tuple[tuple[str, str, range], ...] = (
    ("4", "4", range(13, 20, 3)),
    ("51", "55", range(16, 17)),
    ("2221", "2720", range(16, 17)),
    ("34", "34", range(15, 16)),
    ("37", "37", range(15, 16)),
    ("300", "305", range(14, 20)),
    ("36", "36", range(14, 20)),
    ("38", "39", range(14, 20)),
    ("3528", "3589", range(16, 20)),
    ("6011", "6011", range(16, 20)),
    ("644", "649", range(16, 20)),
    ("65", "65", range(16, 20)),
    ("62", "62", range(16, 20)),
    ("50", "50", range(12, 20)),
    ("56", "69", range(12, 20)),
)


def _card_ok(d: str) -> bool:
    if not any(lo <= d[: len(lo)] <= hi and len(d) in n for lo, hi, n in _CARD_IINS):
        return False
    total = 0
    for i, c in enumerate(reversed(d)):
        n = int(c) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _ssn_ok(d: str) -> bool:
    area, group, serial = d[:3], d[3:5], d[5:]
    # 9xx areas are ITINs, a taxpayer's number just the same: found too
    return area not in ("000", "666") and group != "00" and serial != "0000"


# Dotted numbers that name something else: version 1.10.0.2, section 4.2.1.3, an OID 2.5.29.17.
_NOT_AN_ADDRESS = re.compile(
    r"(?i:version|release|build|ver|section|oid|identifier)[.:(\"']{0,2}\s*\Z"
)


def _ipv4_ok(text: str, start: int, ip: str) -> bool:
    try:
        v4 = ipaddress.IPv4Address(ip)
    except ValueError:
        return False
    # Nobody's address: 0/8, loopback, link-local (169.254.169.254), multicast, 240/4, masks.
    if v4.is_loopback or v4.is_link_local or v4.is_multicast or v4.is_reserved or ip[:2] == "0.":
        return False
    # Four single digits are a section (RFC 5545 3.8.2.4) or a version far more often.
    if len(ip) == 7:
        return False
    return not _NOT_AN_ADDRESS.search(text, max(start - 14, 0), start)


# IBANs and NINOs: two capitals not ending a word, then digits. A NINO's prefix (HMRC): no
# D F I Q U V first, no D F I O Q U V second, never BG GB KN NK NT TN ZZ.
_CAPITALS = re.compile(
    r"[A-Z](?<![\w][A-Z])[A-Z](?= ?\d\d)"
    r"(?:(?<=[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z])(?<!BG|GB|KN|NK|NT|TN|ZZ)"
    r"(?P<nino> ?\d\d ?\d\d ?\d\d ?[A-D])(?!\w)"
    r"|\d\d(?: ?[A-Z0-9]{4}){2,8}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9]))"
)
_IBAN_LENGTHS = {
    country: int(length)
    for country, length in re.findall(
        r"([A-Z]{2})(\d\d)",
        "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 "
        "DJ27 DK18 DO28 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HN28 "
        "HR21 HU28 IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 "
        "MC27 MD24 ME22 MK19 MN20 MR27 MT31 MU30 NI28 NL18 NO15 OM23 PK24 PL28 PS29 PT25 QA29 "
        "RO24 RS22 RU33 SA24 SC31 SD18 SE24 SI19 SK24 SM27 SO23 ST25 SV28 TL23 TN24 TR26 UA29 "
        "VA22 VG24 XK20 YE30",
    )
}


def _capitals(text: str) -> Iterator[Hit]:
    for m in _CAPITALS.finditer(text):
        if m["nino"]:
            yield Hit(m.start(), m.end(), "NINO")
        elif iban := _iban(text, m):
            yield iban


def _iban(text: str, m: re.Match[str]) -> Hit | None:
    length = _IBAN_LENGTHS.get(m.group()[:2])
    if length is None:
        return None
    # The regex may have taken a capitalised word after the number: cut at the country's length.
    end, seen = m.start(), 0
    while seen < length and end < m.end():
        seen += text[end] != " "
        end += 1
    if seen < length or (end < m.end() and text[end] != " "):
        return None
    iban = text[m.start() : end].replace(" ", "")
    if int("".join(str(int(c, 36)) for c in iban[4:] + iban[:4])) % 97 != 1:
        return None
    return Hit(m.start(), end, "IBAN")


# Nine digits in a row are an SSN only a few words after its name.
_NAMED_SSN = re.compile(r"(?i:\b(?:ssn|social security)\b)[^\d\n]{0,20}?(?<!\d)(\d{9})(?!\w)")


def _named_ssns(text: str) -> Iterator[Hit]:
    lower = text.lower()
    if "ssn" in lower or "social security" in lower:
        for m in _NAMED_SSN.finditer(text):
            if _ssn_ok(m.group(1)):
                yield Hit(m.start(1), m.end(1), "SSN")


# Two colons at most four hex digits apart; the address is then read from up to four before.
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6 = re.compile(
    r"(?<![\w:.])[0-9A-Fa-f:]{2,39}(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?(?![\w:]|[./]\d)"
)
_HEX = frozenset("0123456789abcdefABCDEF")


def _ipv6s(text: str) -> Iterator[Hit]:
    hint = _IPV6_HINT.search(text)
    while hint:
        start = hint.start()
        while start > hint.start() - 4 and start and text[start - 1] in _HEX:
            start -= 1
        m = _IPV6.match(text, start)
        if m and _ipv6_ok(m.group()):
            yield Hit(m.start(), m.end(), "IP")
        hint = _IPV6_HINT.search(text, m.end() if m else hint.start() + 1)


def _ipv6_ok(s: str) -> bool:
    try:
        v6 = ipaddress.IPv6Address(s)
    except ValueError:
        return False
    # A slice such as a[10::20] parses too: an address written short still has three groups.
    groups = sum(1 for g in s.split(":") if g) + ("." in s)
    nobodys = v6.is_unspecified or v6.is_loopback or v6.is_link_local or v6.is_multicast
    return groups >= 3 and not nobodys


_PII_KIND_SET = frozenset(PII_KINDS)
_PII_FINDERS: tuple[tuple[frozenset[str], Callable[[str], Iterator[Hit]]], ...] = (
    (frozenset({"EMAIL"}), _emails),
    (frozenset({"CARD", "SSN", "NIR", "PHONE", "IP"}), _numbers),
    (frozenset({"PHONE"}), _plus_phones),
    (frozenset({"IBAN", "NINO"}), _capitals),
    (frozenset({"SSN"}), _named_ssns),
    (frozenset({"IP"}), _ipv6s),
)


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str
    needles: tuple[str, ...]  # the regex runs only on a text holding one of these
    pattern: re.Pattern[str]
    longest: int  # the longest hit, or for an open-ended kind what identifies it
    entropy: float = 0.0  # the least Shannon entropy of the hit, in bits per character


_TOKEN_END = r"(?![\w-])"  # a token ends where its alphabet does
_RULES = (
    _Rule(
        "OPENAI_KEY",
        ("sk-",),
        re.compile(
            r"sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{100,240}"
            r"|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})" + _TOKEN_END
        ),
        11 + 240,
        3,
    ),
    _Rule(
        "ANTHROPIC_KEY",
        ("sk-ant-",),
        re.compile(r"sk-ant-(?:api03|admin01)-[A-Za-z0-9_-]{93}AA" + _TOKEN_END),
        15 + 93 + 2,
    ),
    _Rule(
        "AWS_ACCESS_KEY",
        ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
        re.compile(r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}(?![A-Za-z0-9])"),
        20,
        3,
    ),
    _Rule(
        "GITHUB_TOKEN",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        re.compile(r"(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})" + _TOKEN_END),
        11 + 82,
        3,
    ),
    _Rule(
        "GITLAB_TOKEN",
        ("glpat-", "gldt-", "glrt-", "glptt-"),
        re.compile(
            r"(?:(?:glpat|gldt|glrt)-[A-Za-z0-9_-]{20,100}(?:\.[0-9a-z]{9})?"
            r"|glptt-[0-9a-f]{40})" + _TOKEN_END
        ),
        6 + 100 + 10,
        3,
    ),
    _Rule(
        "SLACK_TOKEN",
        ("xox", "xapp-"),
        re.compile(
            r"(?:xoxb-\d{10,13}-\d{10,13}[A-Za-z0-9-]{0,40}"
            r"|xoxb-\d{8,14}-[A-Za-z0-9]{18,26}"
            r"|xox[pe](?:-\d{10,13}){3}-[A-Za-z0-9-]{28,34}"
            r"|xox[os]-\d{1,15}-\d{1,15}-\d{1,15}-[A-Fa-f0-9]{1,64}"
            r"|xox[ar]-(?:\d-)?[A-Za-z0-9]{8,48}"
            r"|xoxe\.xox[bp]-\d-[A-Za-z0-9]{163,166}"
            r"|xoxe-\d-[A-Za-z0-9]{146}"
            r"|xapp-\d-[A-Za-z0-9]{1,20}-\d{1,20}-[A-Za-z0-9]{1,80}"
            # any other token of Slack's shape: numeric fields, then the secret
            r"|xox[abeoprs]-(?:\d+-){1,4}[A-Za-z0-9]{8,64})" + _TOKEN_END
        ),
        5 + 5 + 2 + 166,
        2,
    ),
    _Rule(
        "SLACK_WEBHOOK",
        ("hooks.slack.com/",),
        re.compile(
            r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/]{43,80}"
        ),
        8 + 16 + 10 + 80,
    ),
    _Rule(
        "STRIPE_KEY",
        ("k_live_", "k_test_", "k_prod_"),
        re.compile(r"[sr]k_(?:live|test|prod)_[A-Za-z0-9]{10,99}" + _TOKEN_END),
        8 + 99,
        2,
    ),
    _Rule(
        "GOOGLE_API_KEY",
        ("AIza",),
        re.compile(r"AIza[A-Za-z0-9_-]{35}" + _TOKEN_END),
        39,
        4,
    ),
    _Rule(
        "HUGGINGFACE_TOKEN",
        ("hf_", "api_org_"),
        re.compile(r"(?:hf|api_org)_[A-Za-z]{34}" + _TOKEN_END),
        8 + 34,
        2,
    ),
    _Rule("NPM_TOKEN", ("npm_",), re.compile(r"npm_[A-Za-z0-9]{36}" + _TOKEN_END), 40, 2),
    _Rule(
        "SENDGRID_KEY",
        ("SG.",),
        re.compile(r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}" + _TOKEN_END),
        69,
        2,
    ),
    _Rule(
        "TWILIO_KEY",
        ("SK",),
        re.compile(r"SK[0-9a-fA-F]{32}(?![A-Za-z0-9])"),
        34,
        3,
    ),
    _Rule(
        "JWT",
        ("eyJ",),
        re.compile(
            r"eyJ[A-Za-z0-9_-]{17,237}\.ey[A-Za-z0-9_-]{17,}(?:\.[A-Za-z0-9_-]*)?" + _TOKEN_END
        ),
        3 + 237 + 1 + 2 + 17,
        3,
    ),
    _Rule(
        "PYPI_TOKEN",
        ("pypi-AgEIcHlwaS5vcmc",),
        re.compile(r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}" + _TOKEN_END),
        20 + 50,
        3,
    ),
    _Rule("GROQ_KEY", ("gsk_",), re.compile(r"gsk_[A-Za-z0-9]{52}" + _TOKEN_END), 56, 3),
    _Rule("XAI_KEY", ("xai-",), re.compile(r"xai-[A-Za-z0-9]{80}" + _TOKEN_END), 84, 3),
    _Rule(
        "PERPLEXITY_KEY",
        ("pplx-",),
        re.compile(r"pplx-[A-Za-z0-9]{48}" + _TOKEN_END),
        53,
        4,
    ),
    _Rule(
        "OPENROUTER_KEY",
        ("sk-or-v1-",),
        re.compile(r"sk-or-v1-[0-9a-f]{64}" + _TOKEN_END),
        73,
        3,
    ),
    _Rule(
        "DIGITALOCEAN_TOKEN",
        ("_v1_",),
        re.compile(r"do[opr]_v1_[0-9a-f]{64}" + _TOKEN_END),
        71,
        3,
    ),
    _Rule(
        "DATABRICKS_TOKEN",
        ("dapi",),
        re.compile(r"dapi[0-9a-f]{32}(?:-\d)?" + _TOKEN_END),
        38,
        3,
    ),
    _Rule(
        "SHOPIFY_TOKEN",
        ("shpat_", "shpca_", "shppa_", "shpss_"),
        re.compile(r"shp(?:at|ca|pa|ss)_[0-9a-fA-F]{32}" + _TOKEN_END),
        38,
        3,
    ),
    _Rule(
        "AGE_SECRET_KEY",
        ("AGE-SECRET-KEY-1",),
        re.compile(r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}(?![A-Z0-9])"),
        74,
    ),
)
_PEM_BEGIN = re.compile(r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----")
_PEM_LONGEST = len("-----BEGIN") + 100 + len("PRIVATE KEY BLOCK-----")

SECRET_KINDS: tuple[str, ...] = (*(rule.kind for rule in _RULES), "PRIVATE_KEY")
MAX_SECRET_CHARS = max(_PEM_LONGEST, *(rule.longest for rule in _RULES))


def find_secrets(text: str) -> list[Hit]:
    """Every credential in ``text`` that names itself by its shape: API keys, tokens, keys."""
    hits: list[Hit] = []
    # But for a PEM block, every secret is a word of twelve characters or more (xoxa-2-abcdefgh,
    # sk_live_ and ten more): only such words may hold a rule's needle.
    words = " ".join([word for word in text.split() if len(word) >= 12])
    for rule in _RULES if words else ():
        if any(needle in words for needle in rule.needles):
            hits += (
                Hit(m.start(), m.end(), rule.kind)
                for m in rule.pattern.finditer(text)
                if _token_starts(text, m.start()) and _entropy(m.group()) >= rule.entropy
            )
    if "-----BEGIN" in text:
        hits += _private_keys(text)
    return _resolve(hits)


def _token_starts(text: str, at: int) -> bool:
    # Checked here rather than by a lookbehind, which would keep re from skipping to the prefix.
    return at == 0 or not (text[at - 1].isalnum() or text[at - 1] in "_-")


def _entropy(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _private_keys(text: str) -> Iterator[Hit]:
    """Each BEGIN line through the first END line after it, if another BEGIN is not first."""
    begins = list(_PEM_BEGIN.finditer(text))
    ends = list(_PEM_END.finditer(text))
    end_starts = [end.start() for end in ends]
    for n, begin in enumerate(begins):
        until = begins[n + 1].start() if n + 1 < len(begins) else len(text)
        i = bisect.bisect_left(end_starts, begin.end())
        closed = i < len(ends) and ends[i].end() <= until
        yield Hit(begin.start(), ends[i].end() if closed else begin.end(), "PRIVATE_KEY")
