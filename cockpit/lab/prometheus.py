"""The lab's private Prometheus (`cockpit lab up --metrics prometheus`): Debian's `prometheus` binary on a free
loopback port, its configuration and data under `<lab root>/prometheus/`, scraping every demo service's
`/metrics` each second (one job per side: `blue`, `green`), started and stopped as the `lab-prometheus` unit of
the processes driver (its pid file in `run/`, so `lab down` stops it with the services).

The lab's plan then has a `prometheus:` section pointing at it, and the cockpit reads the per-side figures from
Prometheus instead of the access log (nginx still writes the log: the figures can be compared).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx

from cockpit.drivers.services.processes import ProcessesDriver
from cockpit.lab.errors import LabError

UNIT = "lab-prometheus"
INSTALL_HINT = "install it: apt-get install -y prometheus"
SCRAPE_INTERVAL_S = 1
STALE_AFTER_S = 3  # a side whose newest good scrape is older than this (two missed scrapes) has no figures
FALLBACKS = ("/usr/bin/prometheus", "/usr/local/bin/prometheus")


def find_prometheus(path: str | None = None, fallbacks: tuple[str, ...] = FALLBACKS) -> str:
    """The prometheus binary: on PATH (or `path`), else in the usual folders; LabError with the install hint."""
    found = shutil.which("prometheus", path=path) or next(
        (p for p in fallbacks if os.access(p, os.X_OK)), None
    )
    if not found:
        raise LabError(f"prometheus not found on PATH or in {', '.join(fallbacks)}; {INSTALL_HINT}")
    return found


def render_config(targets: dict[str, list[str]]) -> str:
    """prometheus.yml: one scrape job per side, its services' `host:port`s as static targets."""
    lines = [
        "# Written by `cockpit lab up --metrics prometheus`.",
        "global:",
        f"  scrape_interval: {SCRAPE_INTERVAL_S}s",
        f"  scrape_timeout: {SCRAPE_INTERVAL_S}s",
        f"  evaluation_interval: {SCRAPE_INTERVAL_S}s",
        "scrape_configs:",
    ]
    for job, hosts in targets.items():
        listed = ", ".join(f'"{h}"' for h in hosts)
        lines += [f"  - job_name: {job}", "    static_configs:", f"      - targets: [{listed}]"]
    return "\n".join(lines) + "\n"


def plan_section(url: str, window: str) -> str:
    """The `prometheus:` section appended to the lab's resolved plan."""
    return (
        "\n# `cockpit lab up --metrics prometheus`: the figures per side come from the lab's private Prometheus\n"
        "prometheus:\n"
        f'  url: "{url}"\n'
        "  jobs: {blue: blue, green: green}\n"
        "  preset: app\n"
        f"  window: {window}\n"
        f"  stale_after: {STALE_AFTER_S}\n"
    )


class LabPrometheus:
    """The private server: its folder, port and unit."""

    def __init__(self, folder: Path, port: int, binary: str, run_dir: Path):
        self.folder = Path(folder)
        self.port = port
        self.binary = binary
        self.url = f"http://127.0.0.1:{port}"
        self.driver = ProcessesDriver({UNIT: self.argv()}, pid_dir=run_dir, stop_timeout=10.0)
        self.log = Path(run_dir) / f"{UNIT}.log"

    def argv(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ]

    def start(self, targets: dict[str, list[str]], timeout: float = 30.0) -> None:
        """Write the configuration, start the server, and wait until every target has been scraped once."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "prometheus.yml").write_text(render_config(targets), encoding="utf-8")
        self.driver.start([UNIT])
        want = sum(len(h) for h in targets.values())
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while True:
                if self.targets_up(client) >= want:
                    return
                if not self.running():
                    raise LabError(f"prometheus exited at start:\n{_tail(self.log)}")
                if time.monotonic() > deadline:
                    raise LabError(
                        f"prometheus at {self.url} did not scrape all {want} services within {timeout:g}s:\n"
                        f"{_tail(self.log)}"
                    )
                time.sleep(0.1)

    def targets_up(self, client: httpx.Client) -> int:
        """How many targets the last scrape found up (0 while the server is not ready)."""
        try:
            body = client.get(self.url + "/api/v1/query", params={"query": "sum(up)"}).json()
            result = body["data"]["result"]
            return int(float(result[0]["value"][1])) if result else 0
        except (httpx.HTTPError, ValueError, KeyError, IndexError):
            return 0

    def running(self) -> bool:
        return self.driver.status([UNIT])[0].running

    def stop(self) -> None:
        self.driver.stop([UNIT])


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
