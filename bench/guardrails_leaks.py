"""Does headend send personal data and secrets upstream, and give them back to the client?
pii-leak-benchmark 0.6.0 measures it, against ``headend serve`` whose only upstream is the
benchmark's capture server, with input masking (pii, secrets) and output checks on:

- its own commands, on Chat Completions streamed (what it drives): ``selfcheck`` with the
  pii-secrets-v1 and pii-v1 profiles, and the negative control (``capture://self``, which
  must say LEAK); ``pii-leak-benchmark-v2`` (values echoed back must be restored, values
  the user never sent must not reach the client) at the midpoint split, and with
  ``--exhaustive-splits`` (every split of each value across two chunks) and
  ``--partial-emission``;
- the same measurements by its own code on Chat Completions not streamed, and on Responses
  and Messages streamed and not (bench/leak_wires.py says what stands in for what); and
  ``selfcheck``'s once more with its SSN and Slack token in shapes headend's detectors take
  (a diagnostic: which failures are those two values' alone).

``selfcheck`` sends ``x-session-id``, which headend reads as a session to continue (404 if
unknown): it runs once straight at headend, then through a relay that drops that header.

The package and its dependency (httpx; jsonschema for ``--validate``) live in their own
venv, not in headend's::

    python3 -m venv /tmp/plb
    /tmp/plb/bin/pip install "pii-leak-benchmark[validate]==0.6.0"
    .venv/bin/python bench/guardrails_leaks.py --plb /tmp/plb [--seed HEX] [--quick]

Ports 8765 (v1 capture) and 8799 (v2 capture) must be free. Raw outputs go to
bench/results/guardrails-leaks.txt.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from leak_wires import (  # noqa: E402
    PATHS,
    WIRES,
    answer_text,
    exercise,
    json_capture,
    json_upstream,
    patched,
    stream_event,
    wire_request,
)
from measured import source_state  # noqa: E402
from tests.conftest import free_port, start_server, stop_server  # noqa: E402

V1_MODEL = "conformance-model"  # the package's default --target-model
V2_MODEL = "v2-model"
OUT = ROOT / "bench" / "results" / "guardrails-leaks.txt"
LOG: list[str] = []


def say(text: str = "") -> None:
    print(text, flush=True)
    LOG.append(text)


def config(capture_port: int, v2_port: int, output_secrets: str) -> str:
    return f"""
providers:
  cap: {{type: openai, base_url: "http://127.0.0.1:{capture_port}/v1", retry: {{attempts: 1}}}}
  v2cap: {{type: openai, base_url: "http://127.0.0.1:{v2_port}/v1", retry: {{attempts: 1}}}}
models:
  {V1_MODEL}: cap/{V1_MODEL}
  {V2_MODEL}: v2cap/{V2_MODEL}
guardrails:
  - {{check: pii, action: mask, apply_to: [input]}}
  - {{check: secrets, action: mask, apply_to: [input]}}
  - {{check: pii, action: mask, apply_to: [output]}}
  - {{check: secrets, action: {output_secrets}, apply_to: [output]}}
"""


def load_package(venv: Path) -> SimpleNamespace:
    """pii_leak_benchmark's modules, imported from its own venv's site-packages."""
    found = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import pii_leak_benchmark as p; print(p.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    sys.path.append(str(Path(found.stdout.strip()).parent.parent))
    names = ("http_profile", "selfcheck", "explain", "v2_emitter", "partial_emission")
    modules = {n: importlib.import_module(f"pii_leak_benchmark.{n}") for n in names}
    return SimpleNamespace(**modules, bin=venv / "bin")


class DropSessionHeader:
    """A relay to headend that drops ``x-session-id``, and changes nothing else.

    ``selfcheck`` sends ``x-session-id: conformance-<nonce>-<n>`` with every request; to
    headend that header names a session to continue, and an unknown one is 404
    ``session_not_found`` (README, Sessions), so nothing reaches the capture."""

    def __init__(self, target: str) -> None:
        self.target = target

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        dropped = {b"x-session-id", b"host", b"content-length", b"connection"}
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in dropped]
        query = scope["query_string"].decode()
        url = self.target + scope["path"] + (f"?{query}" if query else "")
        async with (
            httpx.AsyncClient(timeout=60) as client,
            client.stream(scope["method"], url, content=body, headers=headers) as answer,
        ):
            hop = {"content-length", "transfer-encoding", "connection"}
            await send(
                {
                    "type": "http.response.start",
                    "status": answer.status_code,
                    "headers": [
                        (k, v) for k, v in answer.headers.raw if k.decode().lower() not in hop
                    ],
                }
            )
            async for chunk in answer.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})


@contextmanager
def relay(target: str) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(DropSessionHeader(target), port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def command(plb: SimpleNamespace, name: str, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADEND_", "CONFORMANCE_"))}
    done = subprocess.run(
        [str(plb.bin / name), *args], capture_output=True, text=True, env=env, timeout=3600
    )
    say(f"$ {name} {' '.join(args)}   (exit {done.returncode})")
    for line in (done.stdout + done.stderr).rstrip().splitlines():
        say("    " + line)
    say()
    return done.returncode, done.stdout + done.stderr


def verdict_of(output: str) -> str:
    found = re.search(r"^  (CLEAN|LEAK|CHECK FAILED|NOT MEASURED)\s*$", output, re.M)
    return found.group(1) if found else "?"


def v2_line(output: str) -> str:
    return " ".join(
        " ".join(line.split())
        for line in output.splitlines()
        if line.startswith("headend") or "partial-emission=" in line or "->" in line
    )


SLACK_SHAPED = "xoxb-0000000000-0000000000-EXAMPLENOTAREALTOKEN"  # gitleaks' 10-13 digits


def ssn_shaped(hp: Any) -> str:
    """An SSN from an area SSA issues (001-899 but 666), under the package's other rules."""
    while True:
        area = 1 + secrets.randbelow(899)
        value = f"{area:03d}-{1 + secrets.randbelow(99):02d}-{1 + secrets.randbelow(9999):04d}"
        digits = value.replace("-", "")
        if area == 666 or any(digits.startswith(p) for p in hp._SSN_INVALIDATING_PREFIXES):
            continue
        if len(set(digits)) > 1 and not hp._ipv4_can_produce(digits):
            return value


def v1(
    plb: SimpleNamespace,
    wire: str,
    stream: bool,
    base: str,
    iterations: int,
    credentials: bool,
    shaped: bool = False,
) -> dict[str, Any]:
    """The package's v1 run, its verdict and what the client read, on one wire. ``shaped``:
    its SSN and Slack token in the shapes headend's detectors take (a diagnostic, not the
    package's fixture): an SSN outside the 900-999 area, a Slack token with 10-digit parts."""
    hp = plb.http_profile
    specimens = plb.explain.OperatorSpecimens()
    with ExitStack() as stack:
        stack.enter_context(patched(hp, "_exercise_target", exercise(wire, stream)))
        stack.enter_context(patched(hp, "_handler_for", json_capture(hp._handler_for)))
        if shaped:
            values = {**hp._CREDENTIAL_VALUES, "SLACK_TOKEN": SLACK_SHAPED}
            stack.enter_context(patched(hp, "_CREDENTIAL_VALUES", values))
            stack.enter_context(patched(hp, "_make_ssn", lambda: ssn_shaped(hp)))
        report = hp.run_http_conformance(
            base,
            model=V1_MODEL,
            implementation_name=f"headend {wire}",
            implementation_version="bench",
            iterations=iterations,
            include_credentials=credentials,
            specimens=specimens,
        )
    if not stream:  # more than one SSE event: a stream's property
        report["checks"].pop("fragmentation_safety")
    verdict, reason = plb.selfcheck.verdict_for(report)
    boundary = report["checks"]["configured_upstream_boundary"]
    return {
        "verdict": verdict,
        "reason": reason,
        "leaked": boundary["leaked_entity_types"] + boundary["unattributed_leaked_entity_types"],
        "correlated": boundary["correlated_requests"],
        "matching": report["checks"]["response_fidelity"]["iterations_matching"],
        "failed": [n for n, c in report["checks"].items() if not c.get("passed", True)],
        "prompt": specimens.prompt,
        "client": specimens.client_text,
    }


def shown(wire: str, stream: bool, raw: str) -> tuple[str, str]:
    """The text a client of ``wire`` reads in ``raw``, and any other delta/message field."""
    if not stream:
        try:
            answer = json.loads(raw)
        except json.JSONDecodeError:
            return raw[:200], ""
        message = answer.get("choices", [{}])[0].get("message", {}) if wire == "chat" else {}
        others = {k: v for k, v in message.items() if k not in ("role", "content", "refusal")}
        return answer_text(wire, answer) or "", json.dumps(others) if others else ""
    text: list[str] = []
    extra: list[str] = []
    for line in raw.splitlines():
        if not line.startswith("data:"):
            continue
        piece, _, _ = stream_event(wire, line[5:].strip())
        text += [piece] if piece else []
        if wire == "chat" and line[5:].strip() != "[DONE]":
            for choice in json.loads(line[5:]).get("choices", []):
                delta = choice.get("delta", {})
                extra += [str(v) for k, v in delta.items() if k not in ("role", "content")]
    return "".join(text), "".join(extra)


def v2(
    plb: SimpleNamespace,
    wire: str,
    stream: bool,
    url: str,
    port: int,
    seed: str,
    oracle: str,
    partial: bool,
) -> dict[str, Any]:
    """The package's v2 run (``run_policy``'s steps, keeping each case's result) and, if
    asked, its partial-emission pass, on one wire."""
    v2m, pe = plb.v2_emitter, plb.partial_emission
    label = f"headend-{wire}-{'stream' if stream else 'json'}"
    request = wire_request(v2m, wire, stream)
    seen: list[str] = []
    tier = v2m._leak_tier

    def leak_tier(value: str, sse: str) -> Any:
        seen.append(sse)
        return tier(value, sse)

    with ExitStack() as stack:
        stack.enter_context(patched(v2m, "build_request", request))
        stack.enter_context(patched(pe, "build_request", request))
        stack.enter_context(patched(v2m, "_leak_tier", leak_tier))
        if not stream:
            stack.enter_context(patched(v2m, "_make_upstream", json_upstream(v2m)))
        segments = v2m.build_segments(seed)
        cases = v2m.covering_array()
        bodies = json.dumps([v2m.build_request(segments, c) for c in cases], sort_keys=True)
        separation = v2m.check_segment_separation(segments, bodies)
        results, answers = [], []
        for case in cases:
            seen.clear()
            results.append(
                v2m.run_case(
                    segments,
                    label,
                    case,
                    gateway_url=url,
                    upstream_port=port,
                    model=V2_MODEL,
                    oracle=oracle,
                )
            )
            answers.append(seen[0] if seen else "")
        report = v2m.build_report(
            segments,
            results,
            separation,
            seed,
            context={"base_url": url, "model": V2_MODEL, "capture_port": port},
        )
        sidecar = (
            pe.run_partial_emission(
                label,
                seed=seed,
                gateway_url=url,
                upstream_port=port,
                model=V2_MODEL,
                oracle=oracle,
            )
            if partial
            else None
        )
    rows = []
    for result, raw in zip(results, answers, strict=True):
        bodies = result.upstream_bodies
        per_body = [v2m._boundary_haystacks([b]) for b in bodies]
        joined = v2m._boundary_haystacks(bodies)
        raw_up = [
            name
            for name, value in segments.echo.items()
            if v2m._boundary_evidence(bodies, per_body, joined, value)
        ]
        site = result.case["request_site"]
        upstream = v2m.extract_site(json.loads(bodies[0]), site) if bodies else None
        text, extra = shown(wire, stream, raw)
        rows.append(
            {"result": result, "raw_up": raw_up, "upstream": upstream, "text": text, "extra": extra}
        )
    metrics = report["metrics"]
    observable = [row for row in rows if row["result"].echo_observable]
    in_text = sum(all(v in row["text"] for v in segments.echo.values()) for row in observable)
    return {
        "text_fidelity": f"{in_text}/{len(observable)}",
        "label": label,
        "segments": segments,
        "fidelity": metrics["fidelity_rate"],
        "single": metrics["leak_rate"]["single_chunk"],
        "adversarial": metrics["leak_rate"]["adversarial"],
        "delta": metrics["delta_frag"],
        "n": f"{metrics['cases_applicable']}/{metrics['cases_scored']}",
        "boundary": report["checks"]["configured_upstream_boundary"]["leaked_entity_types"],
        "outcome": report["outcome"],
        "partial": (
            f"{sidecar['metrics']['cases_partial_emission']}/"
            f"{sidecar['metrics']['cases_applicable']}"
            if sidecar
            else "-"
        ),
        "rows": rows,
    }


def case_table(run: dict[str, Any]) -> None:
    say(f"{run['label']}: echo values {run['segments'].echo}")
    say(f"{'':{len(run['label'])}}  injected    {run['segments'].injection}")
    say(
        "| site | injected | encoding | carrier | split | echo not restored "
        "| upstream saw raw | injected value at the client |"
    )
    say("|---|---|---|---|---|---|---|---|")
    for row in run["rows"]:
        r = row["result"]
        case = r.case
        missing = [k for k, ok in r.echo_recovered.items() if not ok]
        injected = (
            f"{r.leak_tier} ({r.split_points_leaked}/{r.split_points_tried} splits)"
            if r.injection_leaked
            else f"no (0/{r.split_points_tried})"
        )
        if r.transport_error:
            injected = f"error: {r.transport_error[:80]}"
        say(
            f"| {case['request_site']} | {case['entity']} | {case['encoding']} "
            f"| {case['carrier']} | {case['fragmentation']} "
            f"| {', '.join(missing) if r.echo_observable else 'site dropped'} "
            f"| {', '.join(row['raw_up']) or '-'} | {injected} |"
        )
    say()
    say("Each failing case: what the upstream got at the case's site, what the client read")
    for row in run["rows"]:
        r = row["result"]
        missing = [k for k, ok in r.echo_recovered.items() if not ok]
        if not (r.injection_leaked or missing or row["raw_up"] or r.transport_error):
            continue
        case = r.case
        say(
            f"  {case['request_site']}/{case['entity']}/{case['encoding']}/{case['carrier']}/"
            f"{case['fragmentation']}"
        )
        say(f"    upstream: {row['upstream']!r}")
        say(
            f"    client:   {row['text']!r}"
            + (f"  other fields: {row['extra']!r}" if row["extra"] else "")
        )
    say()


def v1_table(title: str, rows: list[tuple[str, str, dict[str, Any]]], iterations: int) -> None:
    say(title)
    say(
        "| wire | streamed | verdict | reached upstream raw | client got its text back "
        "| checks failed |"
    )
    say("|---|---|---|---|---|---|")
    for wire, stream, row in rows:
        say(
            f"| {wire} | {stream} | {row['verdict']} | {', '.join(row['leaked']) or '-'} "
            f"| {row['matching']}/{iterations} | {', '.join(row['failed']) or '-'} |"
        )
    say()
    for wire, stream, row in rows:
        if row["verdict"] != "CLEAN" and "capture://self" not in wire:
            say(f"{wire} streamed={stream}: {row['verdict']}: {row['reason']}")
            say(f"    sent:   {row['prompt']!r}")
            say(f"    client: {row['client']!r}")
    say()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plb", type=Path, default=Path("/tmp/plb"), help="the package's venv")
    parser.add_argument("--seed", default=secrets.token_hex(8), help="the v2 fixture's seed")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--capture-port", type=int, default=8765)
    parser.add_argument("--v2-port", type=int, default=8799)
    parser.add_argument("--output-secrets", choices=("block", "mask"), default="block")
    parser.add_argument("--quick", action="store_true", help="v2 at the midpoint split only")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    plb = load_package(args.plb)
    say(source_state())
    oracle = "midpoint" if args.quick else "exhaustive-2-part"
    work = Path(tempfile.mkdtemp(prefix="headend-leaks-"))
    (work / "agents").mkdir()
    (work / "headend.yaml").write_text(config(args.capture_port, args.v2_port, args.output_secrets))
    say(f"headend.yaml:{(work / 'headend.yaml').read_text()}")
    server = start_server(
        work / "agents", work / "server.log", "--config", str(work / "headend.yaml")
    )
    summary: list[tuple[str, str, str]] = []
    wires: list[tuple[str, str, dict[str, Any]]] = []
    shaped: list[tuple[str, str, dict[str, Any]]] = []
    responses: list[dict[str, Any]] = []
    try:
        api = server.api
        code, out = command(
            plb, "pii-leak-benchmark", "selfcheck", "--target-base-url", "capture://self"
        )
        summary.append(("selfcheck, capture://self (negative control)", verdict_of(out), str(code)))
        code, out = command(plb, "pii-leak-benchmark", "selfcheck", "--target-base-url", api)
        asked = httpx.post(
            f"{api}/chat/completions",
            headers={"x-session-id": "conformance-run-0"},
            json={"model": V1_MODEL, "messages": [{"role": "user", "content": "Hi"}]},
        )
        error = asked.json()["error"]["code"]
        said = f"{verdict_of(out)}: with x-session-id headend answers {asked.status_code} {error}"
        summary.append(("selfcheck, straight to headend", said, str(code)))
        with relay(server.base_url) as relayed:
            for profile in ("pii-secrets-v1", "pii-v1"):
                code, out = command(
                    plb,
                    "pii-leak-benchmark",
                    "selfcheck",
                    "--target-base-url",
                    relayed + "/v1",
                    "--profile",
                    profile,
                )
                summary.append(
                    (f"selfcheck --profile {profile} (relayed)", verdict_of(out), str(code))
                )
        v2_args = [
            "--validate",
            "--only",
            "headend",
            "--gateway-url",
            f"{api}/chat/completions",
            "--upstream-port",
            str(args.v2_port),
            "--model",
            V2_MODEL,
            "--seed",
            args.seed,
        ]
        code, out = command(plb, "pii-leak-benchmark-v2", "--out", str(work / "v2"), *v2_args)
        summary.append(("pii-leak-benchmark-v2 (midpoint)", v2_line(out), str(code)))
        if not args.quick:
            code, out = command(
                plb,
                "pii-leak-benchmark-v2",
                "--out",
                str(work / "v2x"),
                *v2_args,
                "--exhaustive-splits",
                "--partial-emission",
            )
            summary.append(
                (
                    "pii-leak-benchmark-v2 --exhaustive-splits --partial-emission",
                    v2_line(out),
                    str(code),
                )
            )

        for stream in (True, False):
            wires.append(
                (
                    "chat (capture://self)",
                    str(stream),
                    v1(plb, "chat", stream, "capture://self", args.iterations, True),
                )
            )
        for wire in WIRES:
            for stream in (True, False):
                wires.append((wire, str(stream), v1(plb, wire, stream, api, args.iterations, True)))
        for wire in WIRES:
            for stream in (True, False):
                row = v1(plb, wire, stream, api, args.iterations, True, shaped=True)
                shaped.append((wire, str(stream), row))
        for wire in WIRES:
            for stream in (True, False):
                responses.append(
                    v2(
                        plb,
                        wire,
                        stream,
                        api + PATHS[wire],
                        args.v2_port,
                        args.seed,
                        oracle if stream else "midpoint",
                        stream and not args.quick,
                    )
                )
    finally:
        stop_server(server)
        say("headend's log, its warnings and errors:")
        for line in server.output().splitlines():
            if " WARNING " in line or " ERROR " in line:
                say("    " + line)
        say()

    say("## The package's own commands (Chat Completions, streamed)")
    say("| command | result | exit |")
    say("|---|---|---:|")
    for name, result, status in summary:
        say(f"| {name} | {result} | {status} |")
    say()
    v1_table("## v1 (selfcheck's measurement, pii-secrets-v1) by wire", wires, args.iterations)
    v1_table(
        "## v1 again, its SSN and Slack token in shapes headend detects (a diagnostic)",
        shaped,
        args.iterations,
    )
    say(f"## v2 (response split) by wire, seed {args.seed}; streamed: {oracle}, JSON: one piece")
    say(
        "| wire | streamed | fidelity | echo in the text read | leak, single chunk "
        "| leak, split | DeltaFrag | n | upstream saw raw | partial emission | outcome |"
    )
    say("|---|---|---:|---:|---:|---:|---:|---|---|---|---|")
    for run in responses:
        _, wire, kind = run["label"].split("-")
        say(
            f"| {wire} | {kind == 'stream'} | {run['fidelity']} | {run['text_fidelity']} "
            f"| {run['single']} "
            f"| {run['adversarial']} | {run['delta']} | {run['n']} "
            f"| {', '.join(run['boundary']) or '-'} | {run['partial']} | {run['outcome']} |"
        )
    say()
    for run in responses:
        case_table(run)
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text("\n".join(LOG) + "\n")
    print(f"raw output: {args.out}")
    clean = all(r["verdict"] == "CLEAN" for w, _, r in wires if "capture://self" not in w)
    return 0 if clean and all(r["outcome"] == "pass" for r in responses) else 1


if __name__ == "__main__":
    sys.exit(main())
