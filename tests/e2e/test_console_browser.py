"""The console in a real browser (Debian's Chromium, driven by Playwright): sign in, chat in
the playground and watch the answer stream in with a tool's progress, sign out; the key
never reaches the page's storage or its cookies, and the page's CSP forbids inline script."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.e2e.sites import issue, site_fixture
from tests.e2e.streaming import texts_until
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

WORKER = "---\nmodel: up/worker\ntools: [calculator]\n---\nYou compute.\n"
GUARDED = "---\nmodel: up/guarded\ntools: [terminal]\nrequire_approval: always\n---\nYou act.\n"
ACTING = "---\nmodel: up/acting\ntools: [terminal, calculator]\n---\nYou act.\n"  # asks no one
SHIELDED = "---\nmodel: up/shielded\nguardrails: [{check: regex, patterns: [nightjar]}]\n---\nHi.\n"
# (the site's models: go on: a route with a price of its own)
served = site_fixture(
    "b",
    {"worker": WORKER, "guarded": GUARDED, "acting": ACTING, "shielded": SHIELDED},
    "  priced: {route: up/p, price: {input: 2, output: 4}}\n",
)


def test_sign_in_chat_with_streaming_and_tool_progress_then_sign_out(
    served: RunningServer, browser: object, fake: FakeUpstream
) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    key = str(issue(served, name="console", scopes=["chat", "models:read"])["secret"])
    page = browser.new_page()
    inline_blocked: list[str] = []
    page.on("console", lambda message: inline_blocked.append(message.text))
    response = page.goto(served.base_url + "/console")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    expect(page.locator("#sign-in")).to_be_visible()

    page.fill("#key", key)
    page.click("#sign-in-form button[type=submit]")
    expect(page.locator("#playground")).to_be_visible()
    expect(page.locator("#who")).to_contain_text("signed in")
    stored = page.evaluate(
        "() => JSON.stringify([{...localStorage}, {...sessionStorage}, document.cookie])"
    )
    assert key not in stored
    assert "headend_console" not in stored  # HttpOnly: scripts cannot read the sign-in

    fake.script(
        "b",
        Reply(
            text="",
            tool_calls=[
                {"id": "c1", "name": "calculator", "arguments": json.dumps({"expression": "2+2"})}
            ],
        ),
        Reply(text="The answer is four, as computed.", chunk_delay=0.15),
    )
    page.select_option("#model", "worker")
    page.fill("#message", "What is 2 + 2?")
    page.click("#send")
    answer = page.locator(".turn.assistant .text")
    seen = texts_until(answer, "The answer is four, as computed.")
    assert seen[-1] == "The answer is four, as computed."
    assert len(seen) >= 3, seen  # it grew while the stream ran, not all at once
    expect(page.locator(".tool").first).to_contain_text("calculator")
    expect(page.locator("#meta")).to_contain_text("request req_")
    assert fake.received("b")[1].body["messages"][-1]["content"] == "4"

    page.click("#sign-out")
    expect(page.locator("#sign-in")).to_be_visible()
    page.reload()
    expect(page.locator("#sign-in")).to_be_visible()
    assert not [text for text in inline_blocked if "Content Security Policy" in text]


def test_the_root_is_the_console_for_browsers_only(served: RunningServer) -> None:
    import httpx

    page = httpx.get(served.base_url + "/", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/console/static/console.js">' in page.text
    api = httpx.get(served.base_url + "/")
    assert api.status_code == 404
    assert api.json()["error"]["code"] == "unknown_url"
    for name in ("console.js", "console.css"):
        asset = httpx.get(f"{served.base_url}/console/static/{name}")
        assert asset.status_code == 200
        assert asset.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(served.base_url + "/console/static/..%2Fpages.py").status_code == 404
    assert httpx.get(served.base_url + "/console/static/pages.py").status_code == 404


def test_keys_page_creates_a_key_whose_secret_is_shown_once_and_revokes_it(
    served: RunningServer, browser: object
) -> None:
    import httpx
    from playwright.sync_api import Browser, expect

    from tests.e2e.sites import ADMIN

    assert isinstance(browser, Browser)
    page = browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the confirm() before revoking
    page.goto(served.base_url + "/console")
    page.fill("#key", ADMIN)
    page.click("#sign-in-form button[type=submit]")
    page.click("#nav-keys")
    expect(page.locator("#keys")).to_be_visible()

    page.fill("#key-name", "shop-bot")
    page.select_option("#key-tools", "read-only")
    page.fill("#key-rpm", "30")
    page.fill("#key-budget", "2.5")
    page.select_option("#key-budget-period", "week")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#secret-box")).to_be_visible()
    secret = page.locator("#secret-value").text_content() or ""
    assert secret.startswith("sk-he-")
    # The secret works, with what the form asked for.
    models = httpx.get(served.api + "/models", headers={"Authorization": f"Bearer {secret}"})
    assert models.status_code == 200
    listed = page.locator("#keys-body tr", has_text="shop-bot")
    expect(listed).to_contain_text("read-only")
    expect(listed).to_contain_text("rpm 30")
    expect(listed).to_contain_text("budget 2.5/week")
    expect(listed).to_contain_text("active")

    page.reload()  # shown once: never again
    page.click("#nav-keys")
    expect(page.locator("#keys-body tr", has_text="shop-bot")).to_be_visible()
    assert page.locator("#secret-box").is_hidden()
    assert secret not in (page.content() or "")

    page.locator("#keys-body tr", has_text="shop-bot").get_by_role("button", name="Revoke").click()
    expect(page.locator("#keys-body tr", has_text="shop-bot")).to_contain_text("revoked")
    time.sleep(1.1)  # revocation holds within a second everywhere
    refused = httpx.get(served.api + "/models", headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 401


def test_a_key_without_admin_sees_no_keys_page(served: RunningServer, browser: object) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    key = str(issue(served, name="chatter", scopes=["chat", "models:read"])["secret"])
    page = browser.new_page()
    page.goto(served.base_url + "/console")
    page.fill("#key", key)
    page.click("#sign-in-form button[type=submit]")
    expect(page.locator("#playground")).to_be_visible()
    assert page.locator("#nav-keys").is_hidden()


def test_a_key_that_may_not_chat_sees_no_playground(served: RunningServer, browser: object) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    key = str(issue(served, name="reader", scopes=["models:read"])["secret"])
    page = browser.new_page()
    page.goto(served.base_url + "/console")
    page.fill("#key", key)
    page.click("#sign-in-form button[type=submit]")
    expect(page.locator("#agents")).to_be_visible()  # its first page: the one it may use
    assert page.locator("#nav-playground").is_hidden()
    assert page.locator("#playground").is_hidden()


def test_sessions_page_shows_a_transcript_with_its_tool_calls(
    served: RunningServer, browser: object, fake: FakeUpstream
) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    scopes = ["chat", "models:read", "sessions:read"]
    key = str(issue(served, name="reader", scopes=scopes)["secret"])
    page = browser.new_page()
    page.goto(served.base_url + "/console")
    page.fill("#key", key)
    page.click("#sign-in-form button[type=submit]")
    call = {"id": "c9", "name": "calculator", "arguments": json.dumps({"expression": "6*7"})}
    fake.script("b", Reply(text="", tool_calls=[call]), Reply(text="It is 42."))
    page.select_option("#model", "worker")
    page.fill("#message", "What is 6 times 7?")
    page.click("#send")
    expect(page.locator(".turn.assistant .text")).to_have_text("It is 42.")

    page.click("#nav-sessions")
    rows = page.locator("#sessions-body tr")
    expect(rows).to_have_count(1)  # only this key's own session
    expect(rows.first).to_contain_text("worker")
    rows.first.get_by_role("button", name="Open").click()
    transcript = page.locator("#session-transcript")
    expect(transcript).to_contain_text("What is 6 times 7?")
    expect(transcript).to_contain_text('calculator({"expression": "6*7"})')
    expect(transcript).to_contain_text("Result:42")
    expect(transcript).to_contain_text("It is 42.")


def signed_in(browser: object, served: RunningServer, key: str) -> Any:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    page = browser.new_page()
    page.goto(served.base_url + "/console")
    page.fill("#key", key)
    page.click("#sign-in-form button[type=submit]")
    expect(page.locator("#playground")).to_be_visible()
    return page


def test_agents_page_shows_routes_tools_defaults_and_the_prompt_to_admins_only(
    served: RunningServer, browser: object
) -> None:
    import httpx
    from playwright.sync_api import expect

    from tests.e2e.sites import ADMIN

    page = signed_in(browser, served, ADMIN)
    page.click("#nav-agents")
    card = page.get_by_role("article", name="worker")
    expect(card.locator("dt:text-is('Version') + dd")).to_have_text("1")  # its first
    expect(card).to_contain_text("up/worker")
    expect(card).to_contain_text("calculator (reads only)")
    expect(card).to_contain_text("at most 25 iterations")
    card.get_by_text("System prompt").click()
    expect(card.locator("pre")).to_have_text("You compute.\n")
    expect(page.locator("#routes-body")).to_contain_text("gpt")
    # every way in, with addresses that answer
    card.get_by_text("How to reach it").click()
    ways = card.locator(".reach")
    socket = served.base_url.replace("http://", "ws://")
    expect(ways).to_contain_text(f"{socket}/v1/responses")
    expect(ways).to_contain_text(f"{served.base_url}/mcp")
    expect(ways).to_contain_text('(tool "worker")')
    a2a = f"{served.base_url}/a2a/worker/.well-known/agent-card.json"
    expect(ways).to_contain_text(a2a)
    assert httpx.get(a2a, headers={"Authorization": f"Bearer {ADMIN}"}).json()["name"] == "worker"

    reader = str(issue(served, name="r", scopes=["chat", "models:read"], no_tools=True)["secret"])
    page = signed_in(browser, served, reader)
    page.click("#nav-agents")
    card = page.get_by_role("article", name="worker")
    expect(card).to_contain_text("calculator (reads only, not for this key)")
    card.get_by_text("System prompt").click()
    expect(card).to_contain_text("Shown to keys that may edit agents")
    assert "You compute." not in page.content()


def test_agents_page_shows_an_agents_guardrails_and_its_last_blocks_to_admins(
    served: RunningServer, browser: object
) -> None:
    import httpx
    from playwright.sync_api import expect

    from tests.e2e.sites import ADMIN

    said = httpx.post(
        served.api + "/chat/completions",
        json={"model": "shielded", "messages": [{"role": "user", "content": "nightjar?"}]},
        headers={"Authorization": f"Bearer {ADMIN}"},
    ).json()
    assert said["choices"][0]["finish_reason"] == "content_filter"
    page = signed_in(browser, served, ADMIN)
    page.click("#nav-agents")
    card = page.get_by_role("article", name="shielded")
    expect(card.locator("dt:text-is('Guardrails') + dd")).to_have_text("regex: block on input")
    card.get_by_text("Recent guardrail blocks").click()
    expect(card.locator(".block-list li").first).to_contain_text("regex on input (by admin)")

    reader = str(issue(served, name="g", scopes=["chat", "models:read"])["secret"])
    page = signed_in(browser, served, reader)
    page.click("#nav-agents")
    card = page.get_by_role("article", name="shielded")
    card.get_by_text("Recent guardrail blocks").click()
    expect(card).to_contain_text("Shown to admin keys")


def test_agents_page_creates_edits_diffs_publishes_and_rolls_back_an_api_agent(
    served: RunningServer, browser: object
) -> None:
    import httpx
    from playwright.sync_api import expect

    from tests.e2e.sites import ADMIN

    page = signed_in(browser, served, ADMIN)
    page.on("dialog", lambda dialog: dialog.accept())  # the confirm() before a rollback
    page.click("#nav-agents")
    worker = page.get_by_role("article", name="worker")
    expect(worker).to_contain_text("Defined by its file")
    expect(worker.get_by_role("button", name="Publish")).to_have_count(0)

    page.get_by_text("New agent").click()
    page.fill("#new-agent-id", "helpdesk")
    page.fill("#new-agent-text", "---\nmodel: gpt\n---\nYou help, first.\n")
    page.get_by_role("button", name="Create draft").click()
    card = page.get_by_role("article", name="helpdesk")
    expect(card).to_contain_text("Not published")
    card.get_by_role("button", name="Publish").click()
    version = card.locator("dt:text-is('Version') + dd")
    expect(version).to_have_text("1")

    page.get_by_text("Edit, publish, roll back").click()
    page.fill("#edit-helpdesk", "---\nmodel: nowhere\n---\nLost.\n")
    card.get_by_role("button", name="Save draft", exact=True).click()
    expect(card.get_by_role("alert")).to_contain_text("helpdesk@draft: model: 'nowhere'")

    page.fill("#edit-helpdesk", "---\nmodel: gpt\n---\nYou help, second.\n")
    card.get_by_role("button", name="Save draft and diff").click()
    expect(card.locator(".diff del")).to_have_text("-You help, first.\n")
    expect(card.locator(".diff ins")).to_have_text("+You help, second.\n")
    card.get_by_role("button", name="Publish").click()
    expect(version).to_have_text("2")

    card.get_by_text("Edit, publish, roll back").click()
    card.get_by_role("button", name="Serve 1 again").click()
    expect(version).to_have_text("1")
    served_now = httpx.get(
        served.api + "/models/helpdesk", headers={"Authorization": f"Bearer {ADMIN}"}
    ).json()
    assert served_now["version"] == 1


def test_playground_options_reach_the_model_and_the_call_copies_as_code(
    served: RunningServer, browser: object, fake: FakeUpstream
) -> None:
    from playwright.sync_api import expect

    key = str(issue(served, name="player", scopes=["chat", "models:read"])["secret"])
    page = signed_in(browser, served, key)
    page.select_option("#model", "worker")
    page.click("#options summary")
    page.fill("#opt-temperature", "0.3")
    page.fill("#opt-max_tokens", "64")
    fake.script("b", Reply(text="Sure."))
    page.fill("#message", "Hello there")
    page.click("#send")
    expect(page.locator(".turn.assistant .text")).to_have_text("Sure.")
    sent = fake.received("b")[0].body
    assert sent["temperature"] == 0.3
    assert sent["max_tokens"] == 64

    for kind, marker in (
        ("curl", "curl "),
        ("Python", "OpenAI(base_url="),
        ("JavaScript", "new OpenAI("),
    ):
        page.get_by_role("button", name=kind, exact=True).click()
        snippet = page.locator("#snippet").text_content() or ""
        assert marker in snippet
        assert served.base_url + "/v1" in snippet
        assert "HEADEND_API_KEY" in snippet
        assert key not in snippet
        assert '"temperature":0.3' in snippet.replace(" ", "")
        assert "sess_" in snippet  # the call continues this session


def test_usage_page_charts_tokens_per_day_with_the_table_beneath(
    served: RunningServer, browser: object, fake: FakeUpstream
) -> None:
    import httpx
    from playwright.sync_api import expect

    from tests.e2e.sites import ADMIN

    created = issue(served, name="counted", scopes=["chat"])
    fake.script("b", Reply(text="ok", usage=(11, 13)), Reply(text="ok", usage=(1000, 500)))
    for model in ("worker", "priced"):
        answer = httpx.post(
            served.api + "/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {created['secret']}"},
            timeout=30,
        )
        assert answer.status_code == 200
    page = signed_in(browser, served, ADMIN)
    page.click("#nav-usage")
    chart = page.locator("#usage-chart svg")
    expect(chart).to_be_visible()
    today = time.strftime("%Y-%m-%d", time.gmtime())
    bar = page.locator("#usage-chart g.day", has_text=today[5:])
    title = bar.locator("title").text_content() or ""
    assert title.startswith(today)
    assert "requests" in title
    heights = bar.locator("rect").evaluate_all(
        "rs => rs.map(r => Number(r.getAttribute('height')))"
    )
    assert all(h > 0 for h in heights)
    mine = page.locator("#usage-body tr", has_text=str(created["id"])).filter(has_text="worker")
    expect(mine).to_have_count(1)
    expect(mine).to_contain_text("11")
    expect(mine).to_contain_text("13")
    expect(page.locator("#usage-keys")).to_contain_text(str(created["id"]))
    priced = page.locator("#usage-body tr", has_text="priced").filter(has_text=str(created["id"]))
    expect(priced.locator("td").last).to_have_text("0.004")  # (1000 * 2 + 500 * 4) per million
    expect(mine.locator("td").last).to_have_text("0")  # an unpriced provider costs nothing
    expect(page.locator("#usage-cost")).to_contain_text("0.004")
    page.select_option("#usage-days", "30")
    expect(page.locator("#usage-chart g.day")).to_have_count(30)


def test_keys_page_creates_a_publishable_key_for_the_widget(
    served: RunningServer, browser: object
) -> None:
    from playwright.sync_api import expect

    from tests.e2e.sites import ADMIN

    page = signed_in(browser, served, ADMIN)
    page.click("#nav-keys")
    page.fill("#key-name", "storefront")
    page.check("#key-publishable")
    expect(page.locator("#key-scopes input[value=admin]")).to_be_disabled()  # chat only
    expect(page.locator("#key-tools")).to_have_value("read-only")  # what the key will get
    page.fill("#key-origins", "https://shop.example.com")
    page.fill("#key-visitor-rpm", "4")
    page.fill("#key-agents", "worker")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#secret-box")).to_be_visible()
    assert (page.locator("#secret-value").text_content() or "").startswith("pk-he-")
    expect(page.locator("#secret-label")).to_contain_text("Identity secret")
    listed = page.locator("#keys-body tr", has_text="storefront")
    expect(listed).to_contain_text("publishable: https://shop.example.com")
    expect(listed).to_contain_text("visitor rpm 4")
    expect(listed).to_contain_text("read-only")


def test_keys_page_creates_a_key_whose_calls_that_act_wait_for_a_person(
    served: RunningServer, browser: object, fake: FakeUpstream, tmp_path: Any
) -> None:
    import httpx
    from playwright.sync_api import expect

    from tests.e2e.sites import ADMIN

    page = signed_in(browser, served, ADMIN)
    page.click("#nav-keys")
    page.fill("#key-name", "careful")
    page.check("#key-require-approval")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#secret-box")).to_be_visible()
    secret = page.locator("#secret-value").text_content() or ""
    expect(page.locator("#keys-body tr", has_text="careful")).to_contain_text("approval first")

    # The agent asks no one, but this key's runs do: the command waits, the sum does not.
    ledger = tmp_path / "ledger.txt"
    calls = [
        {
            "id": "c1",
            "name": "terminal",
            "arguments": json.dumps({"command": f"echo x > {ledger}"}),
        },
        {"id": "c2", "name": "calculator", "arguments": json.dumps({"expression": "6*7"})},
    ]

    def ask(key: str) -> Any:
        return httpx.post(
            served.api + "/responses",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "acting", "input": "Write the ledger and work out 6*7."},
            timeout=30,
        ).json()

    fake.script("b", Reply(text="", tool_calls=calls))
    answer = ask(secret)
    waiting = [item for item in answer["output"] if item["type"] == "mcp_approval_request"]
    assert [item["name"] for item in waiting] == ["terminal"]
    assert not ledger.exists()
    # the same call from a key without the flag runs at once
    plain = str(issue(served, name="plain", scopes=["chat"])["secret"])
    fake.script("b", Reply(text="", tool_calls=calls), Reply(text="Done."))
    done = ask(plain)
    assert [item["type"] for item in done["output"]][-1] == "message"
    assert ledger.read_text() == "x\n"


def test_the_agents_api_needs_models_read_and_shows_only_the_keys_agents(
    served: RunningServer,
) -> None:
    import httpx

    chat_only = issue(served, name="c", scopes=["chat"])["secret"]
    refused = httpx.get(
        served.base_url + "/console/api/agents", headers={"Authorization": f"Bearer {chat_only}"}
    )
    assert refused.status_code == 403
    limited = issue(served, name="l", scopes=["models:read"], agents=["gpt"])["secret"]
    found = httpx.get(
        served.base_url + "/console/api/agents", headers={"Authorization": f"Bearer {limited}"}
    ).json()
    assert found["data"] == []
    assert [route["id"] for route in found["routes"]] == ["gpt"]


def test_every_page_fits_a_phone_without_scrolling_sideways(
    served: RunningServer, browser: object, fake: FakeUpstream
) -> None:
    from playwright.sync_api import Browser, expect

    from tests.e2e.sites import ADMIN

    assert isinstance(browser, Browser)
    page = browser.new_page(viewport={"width": 360, "height": 740})
    page.goto(served.base_url + "/console")
    page.fill("#key", ADMIN)
    page.click("#sign-in-form button[type=submit]")
    expect(page.locator("#playground")).to_be_visible()
    fake.script("b", Reply(text="A long answer " * 20))
    page.select_option("#model", "worker")
    page.fill("#message", "Say something long")
    page.click("#send")
    expect(page.locator(".turn.assistant")).to_be_visible()
    page.get_by_role("button", name="curl", exact=True).click()
    pages = (
        "playground",
        "agents",
        "sessions",
        "knowledge",
        "keys",
        "usage",
        "runs",
        "schedules",
        "webhooks",
    )
    for name in pages:
        page.click(f"#nav-{name}")
        expect(page.locator(f"#{name}")).to_be_visible()
        page.wait_for_load_state("networkidle")
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 360, f"the {name} page is {width}px wide on a 360px screen"
        # Nor does any table scroll within it: its rows are cards of labelled cells.
        wide = page.evaluate(
            "() => [...document.querySelectorAll('main section:not([hidden]) table')]"
            ".filter((t) => t.scrollWidth > t.clientWidth + 1).length"
        )
        assert wide == 0, f"a table on the {name} page scrolls sideways"
        # Every cell under a column with a head carries it (an actions column has none).
        unlabelled = page.evaluate(
            "() => [...document.querySelectorAll('main section:not([hidden]) tbody td')]"
            ".filter((td) => {"
            "  const head = td.closest('table').querySelectorAll('thead th')[td.cellIndex];"
            "  return head && head.textContent && td.dataset.label !== head.textContent;"
            "}).map((td) => td.outerHTML.slice(0, 200))"
        )
        assert unlabelled == [], f"cells on the {name} page say not what they are"


def test_runs_page_shows_a_background_run_and_its_steps_as_they_happen(
    served: RunningServer, browser: object, fake: FakeUpstream
) -> None:
    import openai
    from playwright.sync_api import expect

    from tests.e2e.sites import ADMIN

    call = {"id": "c7", "name": "calculator", "arguments": json.dumps({"expression": "6*7"})}
    slow = " ".join(f"w{n}" for n in range(30))
    fake.script(
        "b", Reply(text="Let me work.", tool_calls=[call]), Reply(text=slow, chunk_delay=0.2)
    )
    sdk = openai.OpenAI(base_url=served.api, api_key=ADMIN, max_retries=0)
    queued = sdk.responses.create(model="worker", input="6 times 7?", background=True)
    page = signed_in(browser, served, ADMIN)
    page.click("#nav-runs")
    row = page.locator("#runs-body tr", has_text=queued.id)
    expect(row).to_be_visible()
    row.get_by_role("button", name="Steps").click()
    steps = page.locator("#run-steps")
    expect(steps).to_contain_text('calculator({"expression": "6*7"}) [c7]')  # the reply
    expect(steps).to_contain_text("Let me work.")
    expect(steps).to_contain_text("result of c7")  # then the tool's result
    expect(steps.locator("li").nth(1)).to_contain_text("42")
    # followed while it runs: its end shows without a reload
    expect(page.locator("#run-steps-title")).to_have_text(f"{queued.id}: in_progress")
    expect(page.locator("#run-steps-title")).to_have_text(f"{queued.id}: completed", timeout=20_000)


def test_an_approval_is_a_card_to_answer_in_the_playground_and_the_sessions_page(
    served: RunningServer, browser: object, fake: FakeUpstream, tmp_path: Any
) -> None:
    from playwright.sync_api import expect

    from tests.e2e.sites import ADMIN

    ledger = tmp_path / "ledger.txt"
    run = {
        "id": "c1",
        "name": "terminal",
        "arguments": json.dumps({"command": f"echo ok >> {ledger}"}),
    }
    fake.script("b", Reply(text="Let me write it.", tool_calls=[run]))
    page = signed_in(browser, served, ADMIN)
    page.set_viewport_size({"width": 360, "height": 740})
    page.select_option("#model", "guarded")
    page.fill("#message", "Write the ledger.")
    page.click("#send")
    card = page.locator("#transcript .approval")
    expect(card).to_contain_text("Waiting for your approval: terminal")
    expect(card.locator("pre")).to_contain_text(f"echo ok >> {ledger}")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 360, f"the card makes the page {width}px wide on a 360px screen"
    card.get_by_role("button", name="Approve").click()
    expect(card).to_contain_text("Approved: send your next message to go on.")
    assert not ledger.exists()
    fake.script("b", Reply(text="Written."))
    page.fill("#message", "Go on.")
    page.click("#send")
    expect(page.locator(".turn.assistant .text").last).to_have_text("Written.")
    assert ledger.read_text() == "ok\n"

    # a request left waiting shows on the Sessions page, where it is denied
    fake.script("b", Reply(text="", tool_calls=[{**run, "id": "c2"}]))
    page.fill("#message", "Once more.")
    page.click("#send")
    expect(page.locator("#transcript .approval").last).to_be_visible()
    page.click("#nav-sessions")
    page.locator("#sessions-body tr", has_text="guarded").first.get_by_role(
        "button", name="Open"
    ).click()
    waiting = page.locator("#session-transcript .approval")
    expect(waiting).to_have_count(1)
    waiting.get_by_label("Reason for denying").fill("once is enough")
    waiting.get_by_role("button", name="Deny").click()
    expect(waiting).to_contain_text("Denied: send your next message to go on.")
    assert ledger.read_text() == "ok\n"
