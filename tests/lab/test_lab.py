"""The lab end to end: up, load through nginx to both sides, own databases, a fault seen in the figures, down.

These use an existing PostgreSQL server (COCKPIT_LAB_PG_URL mode, pointed at the test's fresh database) for speed;
test_private_cluster.py covers the private cluster (initdb as the postgres user).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from cockpit.core.plan import load_plan
from cockpit.drivers.traffic.nginx import NginxDriver
from cockpit.lab.lab import LabOptions, down, listening, set_fault, status, up
from tests.conftest import wait_for


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cockpit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def lab_processes(root: Path) -> list[psutil.Process]:
    """Every live process whose command line names the lab's folder (services, load, nginx master)."""
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        if p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if str(root) in " ".join(p.info["cmdline"] or []):
            out.append(p)
    return out


def all_pids(doc: dict) -> list[int]:
    pids = [s["pid"] for s in doc["services"]] + [doc["nginx"]["pid"], doc["load"]["pid"]]
    try:
        pids += [c.pid for c in psutil.Process(doc["nginx"]["pid"]).children()]
    except psutil.Error:
        pass
    return [p for p in pids if p]


@pytest.fixture
def lab_root(tmp_path: Path, pg_url: str) -> Iterator[Path]:
    """The lab's folder; the lab is downed before the test's database goes (it holds the lab's own database)."""
    root = tmp_path / "lab"
    try:
        yield root
    finally:
        down(root, quiet=True)


def test_lab_up_load_both_sides_own_databases_fault_and_down(lab_root: Path, pg_url: str) -> None:
    state = up(LabOptions(root=lab_root, rate=40, users=120, rows=2000, pg_url=pg_url, quiet=True))
    doc = status(lab_root)
    assert doc["up"] and doc["front_door"].startswith("http://127.0.0.1:")
    assert doc["sticky"] == {"kind": "cookie", "name": "session_id"}
    assert Path(doc["plan"]) == lab_root.resolve() / "plan.yaml"
    assert doc["sqlite"] == str(lab_root.resolve() / "blue.db")
    assert doc["postgres_url"].rsplit("/", 1)[1].startswith("cockpit_lab_")
    assert {s["side"] for s in doc["services"]} == {"blue", "green"} and len(doc["services"]) == 4
    assert all(s["running"] and s["health"] == 200 and s["pid"] for s in doc["services"])

    # the resolved plan is a valid plan with the lab's real ports
    plan = load_plan(doc["plan"])
    ports = {s["port"] for s in doc["services"]}
    assert {int(u.rsplit(":", 1)[1]) for u in plan.blue.upstreams + plan.green.upstreams} == ports
    assert plan.sync.tables == ["users", "companies", "opportunities", "proposals"]
    assert [p.green for p in plan.phases] == [5, 20, 50, 80, 100]
    assert {t.name for t in plan.rollback.triggers} == {
        "error_rate_spike",
        "response_time_degradation",
        "data_integrity_failure",
        "database_connection_failure",
    }

    # the same seeded data on both sides (the load already writes: count the seeded keys only)
    with sqlite3.connect(doc["sqlite"]) as blue, psycopg.connect(doc["postgres_url"]) as green:
        for table, n in state["seeded"].items():
            assert blue.execute(f"SELECT count(*) FROM {table} WHERE id <= ?", (n,)).fetchone()[0] == n
            assert green.execute(f"SELECT count(*) FROM {table} WHERE id <= %s", (n,)).fetchone()[0] == n
        assert (
            blue.execute("SELECT cnpj FROM companies WHERE id = 7").fetchone()[0]
            == green.execute("SELECT cnpj FROM companies WHERE id = 7").fetchone()[0]
        )

    # half the users to green, through the traffic driver
    NginxDriver.from_plan(plan).apply(50)
    assert status(lab_root)["green_percent"] == 50.0
    stats = Path(doc["load"]["stats"])

    def both_sides_served() -> bool:
        fig = json.loads(stats.read_text()) if stats.exists() else {}
        by_side = (fig.get("recent") or {}).get("by_side") or {}
        return by_side.get("blue", 0) > 20 and by_side.get("green", 0) > 20

    wait_for(both_sides_served, timeout=30, what="load served by both sides")

    # a user with a sticky cookie stays on one side; each side answers with its name
    with httpx.Client(base_url=doc["front_door"], timeout=10) as client:
        seen: dict[str, set[str]] = {}
        for i in range(40):
            cookies = {"Cookie": f"session_id=probe-{i}"}
            sides = set()
            for _ in range(3):
                r = client.get("/api/companies/3", headers=cookies)
                assert r.status_code == 200
                assert r.headers["X-Cockpit-Side"].split(",")[0].strip() == r.json()["side"]
                sides.add(r.json()["side"])
            assert len(sides) == 1
            seen.setdefault(sides.pop(), set()).add(f"probe-{i}")
        assert set(seen) == {"blue", "green"}
        # a create answers 201 with the stored row and its key, on the user's side
        made = {}
        for side, keys in seen.items():
            r = client.post(
                "/api/proposals",
                headers={"Cookie": f"session_id={next(iter(keys))}"},
                json={"opportunity_id": 1, "company_id": 2, "amount": 12345.67, "status": "submitted"},
            )
            assert r.status_code == 201, r.text
            body = r.json()
            assert (
                body["side"] == side
                and body["item"]["id"] == body["id"]
                and body["item"]["amount"] == 12345.67
            )
            made[side] = body["id"]

    # each side writes to its own database (no sync runs in this test)
    with sqlite3.connect(doc["sqlite"]) as blue, psycopg.connect(doc["postgres_url"]) as green:
        assert blue.execute("SELECT amount FROM proposals WHERE id = ?", (made["blue"],)).fetchone() == (
            12345.67,
        )
        # each row on its own side only (no sync here: the keys may coincide, the rows do not travel)
        assert blue.execute("SELECT count(*) FROM proposals WHERE amount = 12345.67").fetchone() == (1,)
        assert green.execute("SELECT count(*) FROM proposals WHERE amount = 12345.67").fetchone() == (1,)
        # and so does the load; the databases choose the keys, as the strategy's app lets them: blue max+1, green
        # its identity, which the sync's disjoint keys (installed by lab up) turned to count down from a ceiling
        top = state["seeded"]["proposals"]  # seeded keys are 1..N
        blue_new = [k for (k,) in blue.execute("SELECT id FROM proposals WHERE id > ?", (top,))]
        green_new = [k for (k,) in green.execute("SELECT id FROM proposals WHERE id > %s", (top,))]
        assert len(blue_new) > 1 and len(green_new) > 1
        assert max(blue_new) < top + 100_000
        assert all(2**50 < k < 2**53 for k in green_new)

    # a fault on green: half its API answers are 500, seen in the load's figures and in the access-log metrics
    from cockpit.drivers.metrics.access_log import AccessLogMetrics

    metrics = AccessLogMetrics(plan.path(plan.traffic.balancers[0].access_log), window_s=10)
    metrics.poll()
    assert cli("lab", "fault", "green", "--errors", "50%", "--root", str(lab_root)).returncode == 0
    assert status(lab_root)["faults"]["green"]["errors"] == 50.0

    def green_errors_seen() -> bool:
        fig = json.loads(stats.read_text())
        errors = (fig.get("recent") or {}).get("errors_by_side") or {}
        m = metrics.poll().as_metrics()
        return (
            errors.get("green", 0) >= 5 and errors.get("blue", 0) == 0 and m.get("green.error_rate", 0) > 10
        )

    wait_for(green_errors_seen, timeout=30, what="green's injected errors in the load figures and access log")
    assert metrics.poll().as_metrics().get("blue.error_rate", 0) == 0
    metrics.close()
    set_fault(lab_root, "green", clear=True)

    # green's database "down": its health and API answer 503, which the load reports as db connection failures
    assert cli("lab", "fault", "green", "--db-down", "--root", str(lab_root)).returncode == 0
    assert {s["health"] for s in status(lab_root)["services"] if s["side"] == "green"} == {503}

    def db_failures(side: str) -> float:
        recent = (json.loads(stats.read_text()).get("recent") or {}) if stats.exists() else {}
        return float((recent.get("db_failure_rate_by_side") or {}).get(side, 0))

    wait_for(lambda: db_failures("green") > 20, timeout=30, what="green's db failures in the load's figures")
    assert db_failures("blue") == 0
    set_fault(lab_root, "green", clear=True)
    assert {s["health"] for s in status(lab_root)["services"]} == {200}

    # status --json for scripts
    out = cli("lab", "status", "--json", "--root", str(lab_root))
    assert out.returncode == 0, out.stderr
    js = json.loads(out.stdout)
    for key in ("front_door", "plan", "sticky", "sqlite", "postgres_url", "services", "load"):
        assert js[key], key
    assert all({"unit", "side", "pid", "port"} <= set(s) for s in js["services"])
    assert js["load"]["figures"]["total"]["requests"] > 0

    # down: nothing of the lab left running or listening, and the lab's database is gone
    pids = all_pids(status(lab_root))
    lab_ports = list(state["ports"])
    # the load wrote on green with no sync running: those changes are green's only, so down needs --force
    out = cli("lab", "down", "--root", str(lab_root))
    assert out.returncode == 1 and "acknowledged changes blue lacks" in out.stderr, out.stdout + out.stderr
    out = cli("lab", "down", "--root", str(lab_root), "--force")
    assert out.returncode == 0, out.stdout + out.stderr
    assert not [
        p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]
    assert lab_processes(lab_root.resolve()) == []
    assert listening(lab_ports) == []
    name = doc["postgres_url"].rsplit("/", 1)[1]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None
    after = status(lab_root)
    assert after == {"root": str(lab_root.resolve()), "up": False, "runs": after["runs"]}
    assert [r["run"] for r in after["runs"]] == [doc["run"]]  # down keeps the run's journal


def test_down_cleans_up_after_the_lab_process_was_killed(lab_root: Path, pg_url: str) -> None:
    """`lab up` killed with SIGKILL halfway: `lab down` (another process) still stops what it had started."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cockpit",
            "lab",
            "up",
            "--root",
            str(lab_root),
            "--rate",
            "10",
            "--rows",
            "500",
            "--pg-url",
            pg_url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        state_file = lab_root / "state.json"

        def services_started() -> bool:
            try:
                return bool(json.loads(state_file.read_text()).get("services"))
            except (OSError, ValueError):
                return False

        wait_for(services_started, timeout=60, what="the lab's services to start")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert lab_processes(lab_root.resolve()), "the services outlive the killed lab process"
        state = json.loads(state_file.read_text())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = cli("lab", "down", "--root", str(lab_root))
    assert out.returncode == 0, out.stdout + out.stderr
    assert lab_processes(lab_root.resolve()) == []
    assert listening(state["ports"]) == []


def test_clear_errors_for_bad_input(tmp_path: Path) -> None:
    out = cli("lab", "fault", "green", "--errors", "10%", "--root", str(tmp_path / "none"))
    assert out.returncode == 1 and "no lab in" in out.stderr
    out = cli("lab", "fault", "green", "--root", str(tmp_path))
    assert out.returncode == 1 and "say which fault" in out.stderr
    out = cli("lab", "status", "--root", str(tmp_path / "none"))
    assert out.returncode == 1 and "no lab" in out.stdout


def test_missing_binaries_say_how_to_install(tmp_path: Path) -> None:
    from cockpit.lab.cluster import find_pg_bindir
    from cockpit.lab.errors import LabError
    from cockpit.lab.lab import find_nginx

    empty = str(tmp_path)
    with pytest.raises(LabError, match="apt-get install -y nginx-light"):
        find_nginx(path=empty, fallbacks=())
    with pytest.raises(LabError, match="apt-get install -y postgresql"):
        find_pg_bindir(path=empty, pattern="")
    assert find_nginx()  # and on this machine both are there
    assert (find_pg_bindir() / "initdb").is_file()


def test_with_the_sync_running_both_sides_end_equal(lab_root: Path, pg_url: str) -> None:
    """The lab and the sync together: writes on both sides at a 50 % split, then drained, read back equal."""
    from cockpit.drivers.services.processes import ProcessesDriver
    from cockpit.drivers.sync.runner import SyncRunner
    from cockpit.lab.domain import TABLES, present

    up(LabOptions(root=lab_root, rate=40, users=80, rows=1000, pg_url=pg_url, quiet=True))
    doc = status(lab_root)
    plan = load_plan(doc["plan"])
    NginxDriver.from_plan(plan).apply(50)
    runner = SyncRunner.from_plan(plan)
    runner.start()
    try:
        stats = Path(doc["load"]["stats"])

        def writes_on_both_sides() -> bool:
            fig = json.loads(stats.read_text()) if stats.exists() else {}
            return (fig.get("total") or {}).get("ops", {}).get("create", 0) > 40 and all(
                ((fig.get("recent") or {}).get("by_side") or {}).get(s, 0) > 10 for s in ("blue", "green")
            )

        wait_for(writes_on_both_sides, timeout=30, what="creates served by both sides")
        ProcessesDriver({"lab-load": ["true"]}, pid_dir=lab_root / "run").stop(["lab-load"])
        assert runner.drain(30)
    finally:
        runner.stop()
    with sqlite3.connect(doc["sqlite"]) as blue, psycopg.connect(doc["postgres_url"]) as green:
        for name, table in TABLES.items():
            cols = ", ".join(f'"{c}"' for c in table.columns)
            on_blue = {
                r[0]: present(table, dict(zip(table.columns, r, strict=True)))
                for r in blue.execute(f'SELECT {cols} FROM "{name}"')
            }
            on_green = {
                r[0]: present(table, dict(zip(table.columns, r, strict=True)))
                for r in green.execute(f'SELECT {cols} FROM "{name}"')
            }
            assert on_blue == on_green, name
        made_on_green = green.execute(
            "SELECT count(*) FROM proposals WHERE id > %s",
            (2**50,),  # green's keys count down from its ceiling
        ).fetchone()[0]
        assert made_on_green > 0


def test_demo_stops_everything_on_sigterm(tmp_path: Path, pg_url: str) -> None:
    root = tmp_path / "demo"
    err_path = (
        tmp_path / "demo.err"
    )  # the screen draws on stderr/stdout: a file never blocks it as a pipe would
    with open(err_path, "wb") as err_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cockpit",
                "demo",
                "--root",
                str(root),
                "--rate",
                "5",
                "--rows",
                "500",
                "--pg-url",
                pg_url,
            ],
            stdin=subprocess.DEVNULL,
            stdout=err_file,
            stderr=err_file,
            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"},
        )
    try:

        def load_running() -> bool:
            try:
                return bool((json.loads((root / "state.json").read_text()).get("load") or {}).get("pid"))
            except (OSError, ValueError):
                return False

        wait_for(load_running, timeout=60, what="the demo's lab to be up")
        ports = json.loads((root / "state.json").read_text())["ports"]
        assert lab_processes(root.resolve())
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        down(root, quiet=True)
    assert proc.returncode == 0, err_path.read_text(errors="replace")[-2000:]
    assert lab_processes(root.resolve()) == []
    assert listening(ports) == []
    assert not (root / "state.json").exists()


def test_the_template_is_a_valid_plan() -> None:
    from cockpit.lab.lab import TEMPLATE

    plan = load_plan(TEMPLATE, env={})
    assert plan.traffic.driver == "nginx" and len(plan.traffic.balancers) == 1
    assert plan.blue.services.driver == plan.green.services.driver == "processes"
    assert plan.blue.database.engine == "sqlite" and plan.green.database.engine == "postgresql"
    assert all(p.soak == 30 for p in plan.phases)
    assert {h.side for h in plan.health_checks} == {"front", "blue", "green"}
