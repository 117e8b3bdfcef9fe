"""The server stack: uvicorn against granian, for the bare proxy and for headend's app.

In one run, on the fixed-answer nginx upstream of bench/gateway.py, wrk measures requests
per second, p50 and the server's CPU time per request for each (server, app) pair, one
server process at a time, one worker each, alternating for ``--rounds``:

    bench/setup.sh                                    # nginx, wrk, granian in .venv
    .venv/bin/python bench/servers.py [--rounds 2] [--duration 5]

headend's app runs here under each server's own defaults, and both apps under uvicorn with
the protocol ``headend serve`` gives it (``ingress``: the limits, deadlines and coalesced
writes of headend/server/ingress.py): the comparison is of the servers.

    .venv/bin/python bench/servers.py --servers uvicorn,ingress --modes json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from gateway import cpu_seconds, nginx_conf, stop, wait_ready, wrk  # noqa: E402
from peers import Upstreams, headend_config  # noqa: E402
from tests.conftest import free_port  # noqa: E402

BIN = Path(sys.executable).parent
QUIET = ("--log-level", "warning", "--no-access-log", "--loop", "uvloop")
GRANIAN = (*QUIET, "--workers", "1")
SERVERS = {
    "uvicorn": [str(BIN / "uvicorn"), "--port", "{port}", *QUIET, "--http", "httptools"],
    "granian": [str(BIN / "granian"), "--interface", "asgi", "--port", "{port}", *GRANIAN],
    # uvicorn with the protocol `headend serve` runs (ingress limits, coalesced writes, the
    # disconnect signal): what it costs against uvicorn's own, for either app
    "ingress": [
        *(str(BIN / "uvicorn"), "--port", "{port}", *QUIET),
        *("--http", "headend_asgi:Protocol"),
    ],
}
APPS = {"bare": ["bare_proxy:app"], "headend": ["--factory", "headend_asgi:app"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", default="1,16")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--apps", default=",".join(APPS))
    parser.add_argument("--modes", default="json,stream")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="headend-servers-"))
    json_port, sse_port = free_port(), free_port()
    (work / "nginx.conf").write_text(nginx_conf(work, json_port, sse_port))
    (work / "agents").mkdir()
    (work / "headend.yaml").write_text(
        headend_config(Upstreams(json_port, sse_port), operator=False)
        + f"agents_dir: {work / 'agents'}\nserver: {{access_log: false}}\n"
    )

    base = {k: v for k, v in os.environ.items() if not k.startswith("HEADEND_")}
    env = {
        **base,
        "HEADEND_CONFIG": str(work / "headend.yaml"),
        "BARE_UPSTREAMS": f"bench-json=http://127.0.0.1:{json_port}/v1/chat/completions,"
        f"bench-sse=http://127.0.0.1:{sse_port}/v1/chat/completions",
        "PYTHONPATH": str(ROOT / "bench"),
    }
    created = subprocess.run(
        [
            *(sys.executable, "-m", "headend", "keys", "create", "--config"),
            *(str(work / "headend.yaml"), "--name", "bench", "--scope", "chat"),
        ],
        capture_output=True,
        text=True,
        check=True,
        env=base,
    )
    key = created.stdout.split("\n")[1].strip()
    connections = [int(c) for c in args.connections.split(",")]
    rows = []
    upstream = subprocess.Popen(
        ["nginx", "-c", str(work / "nginx.conf")], stderr=subprocess.DEVNULL
    )
    try:
        for round_ in range(1, args.rounds + 1):
            for app, target in APPS.items():
                if app not in args.apps.split(","):
                    continue
                for server, argv in SERVERS.items():
                    if server not in args.servers.split(","):
                        continue
                    port = free_port()
                    command = [part.replace("{port}", str(port)) for part in argv] + target
                    log = (work / f"{server}-{app}.log").open("w")
                    proxy = subprocess.Popen(command, env=env, cwd=ROOT / "bench", stderr=log)
                    try:
                        for mode in args.modes.split(","):
                            model = f"bench-{'sse' if mode == 'stream' else mode}"
                            url = f"http://127.0.0.1:{port}/v1/chat/completions"
                            body: dict[str, object] = {
                                "model": model,
                                "messages": [{"role": "user", "content": "Hello"}],
                            }
                            if mode == "stream":
                                body["stream"] = True
                            wait_ready(url, body, {"Authorization": f"Bearer {key}"})
                            wrk(url, body, 4, 2, {"Authorization": f"Bearer {key}"})  # warm up
                            for count in connections:
                                used = cpu_seconds(proxy.pid)
                                rps, p50, _p99, errors = wrk(
                                    url,
                                    body,
                                    count,
                                    args.duration,
                                    {"Authorization": f"Bearer {key}"},
                                )
                                cpu = (cpu_seconds(proxy.pid) - used) / (rps * args.duration)
                                row = (round_, app, server, mode, count, rps, p50, cpu * 1e6)
                                rows.append(row)
                                print(
                                    f"#{round_} {app:8} {server:8} {mode:6} c={count:<3} "
                                    f"{rps:8.0f} req/s  p50 {p50:6.2f} ms  "
                                    f"cpu {cpu * 1e6:5.0f} us/req  errors {errors}",
                                    flush=True,
                                )
                    finally:
                        stop(proxy)
    finally:
        stop(upstream)
    print("\n| round | app | server | mode | connections | req/s | p50 (ms) | CPU µs/req |")
    print("|---:|---|---|---|---:|---:|---:|---:|")
    for round_, app, server, mode, count, rps, p50, cpu in rows:
        print(
            f"| {round_} | {app} | {server} | {mode} | {count} | {rps:,.0f} | {p50:.2f} "
            f"| {cpu:,.0f} |"
        )


if __name__ == "__main__":
    main()
