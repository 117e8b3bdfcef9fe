"""Gateway overhead: an upstream called directly, through headend and through its peers.

In one run, on the same machine and the same fixed-answer upstream (nginx answering a static
chat.completion, or a static SSE stream, on loopback), wrk measures requests per second,
p50/p99 latency and each gateway's CPU time per request, at 1, 16 and 64 connections,
non-streaming and streaming, for (bench/peers.py):

  direct         wrk -> nginx
  bare           a bare 20-line Starlette + aiohttp proxy (bench/bare_proxy.py)
  headend        headend as shipped: defaults (access log on, log level info), a key
  headend-ops    what an operator turns on: a key with rates, a concurrency cap and a budget,
                 prices, JSON logs
  headend-quiet  --no-access-log --log-level warning (how earlier runs measured it)
  tensorzero     TensorZero's Rust gateway from its PyPI wheel, one Tokio thread
  portkey        Portkey's gateway (Node) from npm
  litellm        LiteLLM's proxy, one worker

Each gateway runs alone (an idle one still takes CPU from the one measured); with --rounds
they alternate, so the machine's drift falls on all of them alike.

    bench/setup.sh                                  # nginx, wrk and the peers
    .venv/bin/python bench/gateway.py [--duration 8] [--connections 1,16,64] [--rounds 2]

Everything listens on 127.0.0.1 only, and each wrk run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.peers import (  # noqa: E402
    MODES,
    Target,
    Upstreams,
    bare_target,
    headend_targets,
    litellm_target,
    models_of,
    portkey_target,
    tensorzero_target,
)
from tests.conftest import free_port  # noqa: E402

COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "bench-model",
    "system_fingerprint": "fp_bench",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello! How can I help?", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16},
}


def sse_body() -> str:
    head = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-model",
        "system_fingerprint": "fp_bench",
    }

    def chunk(delta: dict[str, object], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return "data: " + json.dumps({**head, "choices": [choice]}) + "\n\n"

    words = ["Hello", "!", " How", " can", " I", " help", "?"]
    frames = [chunk({"role": "assistant", "content": ""})]
    frames += [chunk({"content": word}) for word in words]
    frames.append(chunk({}, "stop"))
    usage = {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16}
    frames.append("data: " + json.dumps({**head, "choices": [], "usage": usage}) + "\n\n")
    frames.append("data: [DONE]\n\n")
    return "".join(frames)


def nginx_conf(workdir: Path, json_port: int, sse_port: int) -> str:
    def literal(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return f"""
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {workdir}/body;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{json_port};
    location / {{ default_type application/json; return 200 {literal(json.dumps(COMPLETION))}; }}
  }}
  server {{
    listen 127.0.0.1:{sse_port};
    location / {{ default_type text/event-stream; return 200 {literal(sse_body())}; }}
  }}
}}
"""


@dataclass
class Result:
    target: str
    mode: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float  # the proxy's CPU time (all its processes) per request, in microseconds


def cpu_seconds(pid: int | None) -> float:
    """CPU time used so far by ``pid`` and its live children (a supervisor's workers)."""
    if pid is None:
        return 0.0
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(child) for child in children.read_text().split()]
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rpartition(")")[2].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _ms(value: str, unit: str) -> float:
    return (
        float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}[unit]
    )


KEY = "sk-bench-" + os.urandom(24).hex()  # LiteLLM refuses to start without a master key


def wrk(
    url: str, body: dict[str, object], connections: int, duration: int, headers: dict[str, str]
) -> tuple[float, float, float, int]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        + "".join(
            f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}\n"
            for name, value in headers.items()
        )
    )
    threads = min(connections, 2)
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{duration}s",
            "--latency",
            "--timeout",
            "30s",  # slow targets are measured, not dropped as timeouts
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    percentiles = re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M)
    latency = {p: _ms(v, u) for p, v, u in percentiles}
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    nan = float("nan")  # wrk prints no distribution when nothing completed
    return rps, latency.get("50", nan), latency.get("99", nan), errors


def wait_ready(
    url: str, body: dict[str, object], headers: dict[str, str], seconds: float = 120
) -> None:
    """Until the gateway answers the benchmark's request right (a stream: with [DONE])."""
    deadline = time.monotonic() + seconds
    answer = None
    while time.monotonic() < deadline:
        try:
            answer = httpx.post(url, json=body, timeout=5, headers=headers)
            if answer.status_code == 200 and (not body.get("stream") or "[DONE]" in answer.text):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    said = f"{answer.status_code} {answer.text[:300]}" if answer is not None else "nothing"
    raise RuntimeError(f"{url} did not become ready: {said}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument(
        "--targets",
        default="direct,bare,headend,headend-ops,tensorzero,portkey,litellm",
        help="which to measure, in this order (also: headend-quiet, and 'headend xN' with "
        "--workers)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="write py-spy's collapsed stacks of each Python gateway here, sampled during its "
        "highest-connection run (sampling takes CPU: figures of such a run are not comparable)",
    )
    parser.add_argument("--skip-litellm", action="store_true", help="leave LiteLLM out")
    parser.add_argument("--modes", default="json,stream", help="json, stream or both")
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure the gateways this many times, alternating"
    )
    parser.add_argument(
        "--workers", default="1", help="headend's worker counts to measure, e.g. 1,2"
    )
    parser.add_argument("--redis", help="redis URL for headend (more than one worker needs it)")
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",")]
    if max(worker_counts) > 1 and not args.redis:
        sys.exit("--workers above 1 needs --redis redis://127.0.0.1:PORT/0")
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: run bench/setup.sh")
    connections = [int(c) for c in args.connections.split(",")]
    work = Path(tempfile.mkdtemp(prefix="headend-bench-"))
    json_port, sse_port, gateway_port = (free_port() for _ in range(3))
    up = Upstreams(json_port, sse_port)
    (work / "nginx.conf").write_text(nginx_conf(work, json_port, sse_port))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADEND_")}
    found: dict[str, Target | None] = {
        "direct": Target("direct", None, models=models_of(), note="nginx's fixed answers"),
        "bare": bare_target(up, gateway_port, env),
        "tensorzero": tensorzero_target(work, up, env),
        "portkey": portkey_target(up, gateway_port, env),
        "litellm": litellm_target(work, up, gateway_port, env, KEY),
    }
    for target in headend_targets(work, up, gateway_port, worker_counts, args.redis, env):
        found[target.name] = target
    wanted = args.targets.split(",") + [f"headend x{n}" for n in worker_counts if n > 1]
    if args.skip_litellm:
        wanted = [name for name in wanted if name != "litellm"]
    missing = [name for name in wanted if found.get(name) is None]
    if missing:
        print(f"not measured (bench/setup.sh installs them): {', '.join(missing)}", flush=True)
    chosen = [t for name in wanted if (t := found.get(name)) is not None]
    modes = [mode for mode in MODES if mode in args.modes.split(",")]
    gateways = [t for t in chosen if t.argv is not None]
    order = [t for t in chosen if t.argv is None] + gateways * args.rounds
    results: list[Result] = []
    upstream = subprocess.Popen(
        ["nginx", "-c", str(work / "nginx.conf")], stderr=subprocess.DEVNULL
    )
    try:
        for turn, target in enumerate(order):
            label = target.name
            if target.argv is not None and args.rounds > 1:
                label += f" #{order[: turn + 1].count(target)}"
            results += run_target(target, label, modes, up, connections, args, work)
    finally:
        stop(upstream)
    report(results, chosen)


def run_target(
    target: Target,
    label: str,
    modes: list[str],
    up: Upstreams,
    connections: list[int],
    args: argparse.Namespace,
    work: Path,
) -> list[Result]:
    proxy = None
    if target.argv is not None:
        if target.base_file is not None:
            target.base_file.unlink(missing_ok=True)
        proxy = subprocess.Popen(
            target.argv,
            env=target.env,
            stdout=subprocess.DEVNULL,
            stderr=(work / f"{label.replace(' ', '')}.log").open("w"),
        )
    try:
        base = base_url(target, proxy)
        results = []
        for mode in modes:
            url = (up.url(mode).removesuffix("/v1") if proxy is None else base) + target.path
            profile = None
            if args.profile is not None and proxy is not None:
                args.profile.mkdir(parents=True, exist_ok=True)
                profile = args.profile / f"{label.replace(' ', '').replace('#', '-')}-{mode}.txt"
            results += measure(
                label,
                mode,
                url,
                target,
                connections,
                args.duration,
                proxy.pid if proxy is not None else None,
                profile,
            )
        return results
    finally:
        if proxy is not None:
            stop(proxy)


def base_url(target: Target, proxy: subprocess.Popen[bytes] | None) -> str:
    """Where the gateway listens: its port, or what its launcher wrote."""
    if target.base_file is None:
        return f"http://127.0.0.1:{target.port}"
    deadline = time.monotonic() + 120
    while not target.base_file.exists() or not target.base_file.read_text():
        if time.monotonic() > deadline or (proxy is not None and proxy.poll() is not None):
            raise RuntimeError(f"{target.name} did not start")
        time.sleep(0.1)
    return target.base_file.read_text().strip()


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def measure(
    label: str,
    mode: str,
    url: str,
    target: Target,
    connections: list[int],
    duration: int,
    pid: int | None = None,
    profile: Path | None = None,
) -> list[Result]:
    body: dict[str, object] = {
        "model": target.models[mode],
        "messages": [{"role": "user", "content": "Hello"}],
    }
    if mode == "stream":
        body["stream"] = True
    headers = {"Authorization": f"Bearer {target.key or KEY}", **target.headers.get(mode, {})}
    wait_ready(url, body, headers)
    wrk(url, body, 4, 2, headers)  # warm up
    results = []
    for count in connections:
        sampler = None
        if profile is not None and count == max(connections):
            sampler = subprocess.Popen(
                [
                    *("py-spy", "record", "--pid", str(pid), "--duration", str(duration)),
                    *("--rate", "250", "--format", "raw", "--nonblocking", "-o", str(profile)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        used = cpu_seconds(pid)
        rps, p50, p99, errors = wrk(url, body, count, duration, headers)
        cpu_us = (cpu_seconds(pid) - used) / (rps * duration) * 1e6 if pid and rps else 0.0
        if sampler is not None:
            sampler.wait(timeout=60)
        results.append(Result(label, mode, count, rps, p50, p99, errors, cpu_us))
        print(
            f"{label:14} {mode:6} c={count:<3} {rps:9.1f} req/s  p50 {p50:7.2f} ms  "
            f"p99 {p99:7.2f} ms  errors {errors}  cpu {cpu_us:5.0f} us/req",
            flush=True,
        )
    return results


def report(results: list[Result], targets: list[Target]) -> None:
    print("\n| mode | connections | target | req/s | p50 (ms) | p99 (ms) | CPU µs/req | errors |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.mode} | {r.connections} | {r.target} | {r.rps:,.0f} | {r.p50_ms:.2f} "
            f"| {r.p99_ms:.2f} | {r.cpu_us:,.0f} | {r.errors} |"
        )
    print("\nTargets:")
    for target in targets:
        print(f"- {target.name}: {target.note}")
    # Medians over the rounds, and headend's ratios to each reference, same run.
    by: dict[tuple[str, str, int], list[Result]] = {}
    for r in results:
        by.setdefault((r.target.partition(" #")[0], r.mode, r.connections), []).append(r)

    def median(name: str, mode: str, count: int) -> tuple[float, float, float] | None:
        rows = by.get((name, mode, count))
        if not rows:
            return None
        return (
            statistics.median(r.rps for r in rows),
            statistics.median(r.p50_ms for r in rows),
            statistics.median(r.cpu_us for r in rows),
        )

    names = list(dict.fromkeys(r.target.partition(" #")[0] for r in results))
    print("\n| mode | conns | " + " | ".join(names) + " |")
    print("|---|---:|" + "---:|" * len(names))
    for mode in MODES:
        for count in sorted({r.connections for r in results}):
            cells = []
            for name in names:
                found = median(name, mode, count)
                cells.append(
                    "—" if found is None else f"{found[0]:,.0f} ({found[1]:.2f}; {found[2]:,.0f})"
                )
            if any(cell != "—" for cell in cells):
                print(f"| {mode} | {count} | " + " | ".join(cells) + " |")
    print("\n(req/s median over rounds; in brackets p50 ms and CPU µs per request)\n")
    for name in names:
        if not name.startswith("headend"):
            continue
        for mode in MODES:
            for count in sorted({r.connections for r in results}):
                mine = median(name, mode, count)
                if mine is None:
                    continue
                line = f"{name} {mode} c={count}:"
                direct = median("direct", mode, count)
                if direct is not None:
                    line += f" adds {mine[1] - direct[1]:+.2f} ms at p50 over direct;"
                for other in ("bare", "tensorzero", "portkey", "litellm"):
                    ref = median(other, mode, count)
                    if ref is not None and ref[0]:
                        line += f" {mine[0] / ref[0]:.2f}x {other};"
                print(line.rstrip(";"))


if __name__ == "__main__":
    main()
