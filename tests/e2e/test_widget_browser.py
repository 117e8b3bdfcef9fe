"""The chat widget in a real browser, on real pages of other origins: from an allowed site it
opens, streams an answer and keeps the conversation across a reload; from any other site it
shows the refusal. The site's CSS does not reach into the widget, and it works with a
keyboard: Escape closes it and gives the focus back."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import RunningServer
from tests.e2e.sites import issue, site_fixture
from tests.e2e.streaming import texts_until
from tests.upstream import FakeUpstream, Reply
from tests.web_page import Site

pytestmark = pytest.mark.e2e

SUPPORT = "---\nmodel: up/support\n---\nYou help shoppers.\n"
CAREFUL = (
    "---\nmodel: up/careful\ntools: [calculator]\nrequire_approval: always\n---\n"
    "You quote prices.\n"
)
served = site_fixture("g", {"support": SUPPORT, "careful": CAREFUL})

# A hostile stylesheet: if it reached into the widget, the checks below would see it.
PAGE = """<!doctype html>
<html><head><title>A shop</title>
<style>* {{ color: rgb(255, 0, 0) !important; font-size: 40px !important; }}
div {{ display: block; }} textarea {{ display: none !important; }}</style></head>
<body><h1>Shop</h1><a href="#" id="outside">outside</a>
<script src="{headend}/widget.js" data-agent="support" data-key="{key}" data-title="Help desk"
  data-color="#0a7d32" data-greeting="Hi! Ask me anything." async></script>
</body></html>"""


@pytest.fixture(scope="module")
def shop() -> Iterator[Site]:
    site = Site()
    yield site
    site.stop()


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[Site]:
    site = Site()
    yield site
    site.stop()


def test_the_widget_answers_on_its_site_and_keeps_the_conversation(
    served: RunningServer, browser: object, fake: FakeUpstream, shop: Site, elsewhere: Site
) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    created = issue(
        served, name="shop", publishable=True, agents=["support"], origins=[shop.origin]
    )
    shop.page = PAGE.format(headend=served.base_url, key=created["secret"])
    page = browser.new_page()
    page.goto(shop.origin + "/")
    launcher = page.get_by_role("button", name="Open chat: Help desk")
    expect(launcher).to_be_visible()
    assert launcher.evaluate("b => getComputedStyle(b).color") == "rgb(255, 255, 255)"

    launcher.click()
    dialog = page.get_by_role("dialog", name="Help desk")
    expect(dialog).to_be_visible()
    message = page.get_by_label("Message")
    expect(message).to_be_focused()  # focus moves into the panel
    assert message.evaluate("t => getComputedStyle(t).display") != "none"
    assert message.evaluate("t => getComputedStyle(t).fontSize") == "15px"
    expect(page.locator(".msg.assistant")).to_have_text(["Hi! Ask me anything."])

    fake.script("g", Reply(text="We ship within two days, to most countries.", chunk_delay=0.15))
    message.fill("When do you ship?")
    message.press("Enter")
    answer = page.locator(".msg.assistant").nth(1)
    seen = texts_until(answer, "We ship within two days, to most countries.")
    assert seen[-1] == "We ship within two days, to most countries."
    assert len(seen) >= 3, seen  # streamed, not all at once
    assert fake.received("g")[0].headers.get("origin") is None  # nothing of the page upstream
    expect(page.get_by_role("button", name="Send")).to_be_enabled()  # the stream has ended

    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Open chat: Help desk")).to_be_focused()

    page.reload()  # a later page load: the same visitor, the same conversation
    page.get_by_role("button", name="Open chat: Help desk").click()
    expect(page.locator(".msg")).to_have_text(
        ["When do you ship?", "We ship within two days, to most countries."]
    )
    fake.script("g", Reply(text="Yes, to Norway too."))
    page.get_by_label("Message").fill("Norway?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".msg.assistant").last).to_have_text("Yes, to Norway too.")
    continued = fake.received("g")[1].body["messages"]
    assert [m["content"] for m in continued if m["role"] == "user"] == [
        "When do you ship?",
        "Norway?",
    ]
    stored = page.evaluate("() => JSON.stringify({...localStorage})")
    assert "vt-he-" in stored  # the visitor's token is what the widget keeps

    # The same tag on a site the key was not made for: the widget says why it cannot chat.
    elsewhere.page = shop.page
    other = browser.new_page()
    other.goto(elsewhere.origin + "/")
    other.get_by_role("button", name="Open chat: Help desk").click()
    refusal = other.get_by_role("alert")
    expect(refusal).to_contain_text(f"does not work from {elsewhere.origin}")
    assert len(fake.received("g")) == 2  # nothing reached the model
    other.close()
    page.close()


def test_a_call_that_waits_is_a_card_the_visitor_answers_and_only_they_can(
    served: RunningServer, browser: object, fake: FakeUpstream, shop: Site
) -> None:
    import httpx
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    created = issue(
        served, name="quotes", publishable=True, agents=["careful"], origins=[shop.origin]
    )
    shop.page = PAGE.format(headend=served.base_url, key=created["secret"]).replace(
        'data-agent="support"', 'data-agent="careful"'
    )
    sum_call = {"id": "c1", "name": "calculator", "arguments": json.dumps({"expression": "6*7"})}
    fake.script("g", Reply(text="Let me work it out.", tool_calls=[sum_call]))
    page = browser.new_page(viewport={"width": 360, "height": 740})
    page.goto(shop.origin + "/")
    page.get_by_role("button", name="Open chat: Help desk").click()
    page.get_by_label("Message").fill("What do six boxes at 7 cost?")
    page.get_by_label("Message").press("Enter")
    card = page.get_by_role("group", name="Approval needed: calculator")
    expect(card).to_contain_text("Waiting for your approval: calculator")
    expect(card.locator("pre")).to_contain_text('"expression": "6*7"')
    expect(page.locator(".msg.assistant").last).to_have_text("Let me work it out.")
    assert "/v1/sessions" not in page.locator("[data-headend-widget]").inner_text()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 360, f"the card makes the page {width}px wide on a 360px screen"

    # Another visitor of the same site cannot answer it, even knowing its ids.
    session_id = json.loads(page.evaluate("() => Object.values({...localStorage})[0]"))["session"]
    approval_id = waiting_approval_id(served, session_id)
    stranger = httpx.post(
        served.base_url + "/widget/api/visitor",
        content=json.dumps({"key": created["secret"]}),
        headers={"Origin": shop.origin, "Content-Type": "text/plain"},
    ).json()["token"]
    refused = httpx.post(
        served.base_url + "/widget/api/approval",
        json={"session_id": session_id, "approval_id": approval_id, "approve": True},
        headers={"Origin": shop.origin, "Authorization": f"Bearer {stranger}"},
    )
    assert refused.status_code == 404, refused.text
    assert refused.json()["error"]["code"] == "approval_not_found"

    page.reload()  # still waiting on the next page load
    page.get_by_role("button", name="Open chat: Help desk").click()
    card = page.get_by_role("group", name="Approval needed: calculator")
    card.get_by_role("button", name="Approve").click()
    expect(card).to_contain_text("Approved: send your next message to go on.")
    fake.script("g", Reply(text="Six boxes cost 42."))
    page.get_by_label("Message").fill("Go on.")
    page.get_by_label("Message").press("Enter")
    expect(page.locator(".msg.assistant").last).to_have_text("Six boxes cost 42.")
    sent = fake.received("g")[-1].body["messages"]
    assert {"role": "tool", "tool_call_id": "c1", "content": "42"}.items() <= {
        **next(m for m in sent if m["role"] == "tool")
    }.items()
    page.close()


def waiting_approval_id(served: RunningServer, session_id: str) -> str:
    """The session's one waiting request, as an admin sees it."""
    import httpx

    from tests.e2e.sites import ADMIN

    listed = httpx.get(
        f"{served.api}/sessions/{session_id}/approvals",
        headers={"Authorization": f"Bearer {ADMIN}"},
    ).json()["data"]
    (waiting,) = [a for a in listed if a["status"] == "pending"]
    return str(waiting["id"])


def test_a_guardrails_refusal_is_said_to_the_visitor(
    served: RunningServer, browser: object, fake: FakeUpstream, shop: Site
) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    rules = [{"check": "regex", "patterns": ["(?i)nightjar"], "message": "Not that project."}]
    created = issue(
        served,
        name="shielded-shop",
        publishable=True,
        agents=["support"],
        origins=[shop.origin],
        guardrails=rules,
    )
    shop.page = PAGE.format(headend=served.base_url, key=created["secret"])
    page = browser.new_page()
    page.goto(shop.origin + "/")
    page.get_by_role("button", name="Open chat: Help desk").click()
    page.get_by_label("Message").fill("Tell me about Nightjar")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".msg.assistant").last).to_have_text("Not that project.")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    assert fake.received("g") == []  # refused before any model call
    page.close()
