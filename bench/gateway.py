"""Gateway overhead: an upstream called directly, through headend, and through LiteLLM.

In one run, on the same machine and the same fixed-answer upstream (nginx answering a static
chat.completion, or a static SSE stream, on loopback), wrk measures requests per second and
p50/p99 latency at 1, 16 and 64 connections, non-streaming and streaming, for:

  direct    wrk -> nginx
  bare      wrk -> a bare 20-line Starlette + aiohttp proxy (bench/bare_proxy.py): the
            reference headend must match with auth, limits and accounting on
  headend   wrk -> headend (one worker, a model route with fallback and usage accounting)
  litellm   wrk -> LiteLLM proxy (one worker), when bench/setup.sh has installed it

    bench/setup.sh                                  # nginx, wrk, LiteLLM in its own venv
    .venv/bin/python bench/gateway.py [--duration 8] [--connections 1,16,64]

Everything listens on 127.0.0.1 only, and each wrk run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port  # noqa: E402

LITELLM = ROOT / "bench" / ".litellm-venv" / "bin" / "litellm"
BARE_PROXY = ROOT / "bench" / "bare_proxy.py"

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


def headend_config(json_port: int, sse_port: int) -> str:
    """Two model routes, one per nginx answer, each falling back to the other."""
    return f"""
providers:
  json: {{type: openai, base_url: "http://127.0.0.1:{json_port}/v1", api_key: sk-up}}
  sse: {{type: openai, base_url: "http://127.0.0.1:{sse_port}/v1", api_key: sk-up}}
models:
  bench-json: [json/bench-model, sse/bench-model]
  bench-sse: [sse/bench-model, json/bench-model]
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
    url: str, body: dict[str, object], connections: int, duration: int, key: str = KEY
) -> tuple[float, float, float, int]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
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


def wait_ready(url: str, body: dict[str, object], seconds: float = 120, key: str = KEY) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if (
                httpx.post(
                    url, json=body, timeout=5, headers={"Authorization": f"Bearer {key}"}
                ).status_code
                == 200
            ):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--targets", help="only these targets, e.g. bare,headend (default: all)")
    parser.add_argument(
        "--profile",
        type=Path,
        help="write py-spy's collapsed stacks of each proxy here, sampled during its "
        "highest-connection run (sampling takes CPU: figures of such a run are not comparable)",
    )
    parser.add_argument("--modes", default="json,stream", help="json, stream or both")
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure the proxies this many times, alternating"
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
    json_port, sse_port, headend_port, litellm_port, bare_port = (free_port() for _ in range(5))
    (work / "nginx.conf").write_text(nginx_conf(work, json_port, sse_port))
    (work / "headend.yaml").write_text(
        headend_config(json_port, sse_port) + (f"redis: {args.redis}\n" if args.redis else "")
    )
    (work / "agents").mkdir()
    (work / "litellm.yaml").write_text(f"""
model_list:
  - model_name: bench-json
    litellm_params:
      model: openai/bench-model
      api_base: "http://127.0.0.1:{json_port}/v1"
      api_key: sk-up
  - model_name: bench-sse
    litellm_params:
      model: openai/bench-model
      api_base: "http://127.0.0.1:{sse_port}/v1"
      api_key: sk-up
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADEND_")}
    # headend with auth on: a key from its store, looked up by hash on every request.
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "headend",
            "keys",
            "create",
            "--config",
            str(work / "headend.yaml"),
            "--name",
            "bench",
            "--scope",
            "chat",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    keys = {"headend": created.stdout.split("\n")[1].strip()}
    commands: dict[str, tuple[list[str], dict[str, str], int] | None] = {"direct": None}
    commands["bare"] = (
        [
            sys.executable,
            str(BARE_PROXY),
            str(bare_port),
            f"bench-json=http://127.0.0.1:{json_port}/v1/chat/completions",
            f"bench-sse=http://127.0.0.1:{sse_port}/v1/chat/completions",
        ],
        env,
        bare_port,
    )
    for workers in worker_counts:
        name = "headend" if workers == 1 else f"headend x{workers}"
        commands[name] = (
            [
                sys.executable,
                "-m",
                "headend",
                "serve",
                "--config",
                str(work / "headend.yaml"),
                "--agents",
                str(work / "agents"),
                "--port",
                str(headend_port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--workers",
                str(workers),
            ],
            env,
            headend_port,
        )
    if LITELLM.exists() and not args.skip_litellm:
        commands["litellm"] = (
            [
                str(LITELLM),
                "--config",
                str(work / "litellm.yaml"),
                "--port",
                str(litellm_port),
                "--host",
                "127.0.0.1",
                "--num_workers",
                "1",
            ],
            {**env, "LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": KEY},
            litellm_port,
        )
    if args.targets:
        wanted = set(args.targets.split(","))
        commands = {name: command for name, command in commands.items() if name in wanted}
    modes = tuple(
        mode
        for mode in (("json", "bench-json", json_port), ("stream", "bench-sse", sse_port))
        if mode[0] in args.modes.split(",")
    )
    proxies = [name for name, command in commands.items() if command is not None]
    order = [name for name in commands if name not in proxies] + proxies * args.rounds
    results: list[Result] = []
    upstream = subprocess.Popen(
        ["nginx", "-c", str(work / "nginx.conf")], stderr=subprocess.DEVNULL
    )
    try:
        # One proxy at a time: an idle one would still take CPU from the one measured.
        for round_, target in enumerate(order):
            command = commands[target]
            label = target
            if command is not None and args.rounds > 1:
                label += f" #{order[: round_ + 1].count(target)}"
            proxy = None
            if command is not None:
                argv, proxy_env, _port = command
                proxy = subprocess.Popen(
                    argv,
                    env=proxy_env,
                    stdout=subprocess.DEVNULL,
                    stderr=(work / f"{target}.log").open("w"),
                )
            try:
                for mode, model, upstream_port in modes:
                    port = upstream_port if command is None else command[2]
                    profile = None
                    if args.profile is not None and proxy is not None:
                        args.profile.mkdir(parents=True, exist_ok=True)
                        name = label.replace(" ", "").replace("#", "-")
                        profile = args.profile / f"{name}-{mode}.txt"
                    results += measure(
                        label,
                        mode,
                        model,
                        port,
                        connections,
                        args.duration,
                        keys.get(target.split()[0], KEY),
                        proxy.pid if proxy is not None else None,
                        profile,
                    )
            finally:
                if proxy is not None:
                    stop(proxy)
    finally:
        stop(upstream)
    report(results)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def measure(
    target: str,
    mode: str,
    model: str,
    port: int,
    connections: list[int],
    duration: int,
    key: str,
    pid: int | None = None,
    profile: Path | None = None,
) -> list[Result]:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    body: dict[str, object] = {"model": model, "messages": [{"role": "user", "content": "Hello"}]}
    if mode == "stream":
        body["stream"] = True
    wait_ready(url, body, key=key)
    wrk(url, body, 4, 2, key)  # warm up
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
        rps, p50, p99, errors = wrk(url, body, count, duration, key)
        cpu_us = (cpu_seconds(pid) - used) / (rps * duration) * 1e6 if pid and rps else 0.0
        if sampler is not None:
            sampler.wait(timeout=60)
        results.append(Result(target, mode, count, rps, p50, p99, errors, cpu_us))
        print(
            f"{target:8} {mode:6} c={count:<3} {rps:9.1f} req/s  p50 {p50:7.2f} ms  "
            f"p99 {p99:7.2f} ms  errors {errors}  cpu {cpu_us:5.0f} us/req",
            flush=True,
        )
    return results


def report(results: list[Result]) -> None:
    print("\n| mode | connections | target | req/s | p50 (ms) | p99 (ms) | CPU µs/req | errors |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.mode} | {r.connections} | {r.target} | {r.rps:,.0f} | {r.p50_ms:.2f} "
            f"| {r.p99_ms:.2f} | {r.cpu_us:,.0f} | {r.errors} |"
        )
    by = {(r.target, r.mode, r.connections): r for r in results}
    print()
    for mode in ("json", "stream"):
        for count in sorted({r.connections for r in results}):
            direct = by.get(("direct", mode, count))
            for r in results:
                if r.mode != mode or r.connections != count or not r.target.startswith("headend"):
                    continue
                line = f"{mode} c={count} {r.target}:"
                if direct is not None:
                    line += f" adds {r.p50_ms - direct.p50_ms:+.2f} ms at p50 over direct;"
                round_ = r.target.partition(" #")[2]
                for other in ("bare", "litellm"):
                    ref = by.get((f"{other} #{round_}" if round_ else other, mode, count))
                    if ref is not None and ref.rps:
                        line += (
                            f" {r.rps / ref.rps:.2f}x {other}'s req/s"
                            f" (p50 {r.p50_ms - ref.p50_ms:+.2f} ms,"
                            f" CPU {r.cpu_us:.0f} vs {ref.cpu_us:.0f} µs/req);"
                        )
                print(line.rstrip(";"))


if __name__ == "__main__":
    main()
