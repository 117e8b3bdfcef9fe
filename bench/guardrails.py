"""What guardrails cost (issue 41): per request for the input checks, per chunk and on the
first token for an output check on a stream.

1. In process: ``Guard.screen_input`` on a 2,000-character user message with the pii,
   secrets, regex and max_length checks (block, and pii masking a message that holds an
   address and a phone number), and an ``OutputWindow`` fed a 2,000-character answer in
   4-character chunks (per chunk).
2. Through ``headend serve`` (as shipped: access log on), a model route in front of a fake
   upstream on loopback: the same 2,000-character message, sequential requests, with the
   four input checks in headend.yaml and without, alternating rounds: the p50 added.
3. First token: a stream whose upstream writes a word every ``--gap`` ms; the time from the
   request to the first text the client reads, with pii and secrets checking the output
   (block) and without.

    .venv/bin/python bench/guardrails.py [--requests 400] [--rounds 3] [--streams 40]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sites import served_site  # noqa: E402
from tests.upstream import FakeUpstream, Reply  # noqa: E402

from headend.guardrails.checks import Finding  # noqa: E402
from headend.guardrails.guard import Guard  # noqa: E402
from headend.guardrails.rules import GUARDRAILS  # noqa: E402

ADMIN = "bench-admin-key-0123456789abcdef"
CHECKS: list[dict[str, Any]] = [
    {"check": "pii"},
    {"check": "secrets"},
    {"check": "regex", "patterns": [r"(?i)\bproject nightjar\b"]},
    {"check": "max_length", "max_chars": 4000},
]
OUTPUT_CHECKS: list[dict[str, Any]] = [
    {"check": "pii", "apply_to": ["output"]},
    {"check": "secrets", "apply_to": ["output"]},
]
PROSE = (
    "On 2026-11-30 at 14:05 UTC the checkout service in eu-west-1 returned errors after the "
    "deploy of version 4.12.3 to the EKS cluster (m5.large nodes, S3 for the assets, C4 for "
    "the builds). Orders 48213 to 48290 were retried; the queue held 1,842 messages at its "
    "peak and drained by 14:31. Please summarise what happened, what we changed, and what "
    "we should watch next week, in plain words for the support team. "
)
MESSAGE = (PROSE * 8)[:2000]
PERSONAL = ("I am Jane, reach me at jane.doe@example.com or +44 20 7946 0958. " + MESSAGE)[:2000]


class Quiet:
    def checked(self, check: str, action: str, outcome: str, seconds: float) -> None:
        pass

    async def blocked(self, finding: Finding) -> None:
        pass


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.95)]


async def screening(rules: Any, text: str, iterations: int) -> list[float]:
    """Each run's guard made and its input screened, in one event loop (as a server)."""
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        guard = Guard(rules, Quiet())
        await guard.screen_input([{"role": "user", "content": text}])
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def in_process(iterations: int) -> None:
    print("## in process (µs)")
    print("| what | p50 | p95 |")
    print("|---|---:|---:|")
    masked = [{**CHECKS[0], "action": "mask"}, *CHECKS[1:]]
    for label, specs, text in (
        ("pii, secrets, regex, max_length on 2,000 chars (block)", CHECKS, MESSAGE),
        ("the same, pii masking an address and a phone", masked, PERSONAL),
    ):
        rules = GUARDRAILS.validate_python(specs)
        p50, p95 = percentiles(asyncio.run(screening(rules, text, iterations)))
        print(f"| {label} | {p50:,.0f} | {p95:,.0f} |")
    rules = GUARDRAILS.validate_python(OUTPUT_CHECKS)
    chunks = [MESSAGE[i : i + 4] for i in range(0, len(MESSAGE), 4)]
    per_chunk = []
    for _ in range(max(iterations // 20, 20)):
        window = Guard(rules, Quiet()).window()
        started = time.perf_counter()
        out = "".join(window.feed(chunk) for chunk in chunks) + asyncio.run(window.end())
        per_chunk.append((time.perf_counter() - started) * 1e6 / len(chunks))
        assert out == MESSAGE
    p50, p95 = percentiles(per_chunk)
    print(f"| an output window (pii, secrets), per 4-character chunk | {p50:,.1f} | {p95:,.1f} |")


def config(upstream: FakeUpstream, guardrails: list[dict[str, Any]]) -> str:
    lines = "".join(f"  - {rule}\n" for rule in guardrails)
    return (
        f'providers:\n  up: {{type: openai, base_url: "{upstream.url("b")}/v1"}}\n'
        "models:\n  gpt: up/gpt\n" + (f"guardrails:\n{lines}" if guardrails else "")
    )


def requests(url: str, count: int) -> list[float]:
    body = {"model": "gpt", "messages": [{"role": "user", "content": MESSAGE}]}
    headers = {"Authorization": f"Bearer {ADMIN}"}
    samples = []
    with httpx.Client(timeout=30, headers=headers) as client:
        for _ in range(20):
            client.post(url, json=body)
        for _ in range(count):
            started = time.perf_counter()
            answer = client.post(url, json=body)
            samples.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, answer.text
    return samples


def first_tokens(url: str, count: int, upstream: FakeUpstream, gap: float) -> list[float]:
    body = {"model": "gpt", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    headers = {"Authorization": f"Bearer {ADMIN}"}
    text = " ".join(f"word{n}" for n in range(30))
    samples = []
    with httpx.Client(timeout=30, headers=headers) as client:
        for _ in range(count + 3):
            upstream.script("b", Reply(text=text, chunk_delay=gap))
            started = time.perf_counter()
            first = None
            with client.stream("POST", url, json=body) as response:
                for line in response.iter_lines():
                    if first is None and '"content":"w' in line:
                        first = (time.perf_counter() - started) * 1000
            assert first is not None
            samples.append(first)
    return samples[3:]


def through_headend(args: argparse.Namespace, upstream: FakeUpstream) -> None:
    added: dict[str, list[float]] = {"off": [], "on": []}
    first: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(args.rounds):
        for name, rules, output in (("off", [], []), ("on", CHECKS, OUTPUT_CHECKS)):
            with served_site(config(upstream, [*rules, *output]), ADMIN) as server:
                url = server.api + "/chat/completions"
                added[name].append(statistics.median(requests(url, args.requests)))
                first[name].append(
                    statistics.median(first_tokens(url, args.streams, upstream, args.gap / 1000))
                )
    print("\n## through headend serve (ms, median of each round's p50)")
    print("| what | without guardrails | with | added |")
    print("|---|---:|---:|---:|")
    off, on = statistics.median(added["off"]), statistics.median(added["on"])
    print(
        f"| a request with a 2,000-char message (4 input checks) | {off:.3f} | {on:.3f} | "
        f"{on - off:+.3f} |"
    )
    off, on = statistics.median(first["off"]), statistics.median(first["on"])
    print(
        f"| first token, a word every {args.gap:g} ms (pii, secrets on output) | {off:.1f} | "
        f"{on:.1f} | {on - off:+.1f} |"
    )
    print(f"rounds: {args.rounds}; each round's p50: without {added['off']} with {added['on']}")
    print(f"first token per round: without {first['off']} with {first['on']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=4000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--streams", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gap", type=float, default=20.0, help="ms between upstream words")
    parser.add_argument("--only", choices=["in-process", "headend"])
    args = parser.parse_args()
    if args.only != "headend":
        in_process(args.iterations)
    if args.only != "in-process":
        upstream = FakeUpstream()
        upstream.start()
        try:
            through_headend(args, upstream)
        finally:
            upstream.stop()


if __name__ == "__main__":
    main()
