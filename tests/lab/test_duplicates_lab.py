"""The lab with the controller running at 50 %: the same CNPJ registered through the front door by a user on blue
and a user on green at once, then a rollback. Every acknowledged write ends on blue or parked; the drain finishes
because nothing wedges. Then `lab down` refuses to destroy changes only green holds, unless forced.

The test writes through its own client (sticky keys chosen so that nginx routes each to a known side, as in
test_screen_lab), so it does not depend on the lab's load generator."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
from typing import Any

import httpx
import psycopg

from cockpit.control.session import ControllerThread
from cockpit.lab.domain import make_cnpj
from tests.lab.test_screen_lab import cockpit, green_for, lab, spread_keys  # noqa: F401 - `lab` is a fixture

PAIRS = 30


def post(client: httpx.Client, key: str, name: str, cnpj: str) -> httpx.Response:
    body = {
        "legal_name": name,
        "trade_name": name,
        "cnpj": cnpj,
        "city": "Recife",
        "state": "PE",
        "owner_id": 1,
    }
    return client.post("/api/companies", json=body, headers={"Cookie": f"session_id={key}"})


def at_once(client: httpx.Client, side_key: dict[str, str], i: int, cnpj: str) -> dict[str, httpx.Response]:
    """The same CNPJ posted by a user on each side at the same instant."""
    answers: dict[str, httpx.Response] = {}
    start = threading.Barrier(2)

    def send(side: str) -> None:
        start.wait(10)
        answers[side] = post(client, side_key[side], f"dup-{i}-{side}", cnpj)

    both = [threading.Thread(target=send, args=(s,)) for s in ("blue", "green")]
    for t in both:
        t.start()
    for t in both:
        t.join(30)
    return answers


def test_cross_side_duplicates_at_50_then_a_rollback_lose_nothing(lab: Any) -> None:  # noqa: F811
    root, plan, doc = lab
    keys = spread_keys()
    side_key = {
        "blue": next(k for k in keys if not green_for(k, 50)),
        "green": next(k for k in keys if green_for(k, 50)),
    }
    thread = ControllerThread(plan)
    c = thread.start()
    try:
        advanced = asyncio.run_coroutine_threadsafe(
            c.advance("ab-test", force=True, reason="test"), thread.loop
        )
        assert advanced.result(120).ok
        acked: dict[str, str] = {}  # legal_name -> the side that acknowledged it
        refused = 0
        rng = random.Random(8)
        with httpx.Client(base_url=doc["front_door"], timeout=20) as client:
            for i in range(PAIRS):
                answers = at_once(client, side_key, i, make_cnpj(rng))
                for side, r in answers.items():
                    assert r.headers.get("x-cockpit-side") == side, (side, r.headers)
                    if r.status_code == 201:
                        acked[f"dup-{i}-{side}"] = side
                    else:  # refused, so never acknowledged: the other side's came first
                        assert r.status_code == 409, r.text
                        refused += 1
            for side, key in side_key.items():  # and writes that collide with nothing
                r = post(client, key, f"plain-{side}", make_cnpj(rng))
                assert r.status_code == 201, r.text
                acked[f"plain-{side}"] = side
        assert len(acked) + refused == 2 * PAIRS + 2
        rolled = asyncio.run_coroutine_threadsafe(c.rollback("duplicates drill"), thread.loop).result(300)
        steps = {s[0]: s for s in rolled.steps}
        assert steps["drain"][1] == "ok", rolled  # nothing wedges: the drain finishes
        assert rolled.ok, rolled
        assert c.stranded.current is None
        sync = c.drivers.sync
        assert sync is not None
        parked = {
            rec[rec["parked"]]["legal_name"]
            for rec in sync.conflicts(everything=True)
            if rec["tbl"] == "companies" and rec[rec["parked"]]
        }
        blue = plan.path(plan.blue.database.path)
        conn = sqlite3.connect(blue)
        on_blue = {r[0] for r in conn.execute("SELECT legal_name FROM companies")}
        conn.close()
        lost = {name: side for name, side in acked.items() if name not in on_blue and name not in parked}
        assert not lost, lost
        assert parked, "no duplicate was parked: the test did not make the sides collide"
        print(f"\n{len(acked)} acknowledged, {refused} refused (409), {len(parked)} parked, 0 lost")
    finally:
        thread.stop()
    # green now holds a change blue lacks (no controller, no sync): lab down refuses to destroy it
    with psycopg.connect(plan.green.database.url) as pg:
        pg.execute(
            "INSERT INTO companies (legal_name, cnpj, owner_id) VALUES ('only on green', %s, 1)",
            (make_cnpj(random.Random(99)),),
        )
    refused_down = cockpit("lab", "down", "--root", str(root))
    assert refused_down.returncode == 1, refused_down.stdout + refused_down.stderr
    assert "green holds 1 acknowledged changes blue lacks" in refused_down.stderr
    forced = cockpit("lab", "down", "--root", str(root), "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
