"""Issue 22: within an adapter, deliveries are served fairly across filer codes (weighted),
deadline-near ones first, per-key order untouched; the claim walks an index. Both
backends, real stores."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from gateway import ids, models, values
from gateway.rules import fair, normalize
from gateway.store import base, sansio

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
ACTOR = values.Actor("ci")
HOUR = 3600.0


def new(
    filer: str,
    reference: str,
    *,
    ordering_key: str | None = None,
    due_by: datetime | None = None,
) -> values.NewFiling:
    event = models.FilingEvent(
        filing_type=models.FilingType.ISF,
        environment=models.Environment.CERT,
        reference=reference,
        filer_code=filer,
        ordering_key=ordering_key,
        payload={"ref": reference},
        due_by=due_by,
    )
    filing = normalize.normalize(event, filing_id=ids.new_id("fil"), received_at=T0)
    return values.NewFiling(filing=filing, adapters=["ace"])


async def backlog(store: base.Store, filer: str, n: int, *, batch: int = 200) -> list[str]:
    out: list[str] = []
    for start in range(0, n, batch):
        items = [new(filer, f"{filer}-{i}") for i in range(start, min(n, start + batch))]
        out += [r.filing_id for r in await store.accept(items, actor=ACTOR, now=T0)]
    return out


async def take(
    store: base.Store, n: int, *, due_within_s: float | None = HOUR, complete: bool = True
) -> list[values.Claim]:
    claims = await store.claim(
        owner="p1", now=T0, lease_s=60, limits={"ace": n}, due_within_s=due_within_s
    )
    for c in claims if complete else ():
        assert await store.complete(c, now=T0, receipt={"status": "ok"})
    return claims


def refs(claims: list[values.Claim]) -> list[str]:
    return [c.filing.reference for c in claims]


async def test_a_small_filers_filing_is_claimed_within_the_first_claims_behind_a_backlog(
    store: base.Store,
) -> None:
    """Filer A has 600 waiting; B's one filing, accepted after, is in the first claim of 10
    (first come first served would have sent it 601st)."""
    await backlog(store, "AAA", 600)
    [b] = await store.accept([new("BBB", "B-1")], actor=ACTOR, now=T0)
    first = await take(store, 10)
    assert b.filing_id in [c.filing.id for c in first]
    assert Counter(c.filing.filer_code for c in first) == {"AAA": 9, "BBB": 1}


async def test_two_backlogs_are_served_in_proportion_to_their_weights(store: base.Store) -> None:
    """Weights AAA=3, BBB=1 (BBB's backlog accepted after AAA's): over 80 claims AAA gets
    60 ± 1 and BBB 20 ± 1. Two more filers (weight 1) join: over the next 60 claims,
    3:1:1:1 (AAA 30 ± 1, each other 10 ± 1)."""
    await store.set_fair_weights({"AAA": 3})
    await backlog(store, "AAA", 300)
    await backlog(store, "BBB", 300)
    got: Counter[str] = Counter()
    for _ in range(8):
        got.update(c.filing.filer_code for c in await take(store, 10))
    assert abs(got["AAA"] - 60) <= 1 and got["AAA"] + got["BBB"] == 80, got
    await backlog(store, "CCC", 100)
    await backlog(store, "DDD", 100)
    four: Counter[str] = Counter()
    for _ in range(6):
        four.update(c.filing.filer_code for c in await take(store, 10))
    assert abs(four["AAA"] - 30) <= 1, four
    assert all(abs(four[f] - 10) <= 1 for f in ("BBB", "CCC", "DDD")), four


async def test_a_deadline_near_filing_overtakes_every_backlog_and_a_far_one_does_not(
    store: base.Store,
) -> None:
    """B's filing due in 30 minutes (inside the horizon) is claimed first, before B's own
    earlier ones and A's backlog; A's filing due in 3 days waits its fair turn."""
    await backlog(store, "AAA", 300)
    await store.accept(
        [new("AAA", "A-far", due_by=T0 + timedelta(days=3))]
        + [new("BBB", f"B-{i}") for i in range(5)]
        + [new("BBB", "B-soon", due_by=T0 + timedelta(minutes=30))],
        actor=ACTOR,
        now=T0,
    )
    first = await take(store, 1)
    assert refs(first) == ["B-soon"]
    assert "A-far" not in refs(await take(store, 20))


async def test_per_key_order_holds_across_filers(store: base.Store) -> None:
    """B-K (key K) gets a tag far ahead of A-K's (A has a backlog), yet waits until A-K,
    the earlier filing of key K, is delivered; then it is claimed."""
    await backlog(store, "AAA", 50)
    await store.accept([new("AAA", "A-K", ordering_key="K")], actor=ACTOR, now=T0)
    await store.accept([new("BBB", "B-K", ordering_key="K")], actor=ACTOR, now=T0)
    seen: list[str] = []
    while claims := await take(store, 5):
        batch = refs(claims)
        if "B-K" in batch:
            assert "A-K" in seen
        seen += batch
    assert len(seen) == 52
    assert seen.index("B-K") > seen.index("A-K")


async def test_the_clock_survives_a_restart_and_is_shared_by_processes(
    store_factory: Any,
) -> None:
    """A's backlog accepted by one store object, closed; B's filing accepted by another
    on the same database is still claimed in the first batch (V and the finishes are
    in the database, not in a process)."""
    first = await store_factory()
    await backlog(first, "AAA", 300)
    await take(first, 20)
    await first.close()
    second = await store_factory()
    [b] = await second.accept([new("BBB", "B-1")], actor=ACTOR, now=T0)
    assert b.filing_id in [c.filing.id for c in await take(second, 5)]


def test_tags_interleave_by_weight() -> None:
    """The tagger alone: weight 2 advances half as far; a filer starts at the adapter's
    clock V when its own finish is behind it (no credit for idle time)."""
    t = fair.Tagger([("ace", "A", None, None, 2), ("ace", "B", None, None, None)])
    assert [t.tag("ace", "A") for _ in range(3)] == [0, fair.UNIT // 2, fair.UNIT]
    assert [t.tag("ace", "B") for _ in range(2)] == [0, fair.UNIT]
    assert t.finishes() == [("ace", "A", fair.UNIT * 3 // 2), ("ace", "B", 2 * fair.UNIT)]
    idle = fair.Tagger([("ace", "B", 9 * fair.UNIT, 2 * fair.UNIT, None)])
    assert idle.tag("ace", "B") == 9 * fair.UNIT  # no credit for idle time
    ahead = fair.Tagger([("ace", "B", 5 * fair.UNIT, 7 * fair.UNIT, None)])
    assert ahead.tag("ace", "B") == 7 * fair.UNIT  # its own backlog still counts


# --- the claim walks indexes -------------------------------------------------------------


SETTLE = "UPDATE filings SET status = 'delivered' WHERE filer_code = 'AAA' AND seq > 100"


async def _plan(store: Any, backend: str, name: str, *args: Any) -> str:
    """EXPLAIN a named query after ANALYZE (``settle_for_test``: run SETTLE instead)."""
    if name == "settle_for_test":
        if backend == "sqlite":
            db = sqlite3.connect(store.path)
            with db:
                db.execute(SETTLE)
            db.close()
        else:
            conn = await asyncpg.connect(store.dsn)
            await conn.execute(SETTLE)
            await conn.close()
        return ""
    text = sansio.ready(backend)[name]  # type: ignore[arg-type]
    if backend == "sqlite":
        db = sqlite3.connect(store.path)
        try:
            db.execute("ANALYZE")
            return "\n".join(str(r[3]) for r in db.execute(f"EXPLAIN QUERY PLAN {text}", args))
        finally:
            db.close()
    conn = await asyncpg.connect(store.dsn)
    try:
        await conn.execute("ANALYZE")
        return "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {text}", *args))
    finally:
        await conn.close()


async def test_the_fair_claim_and_the_head_probe_walk_the_fair_index(
    store: base.Store, backend: str
) -> None:
    """EXPLAIN: the fair claim, its deadline walk and accept's head probe read indexes
    (``deliveries_fair``, ``deliveries_claim``) in order and stop at LIMIT (no sort of the
    backlog), also with a filer code left out (out of delivery tokens), and the pending
    count per filer reads ``filings_filer``."""
    await backlog(store, "AAA", 3000, batch=500)
    await backlog(store, "BBB", 200)
    now = int(T0.timestamp() * 1_000_000)
    # a filer out of delivery tokens (``[quotas] delivery_rate``) left out, or none
    rated: list[tuple[str, str]] = []
    for out in (None, ["AAA"]):
        if backend == "sqlite":
            ex = out and json.dumps(out)
            claim = await _plan(store, backend, "claim", "ace", now, 10, None, ex)
            due = await _plan(store, backend, "claim_due", "ace", now, 10, None, ex, now)
            head = await _plan(store, backend, "fair_state", "ace", "AAA")
        else:
            lease = now + 60_000_000
            args = ("ace", now, 10, "o", lease, None, out)
            claim = await _plan(store, backend, "claim", *args)
            due = await _plan(store, backend, "claim_due", *args, now)
            head = await _plan(store, backend, "fair_state", ["ace"], ["AAA"])
        rated.append((claim, due))
    for claim, due in rated:
        assert "deliveries_fair" in claim, claim
        assert "deliveries_claim" in due, due
        # the filer left out is looked up per candidate, not by reading every filing
        assert "Seq Scan on filings" not in claim + due and "SCAN f" not in claim + due
    # with a filer left out, the fair walk stops at the others' largest finish (not at the
    # end of the left-out filer's backlog)
    assert "vtime<?" in rated[1][0] or "(vtime < " in rated[1][0], rated[1][0]
    assert "deliveries_fair" in head, head
    # most filings settled, as in a live table (the rows are the test's setup, not a path)
    await _plan(store, backend, "settle_for_test")
    queue = await _plan(store, backend, "filer_queue")
    assert "filings_filer" in queue, queue
    assert await store.filer_queue() == {"AAA": {"pending": 100}, "BBB": {"pending": 200}}
    for plan in (*rated[0], *rated[1], head):
        assert "TEMP B-TREE FOR ORDER BY" not in plan and "Sort Key: d.vtime" not in plan, plan


async def test_the_gateway_publishes_its_weights_for_every_process(
    tmp_path: Any, start_gateway: Any, store_url: str
) -> None:
    """`[fairness] weights` reach the store's `fair_weights` when the dispatcher starts
    (every process's accepts read them there); `{}` after a restart without them."""
    from tests.conftest import base_config

    async def weights() -> dict[str, int]:
        if store_url.startswith("sqlite"):
            db = sqlite3.connect(store_url.removeprefix("sqlite:///"))
            try:
                return dict(db.execute("SELECT filer_code, weight FROM fair_weights"))
            finally:
                db.close()
        conn = await asyncpg.connect(store_url)
        try:
            return dict(await conn.fetch("SELECT filer_code, weight FROM fair_weights"))  # type: ignore[arg-type]
        finally:
            await conn.close()

    cfg = base_config(tmp_path, gateway={"store": store_url}, fairness={"weights": {"AAA": 3}})
    gw = await start_gateway(cfg)
    assert await weights() == {"AAA": 3}
    await gw.stop()
    gw = await start_gateway(base_config(tmp_path, gateway={"store": store_url}))
    assert await weights() == {}
    await gw.stop()
