"""Blue's backup of a ~200 MB SQLite file: ours (`take_backup`) vs the strategy's shell way (`sqlite3 .backup` +
`gzip`), quiet and while an app process keeps writing, with how long the app's writes were blocked.

Run: .venv/bin/python tests/bench/bench_backup.py [--mb 200] [--rate 500] [--cli-timeout 60] [--dir PATH] [--keep]
The database is generated once in --dir (kept with --keep, reused when present). The writer is a separate process
(as the app is): one INSERT per transaction, --rate per second, WAL, busy timeout 5 s; it records every commit's
latency, and "blocked" is the longest commit while the backup ran. MB/s is the source size over wall time. The
`sqlite3` columns are skipped when the CLI is not on PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cockpit.drivers.backup import COMPRESS_LEVEL, take_backup, verify_backup  # noqa: E402

WORDS = (
    "licitação",
    "pregão",
    "edital",
    "proposta",
    "empresa",
    "oportunidade",
    "contrato",
    "prazo",
    "valor",
    "lote",
    "item",
    "órgão",
    "municipal",
    "estadual",
    "federal",
    "serviço",
    "obra",
    "aquisição",
    "material",
    "consultoria",
    "engenharia",
    "saúde",
    "educação",
)

WRITER = r"""
import json, sqlite3, sys, time
db, rate = sys.argv[1], float(sys.argv[2])
conn = sqlite3.connect(db, isolation_level=None, timeout=5)
conn.execute("PRAGMA busy_timeout = 5000")
conn.execute("PRAGMA synchronous = NORMAL")
samples, gap, next_at = [], 1.0 / rate, time.perf_counter()
print("ready", flush=True)
import select
while not select.select([sys.stdin], [], [], 0)[0]:
    start = time.time(); t0 = time.perf_counter()
    conn.execute("INSERT INTO events (kind, payload) VALUES ('write', 'x')")
    samples.append((start, time.perf_counter() - t0))
    next_at += gap
    delay = next_at - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    else:
        next_at = time.perf_counter()
json.dump(samples, sys.stdout)
"""


def generate(path: Path, mb: int) -> None:
    """A blue-like database: opportunities with Portuguese text (compresses like real data, not like zeros)."""
    rng = random.Random(7)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        "CREATE TABLE opportunities (id INTEGER PRIMARY KEY, title TEXT, body TEXT, value REAL, created TEXT)"
    )
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT, payload TEXT)")
    conn.execute("CREATE INDEX opp_created ON opportunities(created)")
    target = mb * 1024 * 1024
    batch = 0
    while path.stat().st_size + _size(Path(f"{path}-wal")) < target:
        rows = [
            (
                " ".join(rng.choices(WORDS, k=6)),
                " ".join(rng.choices(WORDS, k=40)),
                round(rng.uniform(1e3, 1e7), 2),
                f"2026-{1 + batch % 12:02d}-{1 + rng.randrange(28):02d}",
            )
            for _ in range(20000)
        ]
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO opportunities (title, body, value, created) VALUES (?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        batch += 1
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


class Writer:
    """The app: a separate process committing at a steady rate until told to stop."""

    def __init__(self, db: Path, rate: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), str(rate)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> list[tuple[float, float]]:
        out, _ = self.proc.communicate(input="stop\n", timeout=60)
        return [tuple(s) for s in json.loads(out)]


def window(samples: list[tuple[float, float]], start: float, end: float) -> tuple[int, float, float]:
    """(commits, max latency, p99 latency) of the commits that started during [start, end]."""
    lat = sorted(d for t, d in samples if start <= t <= end)
    if not lat:
        return 0, 0.0, 0.0
    return len(lat), lat[-1], lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def run_ours(db: Path, out: Path, level: int = COMPRESS_LEVEL) -> tuple[float, int, str]:
    start = time.perf_counter()
    manifest = take_backup(db, out, compresslevel=level)
    took = time.perf_counter() - start
    gz = manifest.file("blue.db.gz")
    return took, gz.size if gz else 0, manifest.path


def run_cli(db: Path, out: Path, timeout: float) -> tuple[float | None, float, int]:
    """`sqlite3 db ".backup copy"` then `gzip copy`: (backup seconds or None if it timed out, gzip seconds, gz size)."""
    out.mkdir(parents=True, exist_ok=True)
    copy = out / "database.db"
    start = time.perf_counter()
    try:
        subprocess.run(["sqlite3", str(db), f".backup '{copy}'"], check=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, 0.0, 0
    backup_s = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run(["gzip", str(copy)], check=True)
    return backup_s, time.perf_counter() - start, _size(Path(f"{copy}.gz"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--rate", type=float, default=500.0, help="app commits per second during the runs")
    parser.add_argument("--cli-timeout", type=float, default=60.0)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "cockpit-bench-backup")
    parser.add_argument("--keep", action="store_true", help="keep the generated database for the next run")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    db = args.dir / "blue.db"
    if not db.exists():
        start = time.perf_counter()
        generate(db, args.mb)
        print(f"generated {db} ({_size(db) / 2**20:.0f} MB) in {time.perf_counter() - start:.1f} s")
    mb = _size(db) / 2**20
    out = args.dir / "out"
    have_cli = shutil.which("sqlite3") is not None
    try:
        print(f"source {mb:.0f} MB, SQLite {sqlite3.sqlite_version}, writer {args.rate:.0f} commits/s\n")
        rows = []

        shutil.rmtree(out, ignore_errors=True)
        took, gz, path = run_ours(db, out / "quiet")
        verify_s = time.perf_counter()
        ok = verify_backup(path).ok
        verify_s = time.perf_counter() - verify_s
        rows.append(
            (
                f"ours (take_backup, gzip -{COMPRESS_LEVEL}), quiet",
                f"{mb / took:7.1f}",
                f"{took:6.1f}",
                f"{gz / 2**20:6.1f}",
                "-",
            )
        )
        took, gz, _ = run_ours(db, out / "quiet6", level=6)
        rows.append(
            (
                "ours (take_backup, gzip -6), quiet",
                f"{mb / took:7.1f}",
                f"{took:6.1f}",
                f"{gz / 2**20:6.1f}",
                "(the CLI's level, like for like)",
            )
        )

        writer = Writer(db, args.rate)
        time.sleep(1.0)  # a baseline second of app writes before the backup starts
        base_end = time.time()
        start = time.time()
        wal_before = _size(Path(f"{db}-wal"))
        took, gz, _ = run_ours(db, out / "loaded")
        end = time.time()
        wal_after = _size(Path(f"{db}-wal"))
        samples = writer.stop()
        n, worst, p99 = window(samples, start, end)
        bn, bworst, bp99 = window(samples, 0, base_end)
        rows.append(
            (
                f"ours (take_backup, gzip -{COMPRESS_LEVEL}), app writing",
                f"{mb / took:7.1f}",
                f"{took:6.1f}",
                f"{gz / 2**20:6.1f}",
                f"max {worst * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms ({n} commits)",
            )
        )

        if have_cli:
            backup_s, gzip_s, gz = run_cli(db, out / "cli-quiet", args.cli_timeout)
            assert backup_s is not None, "sqlite3 .backup of a quiet database timed out"
            total = backup_s + gzip_s
            rows.append(
                (
                    "sqlite3 .backup + gzip (-6), quiet",
                    f"{mb / total:7.1f}",
                    f"{total:6.1f}",
                    f"{gz / 2**20:6.1f}",
                    f"(.backup {backup_s:.1f} s + gzip {gzip_s:.1f} s)",
                )
            )
            writer = Writer(db, args.rate)
            start = time.time()
            backup_s, gzip_s, gz = run_cli(db, out / "cli-loaded", args.cli_timeout)
            end = time.time()
            cn, cworst, cp99 = window(writer.stop(), start, end)
            if backup_s is None:
                rows.append(
                    (
                        "sqlite3 .backup + gzip (-6), app writing",
                        "      -",
                        f"{args.cli_timeout:6.0f}",
                        "     -",
                        f"did not finish in {args.cli_timeout:.0f} s (restarts on every write); "
                        f"app max {cworst * 1000:.1f} ms",
                    )
                )
            else:
                total = backup_s + gzip_s
                rows.append(
                    (
                        "sqlite3 .backup + gzip (-6), app writing",
                        f"{mb / total:7.1f}",
                        f"{total:6.1f}",
                        f"{gz / 2**20:6.1f}",
                        f"max {cworst * 1000:.1f} ms, p99 {cp99 * 1000:.1f} ms ({cn})",
                    )
                )
        else:
            print("sqlite3 CLI not on PATH: its columns are skipped")

        print(f"{'run':44} {'MB/s':>7} {'s':>6} {'gz MB':>6}  app writes during the backup")
        for row in rows:
            print(f"{row[0]:44} {row[1]} {row[2]} {row[3]}  {row[4]}")
        print(
            f"\napp writes with no backup running: max {bworst * 1000:.1f} ms, p99 {bp99 * 1000:.1f} ms ({bn})"
        )
        print(
            f"WAL during our backup under load: {wal_before / 2**20:.1f} MB -> {wal_after / 2**20:.1f} MB "
            f"(the held snapshot keeps checkpoints back)"
        )
        print(
            f"verify (hash + gunzip + integrity_check + counts): {verify_s:.1f} s, {'ok' if ok else 'FAILED'}"
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)
        if not args.keep:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
    os.sync()


if __name__ == "__main__":
    main()
