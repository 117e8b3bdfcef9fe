"""The built-in detectors: each kind found with its exact span in prose, checksums that fail
raise nothing, ordinary technical text raises nothing, and every hit fits the window a stream
holds back. Every value is fake; tokens are built here so that no secret scanner trips on them."""

from __future__ import annotations

import base64
import itertools
import json
import string

import pytest

from headend.guardrails.detectors import (
    MAX_PII_CHARS,
    MAX_SECRET_CHARS,
    PII_KINDS,
    SECRET_KINDS,
    find_pii,
    find_secrets,
)

ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "_-"
HEX = "0123456789abcdef"


def fake(n: int, alphabet: str = ALNUM, seed: int = 0) -> str:
    """``n`` characters spread over ``alphabet``: as varied as a real token, never a real one."""
    return "".join(alphabet[(seed + i * 7 + i * i) % len(alphabet)] for i in range(n))


def b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def pii(text: str, kinds: frozenset[str] | None = None) -> list[tuple[str, str]]:
    return [(hit.kind, text[hit.start : hit.end]) for hit in find_pii(text, kinds)]


def secrets(text: str) -> list[tuple[str, str]]:
    return [(hit.kind, text[hit.start : hit.end]) for hit in find_secrets(text)]


PII_FOUND: list[tuple[str, list[tuple[str, str]]]] = [
    ("Write to jane.doe@example.com.", [("EMAIL", "jane.doe@example.com")]),
    ("jane.doe+news@mail.example.co.uk is mine", [("EMAIL", "jane.doe+news@mail.example.co.uk")]),
    ("From: Bob <bob_smith@example.org>", [("EMAIL", "bob_smith@example.org")]),
    (
        "(contact: a.b-c@example.com), or mailto:info@example.net",
        [
            ("EMAIL", "a.b-c@example.com"),
            ("EMAIL", "info@example.net"),
        ],
    ),
    ("Call (555) 123-4567 today.", [("PHONE", "(555) 123-4567")]),
    (
        "555-123-4567, 555.123.4567 or 1-800-555-0199",
        [
            ("PHONE", "555-123-4567"),
            ("PHONE", "555.123.4567"),
            ("PHONE", "1-800-555-0199"),
        ],
    ),
    ("Tel:555-123-4567", [("PHONE", "555-123-4567")]),
    ("Call me (555-123-4567) from (192.0.2.5).", [("PHONE", "555-123-4567"), ("IP", "192.0.2.5")]),
    ("Mon portable : 06 12 34 56 78.", [("PHONE", "06 12 34 56 78")]),
    (
        "London office 020 7946 0958, mobile 07700 900123",
        [
            ("PHONE", "020 7946 0958"),
            ("PHONE", "07700 900123"),
        ],
    ),
    (
        "Ring +44 20 7946 0958 or +33 6 12 34 56 78!",
        [
            ("PHONE", "+44 20 7946 0958"),
            ("PHONE", "+33 6 12 34 56 78"),
        ],
    ),
    (
        "US: +1 (555) 123-4567; DE: +49 30 23125000; E.164: +15555550123",
        [
            ("PHONE", "+1 (555) 123-4567"),
            ("PHONE", "+49 30 23125000"),
            ("PHONE", "+15555550123"),
        ],
    ),
    ("The card 4111 1111 1111 1111 expires 12/27.", [("CARD", "4111 1111 1111 1111")]),
    ("4111-1111-1111-1111", [("CARD", "4111-1111-1111-1111")]),
    ("pay with 4012888888881881", [("CARD", "4012888888881881")]),
    (
        "MC 5555 5555 5555 4444 and 2223 0031 2200 3222",
        [
            ("CARD", "5555 5555 5555 4444"),
            ("CARD", "2223 0031 2200 3222"),
        ],
    ),
    (
        "Amex 3782 822463 10005, Diners 3056 9309 0259 04",
        [
            ("CARD", "3782 822463 10005"),
            ("CARD", "3056 9309 0259 04"),
        ],
    ),
    (
        "Discover 6011111111111117; JCB 3530111333300000; UnionPay 6200000000000005",
        [
            ("CARD", "6011111111111117"),
            ("CARD", "3530111333300000"),
            ("CARD", "6200000000000005"),
        ],
    ),
    ("card 4111 1111 1111 1111 123", [("CARD", "4111 1111 1111 1111")]),
    (
        "4111111111111111 12/27 or (4111 1111 1111 1111 12/27)",
        [
            ("CARD", "4111111111111111"),
            ("CARD", "4111 1111 1111 1111"),
        ],
    ),
    ("IBAN DE89 3704 0044 0532 0130 00.", [("IBAN", "DE89 3704 0044 0532 0130 00")]),
    ("DE89370400440532013000", [("IBAN", "DE89370400440532013000")]),
    ("Send it to GB82 WEST 1234 5698 7654 32 SEPA", [("IBAN", "GB82 WEST 1234 5698 7654 32")]),
    ("FR14 2004 1010 0505 0001 3M02 606 (Paris)", [("IBAN", "FR14 2004 1010 0505 0001 3M02 606")]),
    (
        "NL91ABNA0417164300, BE68 5390 0754 7034 and NO93 8601 1117 947",
        [
            ("IBAN", "NL91ABNA0417164300"),
            ("IBAN", "BE68 5390 0754 7034"),
            ("IBAN", "NO93 8601 1117 947"),
        ],
    ),
    ("My SSN is 123-45-6789.", [("SSN", "123-45-6789")]),
    ("ssn 078 05 1120", [("SSN", "078 05 1120")]),
    ("SSN: 219099999 on file", [("SSN", "219099999")]),
    ("Social Security number 123456789", [("SSN", "123456789")]),
    ("NI number AB 12 34 56 C.", [("NINO", "AB 12 34 56 C")]),
    ("CE123456D", [("NINO", "CE123456D")]),
    ("Sécu : 1 84 12 76 451 089 46.", [("NIR", "1 84 12 76 451 089 46")]),
    ("NIR 184127645108946", [("NIR", "184127645108946")]),
    ("Corse : 2 69 05 2A 123 456 88", [("NIR", "2 69 05 2A 123 456 88")]),
    (
        "Host 192.0.2.1, then 198.51.100.7:8080.",
        [
            ("IP", "192.0.2.1"),
            ("IP", "198.51.100.7"),
        ],
    ),
    (
        "http://203.0.113.9/login from 10.1.2.3-10.1.2.9",
        [
            ("IP", "203.0.113.9"),
            ("IP", "10.1.2.3"),
            ("IP", "10.1.2.9"),
        ],
    ),
    (
        "v6 2001:db8::1 and [2001:db8:85a3::8a2e:370:7334]:443",
        [
            ("IP", "2001:db8::1"),
            ("IP", "2001:db8:85a3::8a2e:370:7334"),
        ],
    ),
    (
        "::ffff:192.0.2.1 or 2001:0db8:85a3:0000:0000:8a2e:0370:7334.",
        [
            ("IP", "::ffff:192.0.2.1"),
            ("IP", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
        ],
    ),
    (
        "Jane (jane@example.com, +44 20 7946 0958) paid with 4111 1111 1111 1111 from "
        "GB82 WEST 1234 5698 7654 32 at 192.0.2.44",
        [
            ("EMAIL", "jane@example.com"),
            ("PHONE", "+44 20 7946 0958"),
            ("CARD", "4111 1111 1111 1111"),
            ("IBAN", "GB82 WEST 1234 5698 7654 32"),
            ("IP", "192.0.2.44"),
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), PII_FOUND)
def test_each_kind_of_pii_is_found_with_its_span(
    text: str, expected: list[tuple[str, str]]
) -> None:
    assert pii(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # Luhn
        "1234 5678 9012 3456",  # no network starts so, nor passes Luhn
        "4111 1111 1111 111",  # a Visa number has 13, 16 or 19 digits
        "DE89 3704 0044 0532 0130 01",  # check digits
        "DE00 3704 0044 0532 0130 00",
        "XX89 3704 0044 0532 0130 00",  # no such country
        "GB82 WEST 1234 5698 7654 3",  # one character short
        "000-12-3456",  # SSN area 000
        "666-12-3456",
        "123-00-4567",  # group 00
        "123-45-0000",  # serial 0000
        "SSN: 000123456",
        "DA 12 34 56 C",  # NINO: D never first
        "QQ123456C",  # nor Q
        "AO123456A",  # O never second
        "GB123456A",  # GB never a prefix
        "AB123456E",  # the suffix is A to D
        "1 84 12 76 451 089 47",  # NIR key
        "256.1.1.1",
        "999.999.999.999",
        "2001:db8::g1",
        "555-123-456",
        "+12 345",
    ],
)
def test_a_value_that_fails_its_check_is_not_found(text: str) -> None:
    assert find_pii(text) == []
    assert find_pii(f"Here: {text}.") == []


BENIGN = [
    "Run the EKS cluster on C4 and m5.large nodes in us-east-1; logs go to S3 and EC2 metrics.",
    "The t3.micro instance in eu-west-2b costs $0.0104 per hour, an r6g.2xlarge about $0.4032.",
    "Upgrade to Python 3.11.7, Django 4.2.11 and numpy 1.26.4; Kubernetes v1.29.3 and v10.4.12.",
    "Chrome 120.0.6099.109 and Firefox 121.0.1 both pass; the Windows build is 10.0.19045.3803.",
    "The release on 2024-01-15 replaces 15/01/2024, also written 2024.01.15 or 01.15.2024.",
    "The job ran from 12:30:45 to 13:05:10 UTC, i.e. 2024-01-15T12:30:45Z to 13:05:10+00:00.",
    "Prices: $1,299.99, €2.499,00, £349.50 and ¥120000; the total came to 12,345.67 USD.",
    "Please look at ticket 12345 and order 987654321 before the sprint ends in 2025.",
    "The request id is 550e8400-e29b-41d4-a716-446655440000 and the trace 4bf92f3577b34da6a3ce.",
    "Commit 3f2a9c1b7d4e5f60718293a4b5c6d7e8f9012345 fixed it; see also a1b2c3d and 9fceb02.",
    "The sha256 is e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.",
    "Open http://localhost:8080/health and http://127.0.0.1:5000/api, or bind to 0.0.0.0:443.",
    "The service listens on port 8443 and the metrics on :9090; Redis is at redis:6379.",
    "def add(a: int, b: int) -> int: return a + b  # 2 + 3 == 5",
    'for i in range(1, 10): print(f"{i:03d}: {i * 1.5:.2f}")',
    "x = np.zeros((1024, 768), dtype=np.float32); y = x[::2, 1::3]; z = arr[10::20]",
    "@dataclass(frozen=True) class Point: x: float = 0.0; y: float = 0.0",
    "std::vector<int> v{1, 2, 3}; std::map<std::string, int> m; auto it = m.begin();",
    "use std::collections::HashMap; let x: Vec<u8> = Vec::with_capacity(4096);",
    "| Region    | vCPU | Memory (GiB) | Price/hour |",
    "|-----------|------|--------------|------------|",
    "| us-east-1 | 4    | 16           | 0.192      |",
    "| eu-west-1 | 8    | 32           | 0.384      |",
    "The matrix product is C = A @ B, and torch.matmul(a, b) does the same on the GPU.",
    'Install with pip install "httpx>=0.27,<1.0" and npm install lodash@4.17.21 @types/node@20.',
    "The image is python:3.11-slim@sha256:2e3b8f and the chart nginx-ingress-4.9.1.",
    "git clone git@github.com:example/repo.git and push to origin main.",
    "Retina assets: logo@2x.png and logo@3x.png sit next to logo.svg.",
    "The ratio is 16:9 at 1920x1080, 60 fps, bitrate 8000 kbps, 48 kHz audio.",
    "The netmask 255.255.255.0 and the metadata endpoint 169.254.169.254 are set by DHCP.",
    "The office is at 221B Baker Street, London, and opens Monday to Friday, 9:00-17:30.",
    "Our address: 1600 Amphitheatre Parkway, Mountain View, CA 94043, United States.",
    "The building has 12 floors, 240 rooms and 3 elevators built in 1998.",
    "Use ISBN 978-0-306-40615-7 and ISSN 2049-3630 when citing the book.",
    "The semver range ^1.2.3 matches 1.9.0 but not 2.0.0; ~0.4.1 allows 0.4.9.",
    "The CIDR block 10.0.0.0/16 has subnets 10.0.1.0/24 and 2001:db8::/32.",
    "Errors rose by 3.5% week over week, from 1,024 to 1,060 per 100000 requests.",
    "The model has 7B parameters, a 128k context, and runs at 45 tokens/s on an A100 80GB.",
    "Set MAX_TOKENS=4096, TEMPERATURE=0.7 and TOP_P=0.95 in the .env file.",
    "The HTTP status was 404, then 503, and finally 200 after 3 retries with backoff 1.5.",
    "Linux kernel 6.5.0-14-generic, glibc 2.35, OpenSSL 3.0.2 15 Mar 2022.",
    "The GPS position is 48.8584, 2.2945 at an altitude of 330 m.",
    "Phone models: iPhone 15 Pro, Pixel 8, Galaxy S24 Ultra; chips A17, M3, Snapdragon 8 Gen 3.",
    "Call the function with timeout=30.0, retries=5 and backoff_factor=0.3.",
    "The log line reads: 2024-01-15 12:30:45,123 INFO [main] started in 2.345 s.",
    "Unix time 1705322445 is 2024-01-15; in milliseconds it is 1705322445123.",
    "The file is 1,234,567 bytes (1.2 MB) and has 42 lines and 7 columns.",
    "Ubuntu 22.04.3 LTS, macOS 14.2.1, Windows 11 23H2, Android 14.",
    "Our SLA is 99.95% uptime with RTO 4 h and RPO 15 min, reviewed every Q3.",
    "Add the header X-Request-ID: 7f3c and the query ?page=2&per_page=100.",
    "The colour is #1E90FF, rgb(30, 144, 255), or hsl(210, 100%, 56%).",
    "Temperature ranges from -20 to +40 degrees; the score went +15 points.",
    "The migration m0042_add_index ran in 0.35 s on 2,000,000 rows.",
    "CUDA 12.1, cuDNN 8.9.2, driver 535.104.05 on an H100 SXM5.",
    "Version 1.2.3.4 of the plugin and build 10.0.0.1 of the installer are current.",
    "The spreadsheet cell A1 equals SUM(B2:B20) / COUNT(C2:C20).",
    "The MAC address 00:1A:2B:3C:4D:5E belongs to eth0; its MTU is 9001.",
    "Set the Terraform variable instance_count = 3 and the AMI ami-0abcdef1234567890.",
    "The AWS account 123456789012 owns arn:aws:s3:::my-bucket/path/* in eu-central-1.",
    "A UUID looks like 123e4567-e89b-12d3-a456-426614174000 in lowercase hex.",
    "The tests took 12.34 s: 456 passed, 7 skipped, 1 xfailed.",
    "Mix 2 cups of flour with 1.5 cups of milk and bake at 180 °C for 25-30 minutes.",
    "Flight LH 400 leaves at 10:35 from gate B44 and lands at 13:10 local time.",
    "The ratio 3:2:1 and the range 1-100 are both valid inputs for the sampler.",
    "He scored 98/100 on the test and finished 3rd of 250 runners in 2:45:30.",
    "Reference AB-1234-XY and part no. PN-00042-B are in stock; postcode SW1A 1AA.",
    "Keys such as sk-... or ghp_... are placeholders in the docs; scikit-learn is sk-learn.",
    "Send Authorization: Bearer <token> and the header x-api-key: $API_KEY.",
    "-----BEGIN CERTIFICATE----- and -----BEGIN PUBLIC KEY----- hold nothing secret.",
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk",
    "The diff shows +1234 -567 lines in 42 files; coverage went from 81.2% to 83.4%.",
    "Run kubectl scale deploy/api --replicas=3 -n prod and helm upgrade api ./chart.",
    "Le rendez-vous est le 15/01/2024 à 14h30, salle 2.05, commande n° 2024-000123.",
    "The SIREN 732 829 320 and the zip code 75008 Paris are public.",
    'KEY_USAGE = ObjectIdentifier("2.5.29.15"), see section 4.2.1.3 and RFC 5545 3.8.2.4.',
    "The interface has fe80::1ff:fe23:4567:890a%eth0, joins ff02::1 and reads file@1.txt.",
    "Placeholders: " + "ghp_" + "x" * 36 + " and " + "sk_live_" + "0" * 24 + ".",
]


@pytest.mark.parametrize("line", BENIGN)
def test_ordinary_text_raises_nothing(line: str) -> None:
    assert pii(line) == []
    assert secrets(line) == []


def test_the_benign_corpus_is_large_and_raises_nothing_as_one_text() -> None:
    assert len(BENIGN) >= 60
    text = "\n".join(BENIGN)
    assert pii(text) == []
    assert secrets(text) == []


def test_of_two_overlapping_hits_the_longer_stays() -> None:
    # The national number inside the international one.
    assert pii("+1 555-123-4567") == [("PHONE", "+1 555-123-4567")]
    # A NINO-shaped local part inside an address.
    assert pii("AB123456C@example.com") == [("EMAIL", "AB123456C@example.com")]
    # A Twilio-shaped key inside a Slack bot token.
    slack = "xox" + "b-1234567890-9876543210-SK" + fake(32, HEX)
    assert secrets(f"token {slack} here") == [("SLACK_TOKEN", slack)]


def test_hits_are_sorted_and_never_overlap() -> None:
    text = "\n".join(t for t, _ in PII_FOUND)
    hits = find_pii(text)
    assert len(hits) == sum(len(expected) for _, expected in PII_FOUND)
    assert all(a.end <= b.start for a, b in itertools.pairwise(hits))


def test_kinds_filters_what_is_looked_for() -> None:
    text = "jane@example.com, +44 20 7946 0958, 4111 1111 1111 1111, AB123456C@example.com"
    assert pii(text, frozenset({"EMAIL"})) == [
        ("EMAIL", "jane@example.com"),
        ("EMAIL", "AB123456C@example.com"),
    ]
    assert pii(text, frozenset({"PHONE", "CARD"})) == [
        ("PHONE", "+44 20 7946 0958"),
        ("CARD", "4111 1111 1111 1111"),
    ]
    # With addresses not looked for, the NINO inside one is a NINO.
    assert pii(text, frozenset({"NINO"})) == [("NINO", "AB123456C")]
    assert find_pii(text, frozenset()) == []
    assert len(find_pii(text, frozenset(PII_KINDS))) == 4
    with pytest.raises(ValueError, match="PASSPORT"):
        find_pii(text, frozenset({"EMAIL", "PASSPORT"}))


def test_an_address_is_at_most_254_characters() -> None:
    domain = "a" * 63 + "." + "b" * 63 + "." + "c" * 57 + ".com"
    longest = "x" * 64 + "@" + domain
    assert len(longest) == MAX_PII_CHARS == 254
    assert pii(f"to {longest}.") == [("EMAIL", longest)]
    assert pii(f"to y{longest}.") == []  # a local part of 65 characters


JWT = b64({"alg": "HS256", "typ": "JWT"}) + "." + b64({"sub": "1234567890", "iat": 1516239022})
JWT_SIGNED = JWT + "." + fake(43, URLSAFE)
JWT_LONG = JWT + b64({"roles": [fake(40) for _ in range(50)]})[3:] + "." + fake(342, URLSAFE)
PEM_BEGIN = "-----BEGIN " + "RSA PRIVATE KEY-----"
PEM = "\n".join(
    [
        PEM_BEGIN,
        *(fake(64, ALNUM + "+/", seed) for seed in range(12)),
        "-----END RSA PRIVATE KEY-----",
    ]
)
SLACK_HOOK = (
    "https://hooks.slack.com/services/T"
    + fake(8, string.ascii_uppercase)
    + "/B"
    + fake(8, string.ascii_uppercase)
    + "/"
    + fake(24)
)

SECRET_FOUND: list[tuple[str, str]] = [
    ("OPENAI_KEY", "sk-proj-" + fake(74, URLSAFE) + "T3BlbkFJ" + fake(74, URLSAFE, 3)),
    ("OPENAI_KEY", "sk-proj-" + fake(156, URLSAFE)),
    ("OPENAI_KEY", "sk-svcacct-" + fake(58, URLSAFE) + "T3BlbkFJ" + fake(58, URLSAFE, 5)),
    ("OPENAI_KEY", "sk-admin-" + fake(120, URLSAFE)),
    ("OPENAI_KEY", "sk-" + fake(20) + "T3BlbkFJ" + fake(20, ALNUM, 9)),
    ("ANTHROPIC_KEY", "sk-ant-api03-" + fake(93, URLSAFE) + "AA"),
    ("ANTHROPIC_KEY", "sk-ant-admin01-" + fake(93, URLSAFE) + "AA"),
    ("AWS_ACCESS_KEY", "AKIA" + fake(16, string.ascii_uppercase + "234567")),
    ("AWS_ACCESS_KEY", "ASIA" + fake(16, string.ascii_uppercase + "234567", 4)),
    ("AWS_ACCESS_KEY", "AKIA" + "IOSFODNN7EXAMPLE"),  # AWS's documentation key
    ("GITHUB_TOKEN", "ghp_" + fake(36)),
    ("GITHUB_TOKEN", "gho_" + fake(36, ALNUM, 1)),
    ("GITHUB_TOKEN", "ghs_" + fake(36, ALNUM, 2)),
    ("GITHUB_TOKEN", "ghu_" + fake(36, ALNUM, 3)),
    ("GITHUB_TOKEN", "ghr_" + fake(36, ALNUM, 4)),
    ("GITHUB_TOKEN", "github_pat_" + fake(82, ALNUM + "_")),
    ("GITLAB_TOKEN", "glpat-" + fake(20, URLSAFE)),
    ("GITLAB_TOKEN", "glpat-" + fake(27, URLSAFE) + ".01" + fake(7, HEX)),
    ("SLACK_TOKEN", "xox" + "b-1234567890-9876543210-" + fake(24)),
    ("SLACK_TOKEN", "xox" + "p-1234567890-2345678901-3456789012-" + fake(32, HEX)),
    ("SLACK_TOKEN", "xox" + "a-2-" + fake(8)),  # the shortest a rule finds
    ("SLACK_TOKEN", "xox" + "r-" + fake(40)),
    ("SLACK_TOKEN", "xox" + "s-1234-5678-9012-" + fake(40, HEX)),
    ("SLACK_TOKEN", "xox" + "e-1-" + fake(146)),
    ("SLACK_TOKEN", "xox" + "e.xoxb-1-" + fake(166)),
    ("SLACK_TOKEN", "xap" + "p-1-A0123456789-1234567890123-" + fake(64, HEX)),
    ("SLACK_WEBHOOK", SLACK_HOOK),
    ("STRIPE_KEY", "sk_live_" + fake(24)),
    ("STRIPE_KEY", "sk_live_" + fake(10)),
    ("STRIPE_KEY", "rk_test_" + fake(99)),
    ("STRIPE_KEY", "sk_test_" + "4eC39HqLyjWDarjtT1zdp7dc"),  # Stripe's documentation key
    ("GOOGLE_API_KEY", "AIza" + fake(35, URLSAFE)),
    ("HUGGINGFACE_TOKEN", "hf_" + fake(34, string.ascii_letters)),
    ("NPM_TOKEN", "npm_" + fake(36)),
    ("SENDGRID_KEY", "SG." + fake(22, URLSAFE) + "." + fake(43, URLSAFE, 6)),
    ("TWILIO_KEY", "SK" + fake(32, HEX)),
    ("JWT", JWT_SIGNED),
    ("JWT", JWT + "."),  # unsigned
    ("JWT", JWT_LONG),
    ("PRIVATE_KEY", PEM),
    ("PYPI_TOKEN", "pypi-AgEIcHlwaS5vcmc" + fake(150, URLSAFE)),
    ("GROQ_KEY", "gsk_" + fake(52)),
    ("XAI_KEY", "xai-" + fake(80)),
    ("PERPLEXITY_KEY", "pplx-" + fake(48)),
    ("OPENROUTER_KEY", "sk-or-v1-" + fake(64, HEX)),
    ("DIGITALOCEAN_TOKEN", "dop_v1_" + fake(64, HEX)),
    ("DATABRICKS_TOKEN", "dapi" + fake(32, HEX)),
    ("SHOPIFY_TOKEN", "shpat_" + fake(32, HEX)),
    ("AGE_SECRET_KEY", "AGE-SECRET-KEY-1" + fake(58, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L")),
]


@pytest.mark.parametrize(("kind", "token"), SECRET_FOUND)
@pytest.mark.parametrize(
    "around", ["{}", "key: {}.", 'API_KEY="{}"', "(see {})", "{}\nnext", "`{}`,"]
)
def test_each_kind_of_secret_is_found_with_its_span(kind: str, token: str, around: str) -> None:
    text = around.format(token)
    assert secrets(text) == [(kind, token)]
    assert kind in SECRET_KINDS


def test_every_named_kind_exists() -> None:
    named = {"OPENAI_KEY", "ANTHROPIC_KEY", "AWS_ACCESS_KEY", "GITHUB_TOKEN", "GITLAB_TOKEN"}
    named |= {"SLACK_TOKEN", "STRIPE_KEY", "GOOGLE_API_KEY", "HUGGINGFACE_TOKEN", "NPM_TOKEN"}
    named |= {"SENDGRID_KEY", "TWILIO_KEY", "JWT", "PRIVATE_KEY"}
    assert named <= set(SECRET_KINDS)
    assert {kind for kind, _ in SECRET_FOUND} == set(SECRET_KINDS)
    assert set(PII_KINDS) >= {"EMAIL", "PHONE", "CARD", "IBAN", "SSN", "NINO", "NIR", "IP"}


def test_a_private_key_without_its_end_is_its_begin_line() -> None:
    text = f"{PEM_BEGIN}\n{fake(64)}\n{fake(64, ALNUM, 1)}"
    assert secrets(text) == [("PRIVATE_KEY", PEM_BEGIN)]
    two = f"{PEM_BEGIN}\n{fake(64)}\n{PEM}"  # the first never ends: its line only
    assert secrets(two) == [("PRIVATE_KEY", PEM_BEGIN), ("PRIVATE_KEY", PEM)]
    assert secrets(f"{PEM}\n{PEM}") == [("PRIVATE_KEY", PEM), ("PRIVATE_KEY", PEM)]


@pytest.mark.parametrize(
    "text",
    [
        "ghp_" + "a" * 36,  # a placeholder: too little entropy
        "sk_live_" + "x" * 24,
        "AKIA" + "A" * 16,
        "sk-proj-" + fake(40, URLSAFE),  # too short
        "x" + "ghp_" + fake(36),  # inside a longer word
        "ghp_" + fake(37),  # one character too many
        "AKIA" + fake(16, string.ascii_uppercase + "234567") + "Z",
        "sk-ant-api03-" + fake(93, URLSAFE) + "AB",
        "eyJhbGciOiJIUzI1NiJ9 alone",
        "SG." + fake(22, URLSAFE),
        "-----BEGIN " + "PUBLIC KEY-----",
    ],
)
def test_look_alikes_are_not_secrets(text: str) -> None:
    assert secrets(text) == []


OPEN_ENDED = {"JWT", "PRIVATE_KEY", "PYPI_TOKEN"}


def test_every_hit_fits_what_a_stream_holds_back() -> None:
    texts = [text for text, _ in PII_FOUND]
    texts.append("to " + "x" * 64 + "@" + "a" * 63 + "." + "b" * 63 + "." + "c" * 57 + ".com.")
    for text in texts:
        for hit in find_pii(text):
            assert hit.end - hit.start <= MAX_PII_CHARS
            assert hit in find_pii(text[: hit.start + MAX_PII_CHARS])
    for kind, token in SECRET_FOUND:
        text = f"the key {token} here"
        (hit,) = find_secrets(text)
        if kind not in OPEN_ENDED:
            assert hit.end - hit.start <= MAX_SECRET_CHARS
        # Its first MAX_SECRET_CHARS characters are enough to know it, open-ended or not.
        cut = find_secrets(text[: hit.start + MAX_SECRET_CHARS])
        assert cut[0].start == hit.start
        assert cut[0].kind == kind
    assert len(PEM_BEGIN) <= MAX_SECRET_CHARS
    assert len(JWT_LONG) > MAX_SECRET_CHARS  # the case the rule above is for


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        # 9xx areas are ITINs: a taxpayer's number as much as an SSN (Presidio finds them too)
        ("SSN 927-24-0299 on file", "SSN", "927-24-0299"),
        # Slack's shape with short numeric fields (pii-leak-benchmark's fixture)
        ("slack token " + "xo" + "xb-00000-00000-EXAMPLENOTAREALTOKEN.", "SLACK_TOKEN", None),
    ],
)
def test_shapes_a_leak_benchmark_sends_are_found(text: str, kind: str, value: str | None) -> None:
    hits = find_pii(text) if kind == "SSN" else find_secrets(text)
    assert [h.kind for h in hits] == [kind]
    if value is not None:
        assert text[hits[0].start : hits[0].end] == value


def test_a_percent_encoded_address_is_found_where_it_is_written() -> None:
    text = "see https://x.example/?to=jane.doe%40example.com&y=1 now"
    (hit,) = find_pii(text)
    assert (hit.kind, text[hit.start : hit.end]) == ("EMAIL", "jane.doe%40example.com")
