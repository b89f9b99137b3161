"""The processes driver with real processes: spawn, pid files, SIGTERM then SIGKILL, a controller that died."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from cockpit.core.plan import Database, Duration, Percent, Phase, Plan, Services, Side
from cockpit.drivers.health import check
from cockpit.drivers.services.base import ServiceError
from cockpit.drivers.services.factory import build_services, service_units
from cockpit.drivers.services.processes import ProcessesDriver
from cockpit.drivers.services.systemd import SystemdDriver
from tests.conftest import wait_for

PY = sys.executable
SLEEPER = "import time\nprint('ready', flush=True)\nwhile True: time.sleep(1)"
STUBBORN = (
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\n"
    "while True: time.sleep(1)"
)
PARENT = (
    "import subprocess, sys, time\n"
    "c = subprocess.Popen([sys.executable, '-c', 'import time\\nwhile True: time.sleep(1)'])\n"
    "print('child', c.pid, flush=True)\nwhile True: time.sleep(1)"
)
SHOW_ENV = (
    "import os, time\nprint('var=' + os.environ['COCKPIT_T_VAR'], flush=True)\nwhile True: time.sleep(1)"
)


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for a parent that is not us counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def pid_of(driver: ProcessesDriver, unit: str) -> int:
    return json.loads(driver.pid_file(unit).read_text())["pid"]


def log_of(driver: ProcessesDriver, unit: str) -> str:
    path = driver.log_file(unit)
    return path.read_text() if path.exists() else ""


@pytest.fixture
def make_driver(tmp_path: Path) -> Iterator:
    """Build drivers over tmp_path; whatever they started is stopped (and killed if need be) afterwards."""
    made: list[ProcessesDriver] = []

    def make(commands: dict[str, list[str]], **kw: object) -> ProcessesDriver:
        kw.setdefault("pid_dir", tmp_path / "pids")
        d = ProcessesDriver(commands, **kw)  # type: ignore[arg-type]
        made.append(d)
        return d

    yield make
    for d in made:
        started = [u for u in d.commands if d.pid_file(u).exists()]
        try:
            d.stop(started)
        except ServiceError:
            for unit in started:
                try:
                    os.killpg(pid_of(d, unit), signal.SIGKILL)
                except (OSError, ValueError, KeyError):
                    pass


def test_start_writes_pid_file_and_log_then_stop(make_driver, tmp_path):
    d = make_driver({"web": [PY, "-c", SLEEPER]})
    [st] = d.start(["web"])
    assert st.unit == "web" and st.running and st.detail.startswith("started (pid ")
    record = json.loads(d.pid_file("web").read_text())
    proc = psutil.Process(record["pid"])
    assert record["create_time"] == proc.create_time()
    assert record["argv"] == [PY, "-c", SLEEPER]
    assert os.getpgid(proc.pid) == proc.pid  # its own session and process group
    wait_for(lambda: "ready" in log_of(d, "web"), what="the service's output in its log")
    assert d.log_file("web") == tmp_path / "pids" / "web.log"
    assert d.status(["web"])[0].running

    [st] = d.stop(["web"])
    assert not st.running and st.detail == f"stopped (pid {proc.pid}, SIGTERM)"
    assert gone(proc.pid)
    assert not d.pid_file("web").exists()
    [st] = d.status(["web"])
    assert not st.running and st.detail == "not running"


def test_start_is_idempotent(make_driver, tmp_path):
    marker = f"marker-{tmp_path.name}"
    d = make_driver({"web": [PY, "-c", SLEEPER, marker]})
    d.start(["web"])
    first = pid_of(d, "web")
    [st] = d.start(["web"])
    assert st.running and st.detail == f"already running (pid {first})"
    assert pid_of(d, "web") == first
    copies = [p for p in psutil.process_iter(["cmdline"]) if marker in (p.info["cmdline"] or [])]
    assert [p.pid for p in copies] == [first]


def test_stop_escalates_to_sigkill_for_a_process_that_ignores_sigterm(make_driver):
    d = make_driver({"stubborn": [PY, "-c", STUBBORN]}, stop_timeout=0.3)
    d.start(["stubborn"])
    pid = pid_of(d, "stubborn")
    wait_for(lambda: "ready" in log_of(d, "stubborn"), what="SIGTERM handler installed")
    [st] = d.stop(["stubborn"])
    assert not st.running
    assert st.detail == f"killed (pid {pid}, SIGKILL after 0.3s)"
    assert gone(pid)
    assert not d.pid_file("stubborn").exists()


def test_stop_signals_all_units_at_once(make_driver):
    d = make_driver(
        {"a": [PY, "-c", STUBBORN], "b": [PY, "-c", STUBBORN], "c": [PY, "-c", SLEEPER]}, stop_timeout=0.3
    )
    d.start(["a", "b", "c"])
    for u in ("a", "b", "c"):
        wait_for(lambda u=u: "ready" in log_of(d, u), what=f"{u} ready")
    pids = {u: pid_of(d, u) for u in ("a", "b", "c")}
    statuses = d.stop(["a", "b", "c"])
    assert [s.unit for s in statuses] == ["a", "b", "c"]
    assert [s.detail.split(" ")[0] for s in statuses] == ["killed", "killed", "stopped"]
    assert all(gone(p) for p in pids.values())


def test_stop_takes_the_whole_process_group(make_driver):
    d = make_driver({"parent": [PY, "-c", PARENT]})
    d.start(["parent"])
    out = wait_for(lambda: re.search(r"child (\d+)", log_of(d, "parent")), what="the child's pid")
    child = int(out.group(1))
    assert not gone(child)
    d.stop(["parent"])
    wait_for(lambda: gone(child), timeout=5, what="the child to die with its parent")


def test_a_controller_that_died_leaves_units_another_can_stop(tmp_path, make_driver):
    commands = {"web": [PY, "-c", SLEEPER]}
    pid_dir = tmp_path / "pids"
    script = (
        "import json, sys\nfrom pathlib import Path\nfrom cockpit.drivers.services.processes import ProcessesDriver\n"
        "d = ProcessesDriver(json.loads(sys.argv[1]), Path(sys.argv[2]))\nprint(d.start(['web'])[0].detail)\n"
    )
    out = subprocess.run(
        [PY, "-c", script, json.dumps(commands), str(pid_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.startswith("started (pid ")
    d = make_driver(commands, pid_dir=pid_dir)
    pid = pid_of(d, "web")
    assert psutil.Process(pid).ppid() != os.getpid()  # not our child: its controller is gone
    [st] = d.status(["web"])
    assert st.running and st.detail == f"running (pid {pid})"
    [st] = d.start(["web"])
    assert st.detail == f"already running (pid {pid})"
    [st] = d.stop(["web"])
    assert not st.running and "SIGTERM" in st.detail
    assert gone(pid)


def test_a_process_that_died_on_its_own_is_not_running(make_driver):
    d = make_driver({"web": [PY, "-c", SLEEPER]})
    d.start(["web"])
    pid = pid_of(d, "web")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not d.status(["web"])[0].running, what="status to notice the death")
    [st] = d.status(["web"])
    assert pid_of(d, "web") == pid  # status reads, it does not clean up
    assert st.detail in (
        f"not running (pid {pid} has exited)",
        f"not running (stale pid file: pid {pid} is gone)",
    )
    [st] = d.start(["web"])
    assert st.running and pid_of(d, "web") != pid


def test_a_reused_pid_is_not_mistaken_for_the_unit(make_driver):
    d = make_driver({"web": [PY, "-c", SLEEPER]})
    d.pid_dir.mkdir(parents=True)
    # our own pid, with another start time: what a pid file looks like after the pid was recycled
    d.pid_file("web").write_text(json.dumps({"unit": "web", "pid": os.getpid(), "create_time": 1.0}))
    [st] = d.status(["web"])
    assert not st.running
    assert st.detail == f"not running (stale pid file: pid {os.getpid()} now belongs to another process)"
    [st] = d.stop(["web"])  # must not signal the process that now owns the pid (us)
    assert not st.running and "stale pid file" in st.detail
    assert not d.pid_file("web").exists()
    d.pid_file("web").write_text(json.dumps({"unit": "web", "pid": os.getpid(), "create_time": 1.0}))
    [st] = d.start(["web"])
    assert st.running and "previous: stale pid file" in st.detail
    assert pid_of(d, "web") != os.getpid()


def test_an_unreadable_pid_file(make_driver):
    d = make_driver({"web": [PY, "-c", SLEEPER]})
    d.pid_dir.mkdir(parents=True)
    d.pid_file("web").write_text("garbage")
    [st] = d.status(["web"])
    assert not st.running and "unreadable pid file" in st.detail
    [st] = d.start(["web"])
    assert st.running


def test_unknown_unit_is_refused_before_anything_runs(make_driver):
    d = make_driver({"web": [PY, "-c", SLEEPER]})
    for call in (d.start, d.stop, d.status):
        with pytest.raises(ServiceError, match=r"unknown unit\(s\) 'nope'; known units: web"):
            call(["web", "nope"])
    assert not d.pid_file("web").exists()


@pytest.mark.parametrize("unit", ["../escape", ".hidden", "-opt", "a/b", ""])
def test_unit_names_must_be_file_names(tmp_path, unit):
    with pytest.raises(ServiceError, match="not usable as a file name"):
        ProcessesDriver({unit: [PY]}, tmp_path)


def test_empty_argv_is_refused(tmp_path):
    with pytest.raises(ServiceError, match="needs a non-empty argv"):
        ProcessesDriver({"web": []}, tmp_path)


def test_a_unit_that_cannot_be_spawned_does_not_stop_the_others(make_driver, tmp_path):
    d = make_driver({"bad": [str(tmp_path / "no-such-program")], "good": [PY, "-c", SLEEPER]})
    with pytest.raises(ServiceError, match=r"unit 'bad': cannot run .*no-such-program.*No such file"):
        d.start(["bad", "good"])
    assert [s.running for s in d.status(["bad", "good"])] == [False, True]


def test_env_and_cwd_reach_the_process(make_driver, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    cmd = SHOW_ENV.replace("print(", "print(os.getcwd(), ")
    d = make_driver(
        {"web": [PY, "-c", cmd]}, env={"COCKPIT_T_VAR": "hello"}, log_dir=tmp_path / "logs", cwd=work
    )
    d.start(["web"])
    assert d.log_file("web") == tmp_path / "logs" / "web.log"
    wait_for(lambda: f"{work} var=hello" in log_of(d, "web"), what="env and cwd in the log")


def test_a_real_http_service_serves_then_stops(make_driver, tmp_path):
    d = make_driver(
        {"http": [PY, "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(tmp_path)]},
        env={"PYTHONUNBUFFERED": "1"},
    )
    d.start(["http"])
    m = wait_for(lambda: re.search(r"port (\d+)", log_of(d, "http")), what="the server's port")
    url = f"http://127.0.0.1:{m.group(1)}/"
    assert check(url, timeout=5).ok
    d.stop(["http"])
    r = check(url, timeout=5)
    # (not asserting "refused": on a busy machine another program may take the freed port at once)
    assert not r.ok, r


# ------------------------------------------------------------------------------------------------ factory


def _plan(tmp_path: Path) -> Plan:
    db = Database(engine="sqlite", path="x.db")
    return Plan(
        name="shop",
        blue=Side(database=db),
        green=Side(database=db),
        phases=[Phase(name="all", green=Percent(100))],
    ).located(tmp_path / "plans" / "shop.yaml")


def test_factory_builds_a_processes_driver_relative_to_the_plan(tmp_path):
    plan = _plan(tmp_path)
    spec = Services(
        driver="processes",
        units=["web"],
        commands={"web": ["bin/app", "--port", "0"], "worker": ["python3", "w.py"]},
        stop_timeout=Duration(3),
    )
    d = build_services(spec, plan)
    assert isinstance(d, ProcessesDriver)
    assert d.pid_dir == tmp_path / "plans" / ".cockpit" / "pids" / "shop"
    assert d.commands == {
        "web": [str(tmp_path / "plans" / "bin" / "app"), "--port", "0"],
        "worker": ["python3", "w.py"],
    }
    assert d.cwd == tmp_path / "plans"
    assert d.stop_timeout == 3.0
    assert service_units(spec) == ["web"]
    d2 = build_services(Services(driver="processes", commands={"w": [PY]}, pid_dir="run/pids"), plan)
    assert d2.pid_dir == tmp_path / "plans" / "run" / "pids"
    assert service_units(Services(driver="processes", commands={"w": [PY]})) == ["w"]


def test_factory_driver_runs_what_it_built(tmp_path):
    plan = _plan(tmp_path)
    (tmp_path / "plans").mkdir()
    d = build_services(
        Services(driver="processes", units=["web"], commands={"web": [PY, "-c", SLEEPER]}), plan
    )
    try:
        assert d.start(["web"])[0].running
        assert d.pid_file("web").is_file()
    finally:
        d.stop(["web"])
    assert not d.status(["web"])[0].running


def test_factory_systemd_and_none(tmp_path):
    plan = _plan(tmp_path)
    assert build_services(Services(driver="none"), plan) is None
    spec = Services(driver="systemd", units=["licitacoes-neon@1"])
    assert isinstance(build_services(spec, plan), SystemdDriver)
    assert service_units(spec) == ["licitacoes-neon@1"]
