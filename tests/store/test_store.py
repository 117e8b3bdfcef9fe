"""The one suite every store backend passes."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from headend.store.base import NewSession, Store
from headend.store.migrations import MIGRATIONS, migrate
from headend.store.postgres import PostgresStore
from headend.store.sqlite import SqliteStore, connect


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend: Store
    if request.param == "sqlite":
        backend = SqliteStore(tmp_path / "h.db")
    else:
        url = request.getfixturevalue("postgres_url")
        backend = PostgresStore(url)
        await wipe(url)
    await backend.start()
    yield backend
    await backend.close()


async def wipe(url: str) -> None:
    """A clean database for each test: the suite's tests share one cluster."""
    import asyncpg

    db = await asyncpg.connect(url)
    try:
        # every table, those a later migration adds too
        await db.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await db.close()


def msg(text: str, role: str = "user") -> dict[str, str]:
    return {"role": role, "content": text}


async def test_sessions_and_turns(store: Store) -> None:
    await store.create_session("s1", None, "chat", {"k": "v"})
    await store.append_turn("s1", [msg("hi"), msg("hello", "assistant")])
    await store.append_turn("s1", [msg("more"), msg("sure", "assistant")])
    record = await store.get_session("s1", None)
    assert record is not None
    assert (record.agent, record.metadata, record.turns) == ("chat", {"k": "v"}, 2)
    assert [m["content"] for m in await store.messages("s1")] == ["hi", "hello", "more", "sure"]


async def test_a_first_turn_creates_its_session_in_the_same_transaction(store: Store) -> None:
    await store.append_turn("s2", [msg("hi")], NewSession(None, "chat", {}))
    record = await store.get_session("s2", None)
    assert record is not None
    assert record.turns == 1
    with pytest.raises(Exception):  # noqa: B017, PT011 - each backend's own integrity error
        await store.append_turn("s2", [msg("again")], NewSession(None, "chat", {}))
    assert [m["content"] for m in await store.messages("s2")] == ["hi"]  # nothing partial


async def test_a_turn_that_cannot_be_written_leaves_nothing(store: Store) -> None:
    await store.create_session("s3", None, "chat", {})
    with pytest.raises(TypeError):
        await store.append_turn("s3", [msg("ok"), {"role": "user", "content": object()}])
    assert await store.messages("s3") == []
    assert (await store.get_session("s3", None)).turns == 0  # type: ignore[union-attr]


async def test_owners_do_not_see_each_other(store: Store) -> None:
    await store.create_session("a", "key-a", "chat", {})
    assert await store.get_session("a", "key-b") is None
    assert await store.get_session("a", None) is None
    assert not await store.delete_session("a", "key-b")
    assert await store.list_sessions("key-b", 10) == []
    assert [r.id for r in await store.list_sessions("key-a", 10)] == ["a"]


async def test_listing_is_newest_first_with_a_cursor(store: Store) -> None:
    for name in ("old", "mid", "new"):
        await store.create_session(name, None, "chat", {})
    await store.append_turn("old", [msg("bump")])  # now the most recently updated
    listed = await store.list_sessions(None, 10)
    assert [r.id for r in listed] == ["old", "new", "mid"]
    page = await store.list_sessions(None, 10, before=listed[0].updated_at)
    assert [r.id for r in page] == ["new", "mid"]


async def test_delete_removes_messages_and_prune_removes_stale(store: Store) -> None:
    await store.append_turn("gone", [msg("x")], NewSession(None, "chat", {}))
    assert await store.delete_session("gone", None)
    assert await store.messages("gone") == []
    await store.create_session("stale", None, "chat", {})
    record = await store.get_session("stale", None)
    assert record is not None
    assert await store.prune(record.updated_at + 1) == 1
    assert await store.get_session("stale", None) is None


def test_migrations_are_recorded_and_run_once(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "m.db")
    assert migrate(db) == [m.__name__ for m in MIGRATIONS]
    assert migrate(db) == []
    names = [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY name")]
    assert names == [
        "m001_sessions",
        "m002_turn_lease",
        "m003_keys",
        "m004_key_limits",
        "m005_usage",
        "m006_responses",
        "m007_response_items",
        "m008_key_tools",
        "m009_console_logins",
        "m010_publishable_keys",
        "m011_idempotency",
        "m012_agent_versions",
        "m013_agents",
        "m014_usage_cost",
        "m015_key_budgets",
        "m016_audit",
        "m017_background_runs",
        "m018_webhook_deliveries",
        "m019_schedule_fires",
        "m020_run_steps",
        "m021_key_approval",
        "m022_approvals",
        "m023_knowledge",
        "m024_key_guardrails",
    ]


async def test_a_turn_lease_is_held_by_one_until_it_is_released_or_expires(store: Store) -> None:
    import time

    await store.create_session("l", None, "chat", {})
    now = time.time()
    assert await store.claim("l", "one", now + 60)
    assert not await store.claim("l", "two", now + 60)
    assert await store.claim("l", "one", now + 60)  # the holder may renew
    await store.release("l", "two")  # only the holder releases
    assert not await store.claim("l", "two", now + 60)
    await store.release("l", "one")
    assert await store.claim("l", "two", now + 60)
    assert await store.claim("l", "three", now + 60) is False
    await store.claim("l", "two", now - 1)  # an expired lease...
    assert await store.claim("l", "three", now + 60)  # ...is anyone's


async def test_keys_are_kept_by_hash_revoked_and_rotated(store: Store) -> None:
    from headend.store.base import KeyRecord

    record = KeyRecord(
        id="key_1",
        name="ci",
        prefix="sk-he-abc",
        scopes=("chat",),
        agents=("helper",),
        created_at=1000.0,
        expires_at=None,
    )
    assert not await store.has_keys()
    await store.create_key(record, "hash-1")
    assert await store.has_keys()
    found = await store.key_by_hash("hash-1")
    assert found == record
    assert await store.key_by_hash("hash-2") is None
    assert await store.rotate_key("key_1", "hash-2", "sk-he-def")
    assert await store.key_by_hash("hash-1") is None
    assert (await store.key_by_hash("hash-2")).prefix == "sk-he-def"  # type: ignore[union-attr]
    await store.touch_keys({"key_1": 2000.0})
    assert (await store.list_keys())[0].last_used_at == 2000.0
    assert await store.revoke_key("key_1", 3000.0)
    assert not await store.revoke_key("key_1", 3001.0)
    assert await store.has_keys()  # a revoked key still means headend is not open
    revoked = await store.key_by_hash("hash-2")
    assert revoked is not None
    assert not revoked.active(now=3500.0)
    assert not await store.rotate_key("key_1", "hash-3", "x")


async def test_a_key_keeps_its_limits(store: Store) -> None:
    from headend.store.base import KeyRecord

    limited = KeyRecord(
        id="key_2",
        name="batch",
        prefix="sk-he-xyz",
        scopes=("chat",),
        agents=None,
        created_at=1.0,
        rpm=60,
        tpm=10_000,
        max_concurrency=2,
    )
    await store.create_key(limited, "hash-x")
    assert await store.key_by_hash("hash-x") == limited
    assert (await store.list_keys())[0].max_concurrency == 2


@pytest.mark.parametrize("grant", [None, "none", "read-only", ("calculator", "mcp:files")])
async def test_a_key_keeps_its_tool_grant(store: Store, grant: object) -> None:
    from headend.store.base import KeyRecord

    record = KeyRecord(
        id="key_t",
        name="t",
        prefix="sk-he-t",
        scopes=("chat",),
        agents=None,
        created_at=1.0,
        tools=grant,  # type: ignore[arg-type]
    )
    await store.create_key(record, "hash-t")
    assert await store.key_by_hash("hash-t") == record


async def test_a_key_keeps_its_guardrails(store: Store) -> None:
    from headend.store.base import KeyRecord

    rules = '[{"check":"regex","patterns":["(?i)nightjar"]},{"check":"pii","action":"mask"}]'
    record = KeyRecord(
        id="key_g",
        name="g",
        prefix="sk-he-g",
        scopes=("chat",),
        agents=None,
        created_at=1.0,
        guardrails=rules,
    )
    await store.create_key(record, "hash-g")
    assert await store.key_by_hash("hash-g") == record
    assert [k.guardrails for k in await store.list_keys()] == [rules]


async def test_a_publishable_key_keeps_its_sites_rates_budget_and_signing_secret(
    store: Store,
) -> None:
    from headend.store.base import KeyRecord

    record = KeyRecord(
        id="key_p",
        name="shop",
        prefix="pk-he-abc",
        scopes=("chat",),
        agents=("support",),
        created_at=1.0,
        tools="read-only",
        origins=("https://shop.example.com", "http://localhost:3000"),
        visitor_rpm=7,
        signing_secret="s3cret",
        budget=12.5,
        budget_period="week",
    )
    await store.create_key(record, "hash-p")
    assert await store.key_by_hash("hash-p") == record
    listed = (await store.list_keys())[0]
    assert listed.publishable
    assert listed.signing_secret == "s3cret"
    assert "s3cret" not in repr(listed)  # never in a log line that prints a record


async def test_usage_adds_up_per_day_key_and_model(store: Store) -> None:
    from headend.store.base import UsageRow

    await store.add_usage(
        [
            UsageRow("2026-11-21", "key_1", "helper", 1, 10, 5, 0.25),
            UsageRow("2026-11-22", None, "m", 1, 1, 1),
        ]
    )
    # a second batch (or a second instance) adds to the same rows
    await store.add_usage(
        [
            UsageRow("2026-11-21", "key_1", "helper", 2, 100, 50, 0.5),
            UsageRow("2026-11-22", "key_1", "helper", 1, 7, 3, 0.125),
        ]
    )
    assert await store.usage("2026-11-21") == [
        UsageRow("2026-11-21", "key_1", "helper", 3, 110, 55, 0.75),
        UsageRow("2026-11-22", None, "m", 1, 1, 1, 0.0),
        UsageRow("2026-11-22", "key_1", "helper", 1, 7, 3, 0.125),
    ]
    assert await store.usage("2026-11-22", key_id="key_1") == [
        UsageRow("2026-11-22", "key_1", "helper", 1, 7, 3, 0.125)
    ]
    # What a key spent from a day on (its budget period's first)
    assert await store.spent("key_1", "2026-11-21") == 0.875
    assert await store.spent("key_1", "2026-11-22") == 0.125
    assert await store.spent("key_2", "2026-11-21") == 0.0


async def test_the_audit_lists_newest_first_with_filters_and_a_cursor(store: Store) -> None:
    from headend.store.base import AuditEntry, AuditQuery

    written = [
        AuditEntry(1.0, "cli:root", "key.create", "key_1", {"name": "ci", "scopes": ["chat"]}),
        AuditEntry(2.0, "key_1", "agent.create", "faq"),
        AuditEntry(3.0, "key_1", "agent.publish", "faq", {"version": 1}),
        AuditEntry(4.0, "file", "agent.version", "support", {"version": 2}),
        AuditEntry(5.0, "admin", "key.revoke", "key_1"),
    ]
    for entry in written:
        await store.add_audit(entry)
    every = await store.audit(AuditQuery())
    assert [e.at for e in every] == [5.0, 4.0, 3.0, 2.0, 1.0]
    assert every[-1].detail == {"name": "ci", "scopes": ["chat"]}
    ids = [e.id or 0 for e in every]
    assert ids == sorted(ids, reverse=True)
    assert 0 not in ids
    assert [e.action for e in await store.audit(AuditQuery(target="faq"))] == [
        "agent.publish",
        "agent.create",
    ]
    agents = await store.audit(AuditQuery(action="agent"))  # the family
    assert [e.action for e in agents] == ["agent.version", "agent.publish", "agent.create"]
    assert len(await store.audit(AuditQuery(action="agent.create"))) == 1
    assert await store.audit(AuditQuery(action="agent.cr")) == []  # not a prefix of words
    assert [e.at for e in await store.audit(AuditQuery(actor="key_1"))] == [3.0, 2.0]
    page = await store.audit(AuditQuery(limit=2))
    assert [e.at for e in page] == [5.0, 4.0]
    rest = await store.audit(AuditQuery(limit=10, before=page[-1].id))
    assert [e.at for e in rest] == [3.0, 2.0, 1.0]


async def test_responses_are_kept_per_owner(store: Store) -> None:
    from headend.store.base import ResponseRecord

    record = ResponseRecord(
        "resp_1", "key_1", "sess_1", 2, 5.0, {"id": "resp_1", "output": []}, [{"role": "user"}]
    )
    await store.save_response(record)
    assert await store.get_response("resp_1", "key_1") == record
    assert await store.get_response("resp_1", "key_2") is None
    assert not await store.delete_response("resp_1", "key_2")
    assert await store.delete_response("resp_1", "key_1")
    assert await store.get_response("resp_1", "key_1") is None
    await store.save_response(ResponseRecord("resp_2", None, None, None, 6.0, {}, []))
    assert (await store.get_response("resp_2", None)) is not None
    await store.prune(6.5)  # retention applies to stored responses too
    assert await store.get_response("resp_2", None) is None


async def test_history_through_a_turn(store: Store) -> None:
    first = [msg("one"), msg("a1", "assistant")]
    assert await store.append_turn("h", first, NewSession(None, "a", {})) == 0
    assert await store.append_turn("h", [msg("two"), msg("a2", "assistant")]) == 1
    assert [m["content"] for m in await store.messages("h", through_turn=0)] == ["one", "a1"]
    assert len(await store.messages("h")) == 4


async def test_response_items_are_found_by_id_per_owner(store: Store) -> None:
    from headend.store.base import ResponseRecord

    said = {"id": "msg_1", "type": "message", "role": "assistant", "content": []}
    asked = {"id": "msg_0", "type": "message", "role": "user", "content": []}
    for owner, response_id in (("key_1", "resp_1"), (None, "resp_2")):
        body = {"id": response_id, "output": [said, {"type": "no id here"}]}
        await store.save_response(
            ResponseRecord(response_id, owner, None, None, 5.0, body, [asked])
        )
    assert await store.response_item("msg_1", "key_1") == said
    assert await store.response_item("msg_0", "key_1") == asked
    assert await store.response_item("msg_1", None) == said  # open mode's own copy
    assert await store.response_item("msg_1", "key_2") is None
    assert await store.response_item("msg_9", "key_1") is None
    assert await store.delete_response("resp_1", "key_1")
    assert await store.response_item("msg_1", "key_1") is None  # gone with its response
    await store.prune(10.0)
    assert await store.response_item("msg_1", None) is None


async def test_console_logins_end_when_signed_out_or_expired(store: Store) -> None:
    from headend.store.base import ConsoleLogin

    login = ConsoleLogin("key_1", "hash-of-secret", 100.0)
    await store.save_console_login("token-hash", login)
    assert await store.console_login("token-hash", 50.0) == login
    assert await store.console_login("token-hash", 100.0) is None  # expired
    assert await store.console_login("other", 50.0) is None
    await store.end_console_login("token-hash")
    assert await store.console_login("token-hash", 50.0) is None


async def test_an_idempotency_key_is_claimed_once_answered_and_expires(store: Store) -> None:
    assert await store.claim_idempotency("key_a", "k1", "h1", 1000.0, 60) is None
    running = await store.claim_idempotency("key_a", "k1", "h1", 1001.0, 60)
    assert running is not None
    assert (running.body_hash, running.status) == ("h1", None)
    # Another caller's key of the same name is theirs.
    assert await store.claim_idempotency("key_b", "k1", "h2", 1001.0, 60) is None
    answer = (200, {"content-type": "application/json"}, b'{"ok": true}')
    await store.finish_idempotency("key_a", "k1", "h1", answer, 5000.0)
    done = await store.claim_idempotency("key_a", "k1", "h9", 4999.0, 60)
    assert done is not None
    assert (done.body_hash, done.status, done.headers, done.body) == ("h1", *answer)
    # Kept until its expiry, then claimable anew, and pruned.
    assert await store.claim_idempotency("key_a", "k1", "h3", 5000.0, 60) is None
    assert await store.prune_idempotency(5061.0) == 2  # key_a's new claim and key_b's
    assert await store.claim_idempotency("key_a", "k1", "h4", 5062.0, 60) is None


async def test_a_released_or_lapsed_claim_may_be_taken_again(store: Store) -> None:
    assert await store.claim_idempotency("", "k", "h", 100.0, 10) is None
    await store.release_idempotency("", "k", "h")
    assert await store.claim_idempotency("", "k", "h", 101.0, 10) is None
    assert await store.claim_idempotency("", "k", "h", 110.0, 10) is not None  # leased
    assert await store.claim_idempotency("", "k", "h", 111.0, 10) is None  # lapsed
    # Finishing needs the claim's own body: a stale runner cannot overwrite another's.
    await store.finish_idempotency("", "k", "other", (200, {}, b"x"), 999.0)
    found = await store.claim_idempotency("", "k", "h", 112.0, 10)
    assert found is not None
    assert found.status is None


async def test_ping_answers_while_open(store: Store) -> None:
    await store.ping()  # what /health/ready asks


def test_processes_starting_together_on_a_new_sqlite_file_migrate_once(tmp_path: Path) -> None:
    """Workers start at once on a fresh file: one migrates, the others wait and find it done."""
    import multiprocessing

    path = tmp_path / "fresh.db"
    context = multiprocessing.get_context("spawn")
    at = time.time() + 3  # every process begins at this moment, once its interpreter is up
    with context.Pool(4) as pool:
        applied = pool.starmap(_migrate_file, [(path, at)] * 4)
    assert sorted(len(names) for names in applied)[-1] == len(MIGRATIONS)
    assert sum(len(names) for names in applied) == len(MIGRATIONS)  # each applied once


def _migrate_file(path: Path, at: float) -> list[str]:
    time.sleep(max(0.0, at - time.time()))
    db = connect(path)  # as the store opens it
    try:
        return migrate(db)
    finally:
        db.close()


def twin(store: Store) -> Store:
    """Another process's view of the same store."""
    if isinstance(store, SqliteStore):
        return SqliteStore(store.path)
    assert isinstance(store, PostgresStore)
    return PostgresStore(store.url)


async def test_an_agent_gets_a_new_version_for_each_new_content(store: Store) -> None:
    first = await store.record_agent_version("support", "v one", "file", None, 1.0)
    assert (first.version, first.content, first.origin) == (1, "v one", "file")
    again = await store.record_agent_version("support", "v one", "file", None, 2.0)
    assert again == first  # unchanged content: the same version, its time kept
    second = await store.record_agent_version("support", "v two", "file", None, 3.0)
    assert second.version == 2
    back = await store.record_agent_version("support", "v one", "file", None, 4.0)
    assert back.version == 3  # going back is a new version too: history is never rewritten
    other = await store.record_agent_version("sales", "v one", "file", None, 5.0)
    assert other.version == 1
    assert [v.version for v in await store.agent_versions("support")] == [3, 2, 1]
    found = await store.agent_version("support", 2)
    assert found is not None
    assert found.content == "v two"
    assert await store.agent_version("support", 9) is None
    assert await store.agent_versions("nobody") == []


async def test_instances_recording_the_same_content_at_once_agree_on_its_version(
    store: Store,
) -> None:
    import asyncio

    other = twin(store)
    await other.start()
    try:
        await store.record_agent_version("support", "old", "file", None, 1.0)
        found = await asyncio.gather(
            *(
                backend.record_agent_version("support", "new", "file", None, 2.0)
                for backend in (store, other, store, other)
            )
        )
    finally:
        await other.close()
    assert {v.version for v in found} == {2}
    assert [v.version for v in await store.agent_versions("support")] == [2, 1]


async def test_each_turn_keeps_the_agent_version_that_answered_it(store: Store) -> None:
    await store.append_turn("t", [msg("one"), msg("a1", "assistant")], NewSession(None, "a", {}), 2)
    await store.append_turn("t", [msg("two"), msg("a2", "assistant")], agent_version=3)
    await store.append_turn("t", [msg("three")])  # a model route's turn: no version
    turns = await store.turns("t")
    assert [(t.turn, t.agent_version) for t in turns] == [(0, 2), (1, 3), (2, None)]
    assert all(t.created_at for t in turns)
    assert await store.turns("nothing") == []
    await store.prune(time.time() + 1)
    assert await store.turns("t") == []


async def test_a_stored_agent_keeps_its_draft_until_published(store: Store) -> None:
    assert await store.create_agent("faq", "draft one", "key_a", 1.0)
    assert not await store.create_agent("faq", "another", "key_b", 2.0)  # the id is taken
    created = await store.stored_agent("faq")
    assert created is not None
    assert (created.published, created.draft, created.draft_by) == (None, "draft one", "key_a")
    assert (created.created_by, created.created_at) == ("key_a", 1.0)

    assert await store.publish_agent("faq", 1, "key_b", 3.0, "draft one")
    published = await store.stored_agent("faq")
    assert published is not None
    assert (published.published, published.published_by, published.published_at) == (
        1,
        "key_b",
        3.0,
    )
    assert (published.draft, published.draft_by, published.draft_at) == (None, None, None)

    assert await store.save_draft("faq", "draft two", "key_a", 4.0)
    # A publish of other text (a rollback) leaves the draft being written alone.
    assert await store.publish_agent("faq", 1, "key_a", 5.0, "draft one")
    kept = await store.stored_agent("faq")
    assert kept is not None
    assert (kept.draft, kept.draft_at) == ("draft two", 4.0)
    assert await store.save_draft("faq", None, "key_a", 6.0)  # discarded
    discarded = await store.stored_agent("faq")
    assert discarded is not None
    assert (discarded.draft, discarded.draft_by, discarded.draft_at) == (None, None, None)
    assert not await store.save_draft("nobody", "x", None, 1.0)
    assert not await store.publish_agent("nobody", 1, None, 1.0, None)


async def test_a_deleted_stored_agent_is_gone_but_its_id_may_come_back(store: Store) -> None:
    await store.create_agent("b-agent", "b", None, 1.0)
    await store.create_agent("a-agent", "a", None, 1.0)
    assert [a.id for a in await store.stored_agents()] == ["a-agent", "b-agent"]
    assert await store.delete_agent("a-agent", 2.0)
    assert not await store.delete_agent("a-agent", 3.0)
    assert await store.stored_agent("a-agent") is None
    assert [a.id for a in await store.stored_agents()] == ["b-agent"]
    assert not await store.save_draft("a-agent", "x", None, 4.0)
    assert await store.create_agent("a-agent", "again", "key_c", 5.0)
    back = await store.stored_agent("a-agent")
    assert back is not None
    assert (back.draft, back.published, back.created_by) == ("again", None, "key_c")


async def test_background_runs_keep_their_events_and_stay_finished(store: Store) -> None:
    from headend.store.base import BackgroundProgress, ResponseRecord

    def body(status: str) -> dict[str, object]:
        return {"id": "resp_b", "status": status, "output": []}

    queued = ResponseRecord("resp_b", "key_1", None, None, 5.0, body("queued"), [])
    await store.create_background_run(queued, 5.0)
    run = await store.background_run("resp_b", "key_1")
    assert run is not None
    assert (run.status, run.cancel_requested, run.finished) == (
        "queued",
        False,
        False,
    )
    assert await store.background_run("resp_b", "key_2") is None  # another key's: unseen
    events = [{"type": "response.created", "sequence_number": n} for n in range(3)]
    progress = BackgroundProgress("resp_b", 0, events, body("in_progress"), "in_progress")
    assert await store.record_background_progress(progress) is False
    stored = await store.get_response("resp_b", "key_1")
    assert stored is not None
    assert stored.body["status"] == "in_progress"
    assert await store.response_events("resp_b", -1, 10) == events
    assert await store.response_events("resp_b", 0, 1) == events[1:2]

    assert await store.request_cancel("resp_b", "key_2") is None
    asked = await store.request_cancel("resp_b", "key_1")
    assert asked is not None
    assert asked.cancel_requested
    assert not asked.finished
    more = [{"type": "response.output_text.delta", "sequence_number": 3}]
    assert await store.record_background_progress(
        BackgroundProgress("resp_b", 3, more, body("cancelled"), "cancelled")
    )
    late = [{"type": "response.completed", "sequence_number": 4}]
    await store.record_background_progress(
        BackgroundProgress("resp_b", 4, late, body("completed"), "completed")
    )
    run = await store.background_run("resp_b", "key_1")
    assert run is not None
    assert run.status == "cancelled"
    stored = await store.get_response("resp_b", "key_1")
    assert stored is not None
    assert stored.body["status"] == "cancelled"
    assert len(await store.response_events("resp_b", -1, 10)) == 5

    finished = ResponseRecord("resp_b", "key_1", "sess_1", 0, 5.0, body("cancelled"), [])
    await store.save_response(finished)  # saved again: replaced, not refused
    again = await store.get_response("resp_b", "key_1")
    assert again is not None
    assert again.session_id == "sess_1"
    assert await store.delete_response("resp_b", "key_1")
    assert await store.background_run("resp_b", "key_1") is None
    assert await store.response_events("resp_b", -1, 10) == []


async def test_a_schedule_fire_is_taken_once(store: Store) -> None:
    from headend.store.base import ResponseRecord

    assert await store.claim_fire("digest", "e1", 600.0, 601.0)
    assert not await store.claim_fire("digest", "e1", 600.0, 601.5)  # another instance: no
    assert await store.claim_fire("digest", "e1", 660.0, 661.0)  # the next time: yes
    assert await store.claim_fire("digest", "e2", 600.0, 601.0)  # another entry: yes
    body = {"id": "resp_s", "status": "queued", "output": []}
    await store.create_background_run(
        ResponseRecord("resp_s", None, None, None, 1.0, body, []), 1.0
    )
    await store.fire_started("digest", "e1", 660.0, "resp_s", None)
    await store.fire_started("digest", "e1", 600.0, None, "refused: over the limit")
    fires = await store.recent_fires("digest", 10)
    assert [(f.entry, f.fire_at, f.response_id, f.status, f.error) for f in fires] == [
        ("e1", 660.0, "resp_s", "queued", None),
        ("e1", 600.0, None, None, "refused: over the limit"),
        ("e2", 600.0, None, None, None),
    ]
    assert len(await store.recent_fires("digest", 1)) == 1
    assert await store.recent_fires("other", 10) == []


async def test_a_stale_background_run_is_claimed_once_and_fences_the_old_writer(
    store: Store,
) -> None:
    import asyncio
    import time

    from headend.errors import LeaseLost
    from headend.store.base import BackgroundProgress, ResponseRecord, RunStep

    record = ResponseRecord("resp_o", "key_1", None, None, 1.0, {"status": "queued"}, [])
    resume = {"request": {"model": "helper", "input": "hi"}, "session_id": "sess_x"}
    await store.create_background_run(record, 1.0, resume)
    assert await store.last_event("resp_o") == -1
    events = [{"type": "response.created", "sequence_number": 0}]
    step = RunStep(0, "reply", {"message": {"role": "assistant"}, "usage": {}}, 0, 2.0)
    await store.record_background_progress(
        BackgroundProgress(
            "resp_o", 0, events, {"status": "in_progress"}, "in_progress", steps=(step,)
        )
    )
    assert await store.last_event("resp_o") == 0
    assert await store.run_steps("resp_o") == [step]
    now = time.time()
    assert await store.claim_stale_runs(now - 60, now, 10) == []  # written to just now
    # two instances claim at once: one gets it, with the next attempt and how to resume
    both = await asyncio.gather(
        store.claim_stale_runs(now + 1, now + 2, 10), store.claim_stale_runs(now + 1, now + 2, 10)
    )
    claims = [claim for claimed in both for claim in claimed]
    assert [(c.id, c.owner, c.attempt, c.resume) for c in claims] == [
        ("resp_o", "key_1", 1, resume)
    ]
    # the instance thought dead writes again: refused, and nothing of it is kept
    late = [{"type": "response.output_text.delta", "sequence_number": 1}]
    with pytest.raises(LeaseLost):
        await store.record_background_progress(
            BackgroundProgress("resp_o", 1, late, {"status": "x"}, "in_progress", attempt=0)
        )
    assert await store.last_event("resp_o") == 0
    later = RunStep(1, "tool", {"call_id": "c1", "content": "ok"}, 1, 3.0)
    await store.record_background_progress(
        BackgroundProgress(
            "resp_o", 1, [], {"status": "failed"}, "failed", attempt=1, steps=(later,)
        )
    )
    assert [s.number for s in await store.run_steps("resp_o")] == [0, 1]
    assert await store.claim_stale_runs(now + 100, now + 100, 10) == []  # finished: never stale
    with pytest.raises(LeaseLost):  # finished by the new claim: the old one still may not
        await store.record_background_progress(
            BackgroundProgress("resp_o", 2, [], {"status": "x"}, "completed", attempt=0)
        )
    assert await store.delete_response("resp_o", "key_1")
    assert await store.run_steps("resp_o") == []


async def test_a_call_waiting_for_approval_is_answered_once_and_goes_with_its_session(
    store: Store,
) -> None:
    from headend.store.base import ApprovalRecord, NewSession

    await store.append_turn("sess_a", [msg("hi")], NewSession("key_1", "worker", {}))
    record = ApprovalRecord(
        "mcpr_1",
        "key_1",
        "sess_a",
        "worker",
        "c1",
        "terminal",
        "terminal",
        "headend",
        '{"command": "ls"}',
        "pending",
        10.0,
        100.0,
    )
    await store.add_approvals([record])
    assert await store.open_approvals("sess_a") == [record]
    assert await store.approval("mcpr_1", "key_2") is None  # another owner's: unknown
    assert await store.decide_approval("mcpr_1", "approved", "key_1", None, 20.0)
    assert not await store.decide_approval("mcpr_1", "denied", "key_1", "no", 21.0)  # once
    answered = await store.approval("mcpr_1", "key_1")
    assert answered is not None
    assert (answered.status, answered.decided_by, answered.decided_at) == (
        "approved",
        "key_1",
        20.0,
    )
    assert await store.open_approvals("sess_a") == [answered]  # answered, not yet gone on from
    assert await store.approval("mcpr_1", "key_2", any_owner=True) == answered  # an admin's look
    await store.apply_approvals(["mcpr_1"], 30.0)
    assert await store.open_approvals("sess_a") == []
    (kept,) = await store.session_approvals("sess_a", 10)
    assert (kept.status, kept.applied_at) == ("approved", 30.0)
    assert await store.delete_session("sess_a", "key_1")
    assert await store.approval("mcpr_1", "key_1") is None
