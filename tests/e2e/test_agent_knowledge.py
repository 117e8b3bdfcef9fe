"""An agent file's ``knowledge:``: its documents indexed into the agent's own store and kept in
step with the files; ``file_search`` offered to its model on every wire, and the passages it
cites given back as each API's citations (Chat Completions ``url_citation``, Messages
``search_result_location``, Responses ``file_citation``). Keys never see the agent's store."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import RunningServer, stop_server
from tests.e2e.sites import ADMIN, issue, make_site, serve
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e

PREFIX = "ak"
AGENT = """---
model: up/helper
knowledge:
  files: [docs/, "notes/*.md"]
  max_num_results: 3
---
Answer from the documents.
"""
POLICY = "Refunds are paid within 14 days of the returned parcel reaching the warehouse."
SHIPPING = "Parcels to Iceland travel by sea and take three weeks."


@pytest.fixture(scope="module")
def site_root(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_site(
        tmp_path_factory.mktemp("agent-knowledge"), upstream, PREFIX, {"support": AGENT}
    )
    docs = root / "agents" / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text(f"# Refunds\n\n{POLICY}\n")
    (docs / ".hidden.md").write_text("a hidden file is never indexed")
    (root / "agents" / "notes").mkdir()
    (root / "agents" / "notes" / "shipping.md").write_text(SHIPPING)
    (root / "agents" / "notes" / "skip.bin").write_bytes(b"\0\1")
    return root


@pytest.fixture(scope="module")
def site(site_root: Path) -> Iterator[RunningServer]:
    server = serve(site_root)
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def secret(site: RunningServer) -> str:
    return str(issue(site, name="support-user", scopes=["chat"])["secret"])


def admin_files(site: RunningServer, store: str = "vs_agent_support") -> dict[str, str]:
    """The agent's store's files, by path, once none is waiting (an admin may look)."""
    deadline = time.monotonic() + 60
    headers = {"Authorization": f"Bearer {ADMIN}"}
    while time.monotonic() < deadline:
        answer = httpx.get(f"{site.api}/vector_stores/{store}/files", headers=headers)
        if answer.status_code == 200:
            files = answer.json()["data"]
            if files and all(f["status"] != "in_progress" for f in files):
                return {f["attributes"]["path"]: f["status"] for f in files}
        time.sleep(0.3)
    raise AssertionError("the agent's knowledge was not indexed")


def search_then_answer(upstream: FakeUpstream, query: str, answer: str) -> None:
    upstream.reset()
    call = {"id": "call_k", "name": "file_search", "arguments": json.dumps({"query": query})}
    upstream.script(PREFIX, Reply(text="", tool_calls=[call]), Reply(text=answer))


def passages(upstream: FakeUpstream) -> str:
    second = upstream.received(PREFIX)[1].body
    content: str = second["messages"][-1]["content"]
    return content


def test_the_files_are_indexed_into_the_agents_own_store(site: RunningServer) -> None:
    assert admin_files(site) == {"docs/refunds.md": "completed", "notes/shipping.md": "completed"}


def test_chat_completions_cite_with_url_citations(
    site: RunningServer, secret: str, upstream: FakeUpstream
) -> None:
    admin_files(site)
    client = openai.OpenAI(base_url=site.api, api_key=secret, max_retries=0)
    search_then_answer(upstream, "refund time", "Within 14 days [1].")
    reply = client.chat.completions.create(
        model="support", messages=[{"role": "user", "content": "How fast are refunds?"}]
    )
    message = reply.choices[0].message
    assert message.content == "Within 14 days [1]."
    offered = upstream.received(PREFIX)[0].body["tools"]
    assert [t["function"]["name"] for t in offered] == ["file_search"]
    assert POLICY in passages(upstream)
    (annotation,) = message.annotations or []
    assert annotation.type == "url_citation"
    assert annotation.url_citation.title == "docs/refunds.md"
    assert annotation.url_citation.url.startswith("/v1/files/file-agent-")
    start, end = annotation.url_citation.start_index, annotation.url_citation.end_index
    assert message.content[start:end] == "[1]"
    # streamed: the citations come on the last delta
    search_then_answer(upstream, "refund time", "Within 14 days [1].")
    stream = client.chat.completions.create(
        model="support",
        messages=[{"role": "user", "content": "How fast are refunds?"}],
        stream=True,
    )
    found: list[Any] = []
    for chunk in stream:
        if chunk.choices:
            extra = chunk.choices[0].delta.model_extra or {}
            found += extra.get("annotations") or []
    assert [a["url_citation"]["title"] for a in found] == ["docs/refunds.md"]


def test_messages_cite_with_search_result_locations(
    site: RunningServer, secret: str, upstream: FakeUpstream
) -> None:
    admin_files(site)
    client = anthropic.Anthropic(base_url=site.base_url, api_key=secret, max_retries=0)
    search_then_answer(upstream, "iceland", "By sea, three weeks [1].")
    message = client.messages.create(
        model="support", max_tokens=100, messages=[{"role": "user", "content": "Iceland?"}]
    )
    block = message.content[0]
    assert block.type == "text"
    (citation,) = block.citations or []
    assert citation.type == "search_result_location"
    assert citation.title == "notes/shipping.md"
    assert citation.cited_text == SHIPPING
    search_then_answer(upstream, "iceland", "By sea [1].")
    with client.messages.stream(
        model="support", max_tokens=100, messages=[{"role": "user", "content": "Iceland?"}]
    ) as stream:
        final = stream.get_final_message()
    streamed = final.content[0]
    assert streamed.type == "text"
    assert [c.title for c in streamed.citations or [] if c.type == "search_result_location"] == [
        "notes/shipping.md"
    ]


def test_responses_show_the_search_and_cite_files(
    site: RunningServer, secret: str, upstream: FakeUpstream
) -> None:
    admin_files(site)
    client = openai.OpenAI(base_url=site.api, api_key=secret, max_retries=0)
    search_then_answer(upstream, "refunds", "Fourteen days [1].")
    response = client.responses.create(model="support", input="Refunds?")
    kinds = [item.type for item in response.output]
    assert kinds == ["file_search_call", "message"]
    assert response.output_text == "Fourteen days [1]."


def test_keys_do_not_see_the_agents_store(site: RunningServer, secret: str) -> None:
    admin_files(site)
    client = openai.OpenAI(base_url=site.api, api_key=secret, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve("vs_agent_support")
    assert all(not f.id.startswith("file-agent-") for f in client.files.list())


def test_the_store_follows_the_files(
    site: RunningServer, site_root: Path, upstream: FakeUpstream
) -> None:
    admin_files(site)
    docs = site_root / "agents" / "docs"
    (docs / "warranty.md").write_text("Every kettle carries a two-year warranty.")
    (docs / "refunds.md").write_text("Refunds are paid within 30 days from now on.")
    (site_root / "agents" / "notes" / "shipping.md").unlink()
    deadline = time.monotonic() + 60
    files: dict[str, str] = {}
    while time.monotonic() < deadline:
        files = admin_files(site)
        if set(files) == {"docs/refunds.md", "docs/warranty.md"}:
            break
        time.sleep(0.5)
    assert files == {"docs/refunds.md": "completed", "docs/warranty.md": "completed"}
    search_then_answer(upstream, "refund days", "30 days [1].")
    client = openai.OpenAI(base_url=site.api, api_key=ADMIN, max_retries=0)
    client.chat.completions.create(
        model="support", messages=[{"role": "user", "content": "Refunds?"}]
    )
    text = passages(upstream)
    assert "30 days" in text
    assert "14 days" not in text
    assert "Iceland" not in text


def test_check_names_a_missing_folder(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "lost.md").write_text("---\nknowledge: [missing/]\n---\nhi\n")
    (agents / "odd.md").write_text("---\nknowledge: [picture.png]\n---\nhi\n")
    (agents / "picture.png").write_bytes(b"\x89PNG")
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "headend", "check", "--agents", str(agents)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "lost.md: knowledge: 'missing/': no such file or folder" in done.stderr + done.stdout
    assert "odd.md: knowledge: picture.png: headend does not read '.png' files" in (
        done.stderr + done.stdout
    )


def test_completions_and_mcp_offer_the_agents_knowledge_too(
    site: RunningServer, secret: str, upstream: FakeUpstream
) -> None:
    import asyncio

    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    admin_files(site)
    client = openai.OpenAI(base_url=site.api, api_key=secret, max_retries=0)
    search_then_answer(upstream, "refunds", "Within the stated days [1].")
    done = client.completions.create(model="support", prompt="Refunds?")
    assert done.choices[0].text == "Within the stated days [1]."
    assert "docs/refunds.md" in passages(upstream)

    async def over_mcp() -> Any:
        headers = {"Authorization": f"Bearer {secret}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=60) as http,
            streamable_http_client(site.base_url + "/mcp", http_client=http) as (r, w),
            ClientSession(r, w) as session,
        ):
            await session.initialize()
            return await session.call_tool("support", {"message": "Refunds?"})

    search_then_answer(upstream, "refunds", "As the policy says [1].")
    result = asyncio.run(over_mcp())
    assert result.is_error is False
    assert result.structured_content["answer"] == "As the policy says [1]."
    assert "docs/refunds.md" in passages(upstream)
