"""``headend serve --workers N``: one port served by N processes that share limits through
Redis and sum their metrics, a worker that dies replaced, SIGTERM draining them all to exit
0; and the set-ups that workers would get wrong refused at start-up."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, RunningServer, stop_server
from tests.e2e.sites import ADMIN, HI, issue, make_site, serve
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e


def workers_of(server: RunningServer) -> list[int]:
    """The worker processes' ids (the supervisor's children running a worker)."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = []
    for child in children:
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"multiprocessing.spawn" in command and b"resource_tracker" not in command:
            found.append(int(child))
    return found


def process_prefix(response: httpx.Response) -> str:
    """Each process numbers its request ids after a random prefix of its own."""
    return response.headers["x-request-id"][:-8]


def ready_workers(server: RunningServer, n: int) -> None:
    """Until ``n`` workers (told apart by their request ids) have answered readiness."""
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    while len(seen) < n:
        assert time.monotonic() < deadline, f"only {len(seen)} worker(s) ready"
        with httpx.Client() as client:
            ready = client.get(server.base_url + "/health/ready")
        if ready.status_code == 200:
            seen.add(process_prefix(ready))
    assert len(workers_of(server)) == n


def chat(base: str, secret: str = ADMIN) -> httpx.Response:
    with httpx.Client() as client:  # a connection of its own: any worker may accept it
        return client.post(
            base + "/v1/chat/completions",
            json={"model": "gpt", "messages": HI},
            headers={"Authorization": f"Bearer {secret}"},
            timeout=30,
        )


def counted(base: str, status: int) -> float:
    text = httpx.get(base + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).text
    pattern = rf'^headend_requests_total{{[^}}]*model="gpt"[^}}]*status="{status}"[^}}]*}} (\S+)$'
    return sum(float(m) for m in re.findall(pattern, text, re.M))


def test_workers_share_a_port_limits_and_metrics(
    upstream: FakeUpstream, redis_url: str, tmp_path: Path
) -> None:
    upstream.reset()
    site = make_site(tmp_path, upstream, "wk", {}, f"redis: {redis_url}\n")
    server = serve(site, "server.log", "--workers", "2")
    try:
        ready_workers(server, 2)
        upstream.script("wk", *[Reply(first_delay=0.05) for _ in range(30)])
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: chat(server.base_url), range(30)))
        assert all(a.status_code == 200 for a in answers)
        assert len({process_prefix(a) for a in answers}) == 2  # both workers answered

        # A key's rate holds across the workers: 20 a minute in all, not 20 each.
        secret = str(issue(server, name="limited", scopes=["chat"], rpm=20)["secret"])
        upstream.script("wk", *[Reply(first_delay=0.05) for _ in range(30)])
        with ThreadPoolExecutor(8) as pool:
            limited = list(pool.map(lambda _: chat(server.base_url, secret), range(30)))
        assert [r.status_code for r in limited].count(200) == 20
        assert len({process_prefix(r) for r in limited}) == 2

        # Whichever worker answers the scrape, it counts every worker's requests.
        for _ in range(4):
            assert counted(server.base_url, 200) == 50
            assert counted(server.base_url, 429) == 10

        # A worker that dies is replaced; the port is served meanwhile.
        first, second = workers_of(server)
        os.kill(first, signal.SIGKILL)
        upstream.script("wk", *[Reply() for _ in range(10)])
        assert all(chat(server.base_url).status_code == 200 for _ in range(5))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = workers_of(server)
            if len(now) == 2 and first not in now:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"no worker replaced {first}: {workers_of(server)}")
        assert second in workers_of(server)

        # SIGTERM: every worker drains, the supervisor exits 0 and leaves nothing behind.
        upstream.script("wk", Reply(chunk_delay=0.3, text="one two three four"))
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(chat, server.base_url)
            time.sleep(0.3)
            workers = workers_of(server)
            server.process.send_signal(signal.SIGTERM)
            assert server.process.wait(timeout=30) == 0
            assert running.result().status_code == 200  # the request in flight finished
        for pid in workers:
            assert (
                not Path(f"/proc/{pid}").exists()
                or b"zombie" in Path(f"/proc/{pid}/status").read_bytes()
            )
    finally:
        stop_server(server)
    assert "Traceback" not in server.output()


def refused(*args: str, cwd: Path, python: tuple[str, ...] = ("-m", "headend")) -> str:
    """What ``headend serve --workers 2 <args>`` says as it refuses to start: one ``error:``
    line a problem, no traceback, no worker started."""
    result = subprocess.run(
        [sys.executable, *python, "serve", "--port", "0", "--workers", "2", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if not k.startswith("HEADEND_")},
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "Started server process" not in result.stderr  # found before any worker started
    return result.stderr


def test_set_ups_workers_would_get_wrong_are_refused(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    site = make_site(tmp_path, upstream, "wr", {})
    without_redis = refused("--config", str(site / "headend.yaml"), cwd=site)
    assert "need redis:" in without_redis
    (tmp_path / "embedded").mkdir()
    (tmp_path / "embedded" / "headend.yaml").write_text(
        "redis: redis://127.0.0.1:1/0\nproviders:\n  local: {type: llama_cpp}\n"
    )
    embedded = refused(cwd=tmp_path / "embedded")
    assert "load the embedded model(s) local" in embedded


def test_what_every_worker_would_fail_on_is_found_before_forking(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    site = make_site(tmp_path, upstream, "wp", {}, "redis: redis://127.0.0.1:1/0\n")
    config = str(site / "headend.yaml")
    unreachable = refused("--config", config, cwd=site)
    assert unreachable.splitlines()[-1].startswith(
        "error: redis: cannot reach redis://127.0.0.1:1/0:"
    ), unreachable
    # The redis extra not installed (the import blocked, as a missing package fails it).
    without_extra = refused(
        "--config",
        config,
        cwd=site,
        python=(
            "-c",
            "import sys; sys.modules['redis'] = None; from headend.cli import main; "
            "sys.exit(main(sys.argv[1:]))",
        ),
    )
    assert without_extra.splitlines()[-1] == (
        "error: redis: shared limits need the redis package: pip install 'headend[redis]'"
    ), without_extra
    # A keyless server on a public address: refused once, not by each worker.
    public = refused("--config", config, "--host", "0.0.0.0", cwd=site)
    assert "no API key exists" in public.splitlines()[-1], public


def test_a_worker_that_cannot_start_stops_the_supervisor_with_its_reason(
    upstream: FakeUpstream, redis_url: str, tmp_path: Path
) -> None:
    # Redis answers the supervisor's check, then is gone for the workers (worker_faults).
    site = make_site(tmp_path, upstream, "wf", {}, f"redis: {redis_url}\n")
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "tests.e2e.worker_faults", str(site / "headend.yaml"), "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("HEADEND_")},
    )
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - began < 30  # it gave up instead of starting workers forever
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(
        "error: a worker could not start: redis: cannot reach redis://127.0.0.1:1/0:"
    ), errors
    assert "Traceback" not in result.stderr, result.stderr
    # Two workers started, none again.
    assert result.stderr.count("Started server process") <= 2, result.stderr
    assert "starting another" not in result.stderr


def test_workers_that_die_are_started_again_later_each_time_until_too_many(
    upstream: FakeUpstream, redis_url: str, tmp_path: Path
) -> None:
    site = make_site(tmp_path, upstream, "wd", {}, f"redis: {redis_url}\n")
    server = serve(site, "server.log", "--workers", "2")
    try:
        ready_workers(server, 2)
        waited = []
        for _ in range(4):
            victim = workers_of(server)[0]
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            deadline = killed + 30
            while not (len(now := workers_of(server)) == 2 and victim not in now):
                assert time.monotonic() < deadline, f"{victim} not replaced: {now}"
                time.sleep(0.05)
            waited.append(time.monotonic() - killed)
            ready_workers(server, 2)  # the new one serves before the next death
        pauses = [float(p) for p in re.findall(r"starting another in (\S+) s", server.output())]
        assert pauses == [0.5, 1.0, 2.0, 4.0]
        assert all(w >= p for w, p in zip(waited, pauses, strict=True)), waited
        # A fifth death within the minute: the supervisor gives up, draining the other.
        os.kill(workers_of(server)[0], signal.SIGKILL)
        assert server.process.wait(timeout=30) == 1
        assert "error: workers keep dying: 5 exits within 60 s, the last with code -9" in (
            server.output()
        )
    finally:
        stop_server(server)
    assert "Traceback" not in server.output()


def test_a_hang_up_reaches_every_worker(
    upstream: FakeUpstream, redis_url: str, tmp_path: Path
) -> None:
    first = "---\nmodel: gpt\n---\nFirst.\n"
    extra = f"redis: {redis_url}\nreload: {{watch: false}}\n"
    site = make_site(tmp_path, upstream, "wk", {"support": first}, extra)
    server = serve(site, "server.log", "--workers", "2")
    try:
        ready_workers(server, 2)
        (site / "agents" / "support.md").write_text(first.replace("First", "Second"))
        server.process.send_signal(signal.SIGHUP)
        versions: dict[str, int] = {}  # by worker
        deadline = time.monotonic() + 30
        while len(versions) < 2 or set(versions.values()) != {2}:
            assert time.monotonic() < deadline, f"workers' versions: {versions}"
            with httpx.Client() as client:  # a new connection: either worker may take it
                found = client.get(
                    server.base_url + "/v1/models/support",
                    headers={"Authorization": f"Bearer {ADMIN}"},
                )
            versions[process_prefix(found)] = found.json()["version"]
        assert server.process.poll() is None
        assert len(workers_of(server)) == 2  # none ended by the hang-up
    finally:
        stop_server(server)


def test_a_background_run_is_followed_and_cancelled_from_the_other_worker(
    upstream: FakeUpstream, redis_url: str, tmp_path: Path
) -> None:
    upstream.reset()
    site = make_site(tmp_path, upstream, "wb", {}, f"redis: {redis_url}\n")
    server = serve(site, "server.log", "--workers", "2")
    words = " ".join(f"w{n}" for n in range(40))
    auth = {"Authorization": f"Bearer {ADMIN}"}

    def fresh() -> httpx.Client:  # a connection of its own: either worker may take it
        return httpx.Client(base_url=server.base_url, headers=auth, timeout=30)

    try:
        ready_workers(server, 2)
        upstream.script("wb", *[Reply(text=words, chunk_delay=0.1) for _ in range(8)])
        for _ in range(8):  # until a cancel reaches the worker not running the run
            with fresh() as client:
                created = client.post(
                    "/v1/responses", json={"model": "gpt", "input": "Count", "background": True}
                )
            response_id = created.json()["id"]
            with fresh() as client:
                ahead = client.get(f"/v1/responses/{response_id}")
            with fresh() as client:
                cancelled = client.post(f"/v1/responses/{response_id}/cancel")
            if process_prefix(cancelled) != process_prefix(created):
                break
        else:
            raise AssertionError("every cancel reached the worker that ran the run")
        assert ahead.status_code == 200
        assert ahead.json()["status"] in ("queued", "in_progress")
        assert cancelled.json()["status"] == "cancelled"
        with fresh() as client:  # its stream, from whichever worker: it ends where it stopped
            replay = client.get(f"/v1/responses/{response_id}", params={"stream": "true"})
        kinds = [line for line in replay.text.splitlines() if line.startswith("event: ")]
        assert kinds[0] == "event: response.created"
        assert "event: response.completed" not in kinds
    finally:
        stop_server(server)
    assert "Traceback" not in server.output()
