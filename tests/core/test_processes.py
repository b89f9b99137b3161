"""Controllers as real processes: SIGKILL mid-action and reconciliation, the lock and the command queue across
processes, and secrets kept out of output, journal and logs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cockpit.control.controller import Controller
from cockpit.control.factory import Drivers
from cockpit.core.journal import Journal
from cockpit.core.plan import load_plan
from tests.conftest import wait_for
from tests.core.drivers import GatedTraffic
from tests.core.plans import BASE, write_plan

ROOT = Path(__file__).resolve().parents[2]


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k != "COCKPIT_PLAN"}
    e["PYTHONPATH"] = str(ROOT)
    e.update(extra)
    return e


def cockpit(*args: str, check: bool = False, **extra: str) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(
        [sys.executable, "-m", "cockpit", *args],
        capture_output=True,
        text=True,
        env=env(**extra),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


def kill_mid_action(tmp_path: Path, mode: str) -> None:
    plan = write_plan(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.core.crash_controller", str(plan), mode],
        env=env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(
            lambda: (tmp_path / "in-flight").exists() or proc.poll() is not None,
            timeout=30,
            what="action in flight",
        )
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


async def restart(tmp_path: Path) -> tuple[Controller, list]:
    plan = load_plan(tmp_path / "plan.yaml")
    c = Controller(
        plan,
        Drivers(traffic=GatedTraffic(tmp_path / "split.json")),
        Journal(tmp_path / "journal.db"),
        actor="survivor@host",
    )
    results = await c.start()
    return c, results


@pytest.mark.parametrize(
    ("mode", "live", "state", "index"),
    [
        ("advance-before-write", None, "ready", -1),
        ("advance-after-write", 5.0, "active", 0),
    ],
)
async def test_sigkill_mid_advance_is_reconciled(
    tmp_path: Path, mode: str, live: float | None, state: str, index: int
) -> None:
    kill_mid_action(tmp_path, mode)
    assert Journal(tmp_path / "journal.db").open_actions()[0].verb == "advance"
    c, results = await restart(tmp_path)
    try:
        assert [r.outcome for r in results] == ["reconciled"]
        assert (c.machine.state, c.machine.phase_index) == (state, index)
        assert c.journal.open_actions() == []
        if live is not None:
            assert json.loads((tmp_path / "split.json").read_text())["green_percent"] == live
        assert (await c.advance()).ok  # and the world is usable again
    finally:
        await c.close()


@pytest.mark.parametrize("mode", ["rollback-before-write", "rollback-after-write"])
async def test_sigkill_mid_rollback_runs_the_rollback_again(tmp_path: Path, mode: str) -> None:
    kill_mid_action(tmp_path, mode)
    c, results = await restart(tmp_path)
    try:
        assert [r.verb for r in results] == ["rollback"] and results[0].ok, results
        assert c.machine.state == "rolled_back"
        interrupted = [a for a in c.journal.actions(10) if a.outcome == "interrupted"]
        assert len(interrupted) == 1 and interrupted[0].actor == "victim@host"
        assert json.loads((tmp_path / "split.json").read_text())["green_percent"] == 0
    finally:
        await c.close()


def test_queued_cli_command_is_run_by_the_running_controller(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, BASE + "alerts: {}\n")
    run = subprocess.Popen(
        [sys.executable, "-m", "cockpit", "-p", str(plan), "run", "--no-sync"],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: (
                (tmp_path / "journal.db.lock").exists() and (tmp_path / "journal.db.lock").read_text().strip()
            ),
            timeout=30,
            what="the controller's lock",
        )
        second = cockpit("-p", str(plan), "run", "--no-sync")
        assert second.returncode == 1 and "already running" in second.stderr
        adv = cockpit("-p", str(plan), "advance", "--yes", "--json")
        assert adv.returncode == 0, adv.stdout + adv.stderr
        assert "queued advance as command" in adv.stderr
        assert json.loads(adv.stdout)["outcome"] == "ok"
        assert json.loads((tmp_path / "split.json").read_text())["green_percent"] == 5
        status = json.loads(cockpit("-p", str(plan), "status", "--json", check=True).stdout)
        assert status["state"] == "active" and status["phase"]["name"] == "validation"
        assert status["green_percent"] == {"configured": 5.0, "live": 5.0}
        assert status["controller"]["pid"] == run.pid
        assert status["last_action"]["kind"] == "advance" and status["last_action"]["outcome"] == "ok"
        held = cockpit("-p", str(plan), "hold", "--reason", "lunch")
        assert held.returncode == 0, held.stderr
        refused = cockpit("-p", str(plan), "advance", "--yes")
        assert refused.returncode == 1 and "resume first" in refused.stdout
    finally:
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=30)
    assert run.returncode == 0, err
    assert "advance requested" in out and "hold ok" in out


def test_one_shot_cli_actions_without_a_controller(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    p = cockpit("-p", str(plan), "advance", "--yes")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("advance ok") and "traffic: ok" in p.stdout
    p = cockpit("-p", str(plan), "rollback", "--yes", "--reason", "drill", "--mode", "immediate")
    assert p.returncode == 0, p.stdout + p.stderr
    status = json.loads(cockpit("-p", str(plan), "status", "--json", check=True).stdout)
    assert status["state"] == "rolled_back" and status["controller"] is None
    assert status["green_percent"]["live"] == 0
    lines = cockpit("-p", str(plan), "journal", check=True).stdout.splitlines()
    assert any("rollback requested: drill" in line for line in lines)
    assert cockpit("-p", str(plan), "rollback", "--yes").returncode == 2  # --reason is required
    before = cockpit("-p", str(plan), "journal", "--json", check=True).stdout
    bad = write_plan(tmp_path, BASE.replace("green: 20", "green: 200"), name="bad.yaml")
    p = cockpit("-p", str(bad), "advance", "--yes")
    assert p.returncode == 2 and "outside 0..100" in p.stderr
    # nothing ran for the bad plan: the journal (both plans name the same file) gained no event
    assert cockpit("-p", str(plan), "journal", "--json", check=True).stdout == before
    assert cockpit("status").returncode == 2  # no plan


def test_secrets_never_appear(tmp_path: Path) -> None:
    secret = "hunter2-s3cr3t"
    text = BASE.replace(
        "green:\n  database: {engine: sqlite, path: green.db}",
        'green:\n  database: {engine: postgresql, url: "${NEON_DATABASE_URL}"}',
    )
    text += 'alerts:\n  webhook: {url: "${SLACK_WEBHOOK_URL}"}\n'
    plan = write_plan(tmp_path, text)
    secrets = {
        "NEON_DATABASE_URL": f"postgresql://app:{secret}@127.0.0.1:1/db?sslmode=require",
        "SLACK_WEBHOOK_URL": f"http://127.0.0.1:9/hooks/{secret}-token",
    }
    show = cockpit("-p", str(plan), "plan", "show", check=True, **secrets)
    assert secret not in show.stdout and "***" in show.stdout
    # an action whose reason pastes the connection string: the journal and the output keep it masked
    rb = cockpit(
        "-p",
        str(plan),
        "rollback",
        "--yes",
        "--reason",
        f"neon at {secrets['NEON_DATABASE_URL']} down",
        **secrets,
    )
    assert secret not in rb.stdout + rb.stderr
    journal = cockpit("-p", str(plan), "journal", "--json", check=True, **secrets)
    assert secret not in journal.stdout and "rollback" in journal.stdout
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("journal.db*") if p.is_file())
    assert secret.encode() not in raw
    assert oct((tmp_path / "journal.db").stat().st_mode & 0o777) == "0o600"


def _on_a_terminal(args: list[str], answer: bytes) -> tuple[int, str]:
    """Run the CLI with its stdin on a pseudo-terminal, type `answer`, return (exit code, what it printed)."""
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI with the pty as its terminal
        os.execve(sys.executable, [sys.executable, "-m", "cockpit", *args], env())
    out = b""
    sent = False
    end = time.monotonic() + 60
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if not sent and b"[y/N]" in out:
            os.write(fd, answer)
            sent = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_confirmation_only_on_a_terminal(tmp_path: Path) -> None:
    plan = str(write_plan(tmp_path))
    code, out = _on_a_terminal(["-p", plan, "advance"], b"n\n")
    assert code == 1 and "advance rehearsal? [y/N]" in out and "cancelled: nothing was done" in out
    assert not (tmp_path / "split.json").exists()
    code, out = _on_a_terminal(["-p", plan, "advance"], b"y\n")
    assert code == 0 and "advance ok" in out
    assert json.loads((tmp_path / "split.json").read_text())["green_percent"] == 5
    # no terminal: no question, no wait (stdin is /dev/null in cockpit())
    p = cockpit("-p", plan, "rollback", "--reason", "drill")
    assert p.returncode == 0 and "[y/N]" not in p.stdout


def test_a_queued_rollback_cut_short_by_sigkill_gets_its_answer(tmp_path: Path) -> None:
    """`cockpit rollback --yes` queued to a controller that is SIGKILLed mid-rollback: the controller that
    reconciles runs the rollback again and answers the waiting CLI with the real outcome."""
    plan = write_plan(tmp_path)
    victim = subprocess.Popen(
        [sys.executable, "-m", "tests.core.crash_controller", str(plan), "rollback-queued"],
        env=env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    asking = None
    try:
        wait_for(
            lambda: (tmp_path / "ready").exists() or victim.poll() is not None, timeout=30, what="victim"
        )
        asking = subprocess.Popen(
            [sys.executable, "-m", "cockpit", "-p", str(plan), "rollback", "--yes", "--reason", "drill"]
            + ["--json", "--wait", "60"],
            env=env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(
            lambda: (tmp_path / "in-flight").exists() or victim.poll() is not None,
            timeout=30,
            what="the queued rollback in flight",
        )
        assert victim.poll() is None, victim.stdout.read().decode() if victim.stdout else ""
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
    assert asking is not None and asking.poll() is None  # still waiting for its answer
    c, results = asyncio.run(restart(tmp_path))
    try:
        assert [r.verb for r in results] == ["rollback"] and results[0].ok, results
        out, err = asking.communicate(timeout=30)
        assert asking.returncode == 0, out + err
        answer = json.loads(out)
        assert answer["outcome"] == "ok" and answer["action_id"] == results[0].action_id
        assert json.loads((tmp_path / "split.json").read_text())["green_percent"] == 0
    finally:
        asyncio.run(c.close())
        if asking.poll() is None:
            asking.kill()


async def test_commands_taken_and_never_answered_are_answered_at_start(tmp_path: Path) -> None:
    """Taken, never started: nothing was done (said so), except a rollback, which runs now. Taken, finished,
    not answered (a crash between the two): answered from the journaled outcome."""
    from cockpit.core.recorder import Recorder
    from cockpit.core.vocabulary import Outcome

    write_plan(tmp_path)
    j = Journal(tmp_path / "journal.db")
    advance = j.enqueue("advance", {"reason": ""}, "ana@host")
    rollback = j.enqueue("rollback", {"reason": "drill", "mode": "immediate"}, "ana@host")
    hold = j.enqueue("hold", {"reason": "lunch"}, "ana@host")
    assert [c.id for c in j.take_commands()] == [advance, rollback, hold]
    rec = Recorder(j, "hold", "victim@host", "lunch", {"command": hold})
    rec.intent()
    rec.outcome(Outcome.OK, "held: lunch")
    j.close()
    c, results = await restart(tmp_path)
    try:
        assert [r.verb for r in results] == ["rollback"] and results[0].ok
        answers = {cid: c.journal.command(cid) for cid in (advance, rollback, hold)}
        assert answers[advance].status == "failed"
        assert answers[advance].result["outcome"] == "interrupted"
        assert "nothing was done" in answers[advance].result["message"]
        assert answers[rollback].status == "done" and answers[rollback].result["outcome"] == "ok"
        assert answers[hold].status == "done" and answers[hold].result["message"] == "held: lunch"
        assert c.journal.taken_commands() == []
    finally:
        await c.close()
