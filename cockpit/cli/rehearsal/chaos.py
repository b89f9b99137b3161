"""How the rehearsal breaks the lab: a stopped PostgreSQL, rows changed behind the sync's back, a killed controller
or applier, a broken nginx configuration, the same unique value written on both sides at once."""

from __future__ import annotations

import http.client
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from cockpit.cli.rehearsal.measure import Outcome, live_split, wait_until
from cockpit.core.journal import Journal
from cockpit.lab.cluster import ClusterInfo, start_cluster, stop_cluster
from cockpit.lab.domain import make_cnpj
from cockpit.lab.errors import LabError
from cockpit.lab.lab import read_state
from cockpit.lab.ledger import Ledger

if TYPE_CHECKING:
    from cockpit.cli.rehearsal.day import Rehearsal

DIVERGED_ROWS = 100  # of the 1,000 rows a rehearsal seeds: the integrity score falls to about 90 %, under 99
BURST_ROWS = (
    4000  # the batch job on blue whose apply the applier-killed scenario cuts (the plan's batch is 500)
)
PAIRS = 20  # same-CNPJ pairs of the duplicates scenario


def neon(r: Rehearsal, on: bool) -> None:
    """The lab's private PostgreSQL really stopped (not only a fault switch), or started again."""
    pg = (read_state(r.root) or {}).get("postgres") or {}
    if pg.get("mode") != "private":
        raise LabError("neon-down needs the lab's private PostgreSQL cluster")
    info = ClusterInfo(**pg["cluster"])
    (stop_cluster if on else start_cluster)(info)


def diverge(r: Rehearsal, on: bool) -> None:
    """Change rows on green as an operator with psql would, out of the sync's sight (its capture skips the
    applier's own writes, tagged cockpit.applying); off puts the same rows back the same way."""
    assert r.plan is not None
    with psycopg.connect(r.plan.green.database.url) as conn, conn.transaction():
        conn.execute("SELECT set_config('cockpit.applying', 'on', true)")
        if on:
            rows = conn.execute(
                "SELECT id, notes FROM proposals ORDER BY id LIMIT %s", (DIVERGED_ROWS,)
            ).fetchall()
            r.scratch["diverged"] = rows
            conn.execute(
                "UPDATE proposals SET notes = coalesce(notes, '') || ' (changed on green by hand)'"
                " WHERE id = ANY(%s)",
                ([k for k, _ in rows],),
            )
        else:
            with conn.cursor() as cur:
                cur.executemany(
                    "UPDATE proposals SET notes = %s WHERE id = %s",
                    [(n, k) for k, n in r.scratch.pop("diverged", [])],
                )


def rollback_step(r: Rehearsal, since_ts: float, step: str) -> dict[str, Any] | None:
    """The payload of the last `step` of a rollback journaled after `since_ts`."""
    with r.journal() as j:
        evs = [e for e in j.events(since_id=0) if e.ts >= since_ts]
    ids = {e.action_id for e in evs if e.kind == "action.intent" and e.payload.get("verb") == "rollback"}
    found = [
        e.payload
        for e in evs
        if e.action_id in ids and e.kind == "action.step" and e.payload.get("step") == step
    ]
    return dict(found[-1]) if found else None


# -- the controller killed --------------------------------------------------------------------------------------
def _open_action(r: Rehearsal, verb: str, since: int) -> tuple[str, list[str]] | None:
    """The `verb` action begun after `since` and not ended: its id and the steps it has journaled."""
    with r.journal() as j:
        evs = j.events(since_id=since)
    for e in evs:
        if e.kind == "action.intent" and e.payload.get("verb") == verb:
            mine = [x for x in evs if x.action_id == e.action_id]
            if not any(x.kind == "action.outcome" for x in mine):
                return str(e.action_id), [str(x.payload.get("step")) for x in mine if x.kind == "action.step"]
    return None


def _kill_mid(r: Rehearsal, out: Outcome, verb: str, args: dict[str, Any], after_step: str | None) -> None:
    """Queue `verb` to the child controller, SIGKILL it once the action is under way (past `after_step`), start a
    new child and wait until the cut action is settled by its reconciliation."""
    assert r.plan is not None
    since = r.last_event()
    with Journal(r.plan.path(r.plan.journal.path)) as jw:
        jw.enqueue(verb, {"reason": f"rehearsal: {verb} to be cut short", **args}, "rehearsal")
    cut: list[str] = []

    def under_way() -> bool:
        found = _open_action(r, verb, since)
        if found is not None and (after_step is None or after_step in found[1]):
            cut[:] = [found[0], *found[1]]
            return True
        return False

    wait_until(under_way, 60, f"the {verb} to be under way", step=0.005)
    r.kill_child()
    killed_at = time.time()
    r.spawn_child()
    wait_until(lambda: _open_action(r, verb, since) is None and r.idle(), 300, f"the cut {verb} to settle")
    settled = time.time() - killed_at
    with r.journal() as j:
        outcome = [
            e for e in j.events(since_id=since) if e.action_id == cut[0] and e.kind == "action.outcome"
        ]
    what = outcome[-1].payload.get("outcome") if outcome else "?"
    if outcome and outcome[-1].ts < killed_at:
        out.problems.append(f"the {verb} ended before the kill: nothing was cut short")
    out.facts.append(
        f"{verb} killed after {', '.join(cut[1:]) or 'its intent'}; journaled {what}, settled {settled:.1f}s after"
        " the kill"
    )


def controller_killed(r: Rehearsal, out: Outcome) -> None:
    assert r.plan is not None
    plan = r.plan
    r.stop_controller()
    r.spawn_child()
    _kill_mid(r, out, "rollback", {"mode": "immediate"}, "traffic")
    if live_split(plan) != 0.0:
        out.problems.append(f"after the resumed rollback the split is {live_split(plan):g}%, not 0 %")
    _kill_mid(r, out, "advance", {"to": plan.phases[0].name, "force": True}, "green_services")
    wait_until(r.healthy, 120, "the world to be healthy again", step=0.2)
    out.recovered_at = time.time()
    with r.journal() as j:
        machine = j.get_state("machine") or {}
    if machine.get("state") in ("advancing", "rolling_back"):
        out.problems.append(f"the machine stayed {machine.get('state')} after the restart")
    out.facts.append(f"split {live_split(plan):g}%, machine {machine.get('state')} after the restarts")


# -- nginx -t failing ------------------------------------------------------------------------------------------
def nginx_test_fails(r: Rehearsal, out: Outcome) -> None:
    """Break nginx's main configuration (as a bad hand edit would): the next split's `nginx -t` fails, the running
    nginx keeps serving its loaded configuration. The advance must be refused and nothing changed."""
    assert r.plan is not None
    plan = r.plan
    balancer = plan.traffic.balancers[0]
    conf = Path(balancer.test_command[balancer.test_command.index("-c") + 1])
    include = Path(plan.path(balancer.include))
    names = [p.name for p in plan.phases]
    split, before = live_split(plan), include.read_bytes()
    nxt = next((p.name for p in plan.phases if float(p.green) > split), names[-1])
    original = conf.read_bytes()
    conf.write_bytes(original + b"\nrehearsal_broken_directive on;\n")
    try:
        res = r.advance(nxt, force=True)
    finally:
        conf.write_bytes(original)
    out.recovered_at = time.time()
    out.facts.append(f"advance to {nxt}: {res.outcome}: {' '.join(res.message.split())[:320]}")
    if res.ok:
        out.problems.append("the advance was not refused")
    if live_split(plan) != split:
        out.problems.append(f"the split moved from {split:g}% to {live_split(plan):g}%")
    if include.read_bytes() != before:
        out.problems.append("the include on disk changed")
    if not r.healthy():
        out.problems.append("nginx is not serving")


# -- the applier killed ---------------------------------------------------------------------------------------
def applier_killed(r: Rehearsal, out: Outcome) -> None:
    """A batch job writes BURST_ROWS rows on blue; the controller process, which runs the sync, is SIGKILLed while a
    batch of them is being applied on green (its transaction open), then started again."""
    assert r.plan is not None
    plan = r.plan
    tag = f"rehearsal burst {time.time():.0f}"
    r.stop_controller()
    r.spawn_child()
    blue = plan.path(str(plan.blue.database.path))
    con = sqlite3.connect(blue, timeout=30)
    try:
        with con:
            con.executemany(
                "INSERT INTO proposals (opportunity_id, company_id, user_id, amount, status, submitted_at, notes,"
                " created_at, updated_at) VALUES (1, 1, 1, ?, 'submitted', datetime('now'), ?, datetime('now'),"
                " datetime('now'))",
                [(1000.0 + i, tag) for i in range(BURST_ROWS)],
            )
    finally:
        con.close()
    with psycopg.connect(plan.green.database.url, autocommit=True) as pg:

        def applying() -> bool:
            row = pg.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database()"
                " AND application_name NOT LIKE 'cockpit-lab-%%' AND xact_start IS NOT NULL"
                " AND query ILIKE '%%proposals%%' AND state <> 'idle'"
            ).fetchone()
            return bool(row and row[0])

        wait_until(applying, 60, "a batch of the burst to be applied", step=0.002)
        applied_before = pg.execute("SELECT count(*) FROM proposals WHERE notes = %s", (tag,)).fetchone()
    r.kill_child()
    out.facts.append(
        f"killed with {applied_before[0] if applied_before else '?'}/{BURST_ROWS} burst rows on green"
    )
    r.spawn_child()
    wait_until(r._sync_settled, 180, "the sync to apply the burst", step=0.5)
    out.recovered_at = time.time()
    con = sqlite3.connect(f"file:{blue}?mode=ro", uri=True, timeout=30)
    try:
        on_blue = con.execute("SELECT count(*) FROM proposals WHERE notes = ?", (tag,)).fetchone()[0]
        blue_total = con.execute("SELECT count(*) FROM proposals").fetchone()[0]
    finally:
        con.close()
    with psycopg.connect(plan.green.database.url) as pg:
        on_green, distinct = pg.execute(
            "SELECT count(*), count(DISTINCT id) FROM proposals WHERE notes = %s", (tag,)
        ).fetchone() or (0, 0)
        green_total = pg.execute("SELECT count(*) FROM proposals").fetchone()
    out.facts.append(
        f"burst rows blue {on_blue}, green {on_green} ({distinct} distinct); proposals blue {blue_total}, green "
        f"{green_total[0] if green_total else '?'}"
    )
    if not on_blue == on_green == distinct == BURST_ROWS:
        out.problems.append(
            f"burst rows: blue {on_blue}, green {on_green}, distinct {distinct} of {BURST_ROWS}"
        )


# -- duplicates --------------------------------------------------------------------------------------------------
def _side_keys(front: tuple[str, int]) -> dict[str, str]:
    """A session key nginx routes to each side (asked of the front door itself)."""
    found: dict[str, str] = {}
    for i in range(2000):
        key = f"rehearsal-{i}"
        conn = http.client.HTTPConnection(*front, timeout=5)
        conn.request("GET", "/api", headers={"Cookie": f"session_id={key}"})
        resp = conn.getresponse()
        resp.read()
        side = (resp.getheader("X-Cockpit-Side") or "").split(",")[0].strip()
        conn.close()
        if side in ("blue", "green"):
            found.setdefault(side, key)
        if len(found) == 2:
            return found
    raise LabError("no session key reaches both sides: is the split between 0 and 100 %?")


def _post(front: tuple[str, int], key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    import json

    conn = http.client.HTTPConnection(*front, timeout=20)
    try:
        conn.request(
            "POST",
            "/api/companies",
            body=json.dumps(body),
            headers={"Cookie": f"session_id={key}", "Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw else {})
    finally:
        conn.close()


def _at_once(front: tuple[str, int], keys: dict[str, str], i: int, cnpj: str) -> dict[str, tuple[int, Any]]:
    """The same CNPJ posted by a user on each side at the same instant."""
    answers: dict[str, tuple[int, Any]] = {}
    start = threading.Barrier(2)

    def send(side: str) -> None:
        body = {"legal_name": f"dup {i} {side}", "trade_name": f"dup {i}", "cnpj": cnpj, "city": "Recife",
                "state": "PE", "owner_id": 1}  # fmt: skip
        start.wait(10)
        answers[side] = _post(front, keys[side], body)

    both = [threading.Thread(target=send, args=(s,)) for s in ("blue", "green")]
    for t in both:
        t.start()
    for t in both:
        t.join(30)
    return answers


def duplicates(r: Rehearsal, out: Outcome) -> None:
    """PAIRS CNPJs, each posted through the front door by a user on blue and one on green at the same instant;
    every 201 goes in the ledger, as the load's writes do."""
    import random

    state = read_state(r.root) or {}
    host, port = str(state["front_door"]).removeprefix("http://").rsplit(":", 1)
    front = (host, int(port))
    keys = _side_keys(front)
    rng = random.Random(int(time.time()))
    ledger = Ledger(r.root / "ledger.jsonl")
    acked = refused = 0
    try:
        for i in range(PAIRS):
            cnpj = make_cnpj(rng)
            answers = _at_once(front, keys, i, cnpj)
            for code, payload in answers.values():
                if code == 201:
                    acked += 1
                    ledger.record(
                        "create", "companies", int(payload["id"]), str(payload.get("side", "")), cnpj
                    )
                elif code == 409:
                    refused += 1
                else:
                    out.problems.append(f"a duplicate's post answered {code}")
    finally:
        ledger.close()
    wait_until(r._sync_settled, 180, "the sync to carry the duplicates", step=0.5)
    out.recovered_at = time.time()
    parked = sum(1 for t, _ in r.parked() if t == "companies")
    out.facts.append(
        f"{acked} duplicates acknowledged, {refused} refused (409), {parked} companies parked in all"
    )
    if not parked:
        out.problems.append("no duplicate was parked: the sides did not collide")
