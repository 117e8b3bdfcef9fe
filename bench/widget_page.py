"""The chat widget in a real page: what a site's visitor waits for.

Debian's Chromium (headless, driven by Playwright) loads a page of another loopback origin
that carries the widget tag; headend serves one agent in front of the fake upstream (a real
HTTP server streaming a fixed 40-word answer with no delay). For each repetition, in a fresh
browser context (a first visit) and then after a reload (a returning visitor):

  button       navigation start -> the widget's button is in the page
  history      click -> the panel shows the greeting or the kept conversation
  first token  Enter -> the first streamed words are on screen
  answer       Enter -> the whole answer is on screen

The reference is the same chat call made without a browser: httpx streaming
``POST /v1/chat/completions`` with the same visitor token and Origin, timed to its first
content chunk and its end. The ratio says what the browser and the widget add.

    .venv/bin/python bench/widget_page.py [--reps 10]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sites import served_site  # noqa: E402
from tests.e2e.conftest import CHROMIUM  # noqa: E402
from tests.upstream import FakeUpstream, Reply  # noqa: E402
from tests.web_page import Site  # noqa: E402

ADMIN = "bench-admin-key-0123456789abcdef0123"
ANSWER = " ".join(f"word{i}" for i in range(40))
TAG = (
    "<!doctype html><html><head><title>shop</title></head><body><h1>Shop</h1>"
    '<script src="{headend}/widget.js" data-agent="support" data-key="{key}" '
    'data-greeting="Hi!" async></script></body></html>'
)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def direct(base: str, token: str, origin: str) -> tuple[float, float]:
    """(first content chunk, end) in seconds for the same call without a browser."""
    headers = {"authorization": f"Bearer {token}", "origin": origin}
    body = {"model": "support", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    started = time.perf_counter()
    first = 0.0
    with httpx.stream("POST", base + "/v1/chat/completions", json=body, headers=headers) as r:
        for line in r.iter_lines():
            if not first and '"content":"word' in line:
                first = time.perf_counter() - started
    return first, time.perf_counter() - started


def visit(browser: object, site: Site, fake: FakeUpstream, rows: dict[str, list[float]]) -> str:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context()
    page = context.new_page()
    token = ""
    for visit_kind in ("first", "return"):
        if visit_kind == "first":
            page.goto(site.origin + "/")
        else:
            page.reload()
        page.wait_for_selector("[data-headend-widget]", state="attached")
        rows[f"{visit_kind}: button"].append(page.evaluate("() => performance.now()") / 1000)
        started = time.perf_counter()
        page.get_by_role("button", name="Open chat: Chat").click()
        page.locator(".msg").first.wait_for()
        rows[f"{visit_kind}: history"].append(time.perf_counter() - started)
        fake.script("p", Reply(text=ANSWER))
        count = page.locator(".msg.assistant").count()
        page.get_by_label("Message").fill("When do you ship?")
        started = time.perf_counter()
        page.get_by_label("Message").press("Enter")
        answer = page.locator(".msg.assistant").nth(count)
        answer.filter(has_text="word0").wait_for()
        rows[f"{visit_kind}: first token"].append(time.perf_counter() - started)
        answer.filter(has_text="word39").wait_for()
        rows[f"{visit_kind}: answer"].append(time.perf_counter() - started)
        stored = page.evaluate("() => Object.values({...localStorage})[0]")
        token = stored.split('"token":"')[1].split('"')[0]
    context.close()
    return token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    script = (ROOT / "src/headend/widget/static/widget.js").read_bytes()
    print(f"widget.js: {len(script)} bytes, {len(gzip.compress(script, 9))} gzipped")
    fake = FakeUpstream()
    fake.start()
    site = Site()
    config = f'providers:\n  up: {{type: openai, base_url: "{fake.url("p")}/v1"}}\n'
    agents = {"support": "---\nmodel: up/support\n---\nHelp.\n"}
    try:
        with served_site(config, ADMIN, agents, access_log=False) as server:
            key = httpx.post(
                server.base_url + "/admin/keys",
                json={
                    "name": "bench",
                    "publishable": True,
                    "agents": ["support"],
                    "origins": [site.origin],
                    "visitor_rpm": 10_000,
                    "rpm": 10_000,
                },
                headers={"authorization": f"Bearer {ADMIN}"},
            ).json()["secret"]
            site.page = TAG.format(headend=server.base_url, key=key)
            rows: dict[str, list[float]] = {}
            for kind in ("first", "return"):
                for step in ("button", "history", "first token", "answer"):
                    rows[f"{kind}: {step}"] = []
            rows["direct: first token"], rows["direct: answer"] = [], []
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
                )
                for _ in range(args.reps):
                    token = visit(browser, site, fake, rows)
                    fake.script("p", Reply(text=ANSWER))
                    first, end = direct(server.base_url, token, site.origin)
                    rows["direct: first token"].append(first)
                    rows["direct: answer"].append(end)
                browser.close()
    finally:
        site.stop()
        fake.stop()
    print(f"{args.reps} repetitions; milliseconds")
    print("| step | p50 | min | max |")
    print("|---|---:|---:|---:|")
    for name, values in rows.items():
        print(
            f"| {name} | {ms(statistics.median(values))} | {ms(min(values))} | {ms(max(values))} |"
        )
    for kind in ("first", "return"):
        ratio = statistics.median(rows[f"{kind}: first token"]) / statistics.median(
            rows["direct: first token"]
        )
        print(f"{kind} visit, first token in the page / direct: {ratio:.1f}x")


if __name__ == "__main__":
    main()
