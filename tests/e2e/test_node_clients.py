"""openai-node and LangChain JS (pinned in tests/clients), unchanged: an answer and a streamed
answer on chat completions and on the Responses API."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.clients import CLIENTS, node_env, require_clients
from tests.conftest import RunningServer
from tests.e2e.sites import ADMIN, site_fixture
from tests.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.e2e


served = site_fixture("n", before=require_clients)


@pytest.mark.parametrize("client", ["openai", "langchain"])
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_an_answer_and_a_stream(
    served: RunningServer, fake: FakeUpstream, client: str, api: str
) -> None:
    fake.script("n", Reply(text="Hello there."), Reply(text="one two three", chunk_delay=0.02))
    done = subprocess.run(
        ["node", str(CLIENTS / "node_clients.mjs"), served.api, ADMIN, "gpt", client, api],
        capture_output=True,
        text=True,
        timeout=60,
        env=node_env(),
        cwd=CLIENTS,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert json.loads(done.stdout) == {"answer": "Hello there.", "streamed": "one two three"}
    first, second = fake.received("n")
    assert first.body["messages"][-1] == {"role": "user", "content": "Hi"}
    assert second.body["stream"] is True
