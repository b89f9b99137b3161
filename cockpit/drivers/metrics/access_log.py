"""Live per-side traffic figures from nginx's JSON access log (the `cockpit_json` format of the nginx driver).

`AccessLogTail` follows a log file from where it stands when opened (not from the start): it survives rotation by
rename (``mv log log.1`` then ``nginx -s reopen``: the old file is read to its end, then the new one from its
start), copytruncate (the file shrinks or its first bytes change: what was not read yet is taken from the copy
``<log>.1`` when its bytes match, then the file is read from its start) and partial lines (kept until their newline
arrives).

`AccessLogMetrics` turns the lines into immutable `TrafficSample`s over a sliding window (60 s by default): per side
requests/s, error rate (% of 5xx), 4xx rate apart, p50/p95/p99 latency, and the observed green share. The share
restarts at a split change: given the balancers' include files (their first line is the nginx driver's marker
``# cockpit-split ... green_percent=P``), it counts only the whole seconds after the file that changed was written,
so 5 s after a change (a rollback too) it shows the new split, not a blend with the old one; its window grows back
to the full one. Every sample says the window of each figure (`window_s`, `share_window_s`). Memory is
bounded at any request rate: one bucket per second of the window, each holding counters and a latency histogram
(1 ms steps below 100 ms, then 1 % wide log steps), so a percentile is off by at most ~1 % (plus nginx's own
1 ms resolution of ``$request_time``).

Lines are parsed by one compiled regular expression over the fixed field order the driver renders
(``{"t":..,"s":..,"rt":..,"side":".."``), with ``json.loads`` as the fallback for any other order; lines neither
understands are counted as malformed and skipped.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cockpit.core.plan import Plan

CHUNK = 1 << 20
_HEAD = 64  # bytes of the file's start remembered to notice a truncate-and-rewrite
_FAST = re.compile(r'\{"t":(\d+)(?:\.\d*)?,"s":(\d+),"rt":(\d+(?:\.\d+)?),"side":"(blue|green)"')
_SIDES = ("blue", "green")
_LINEAR_MS = 100  # exact 1 ms buckets below this
_LOG_STEP = math.log(1.01)
_FUTURE_S = 300  # lines stamped further ahead of this clock are counted as malformed
_MARKER = re.compile(rb"^# cockpit-split .*\bgreen_percent=([0-9.]+)")


# ------------------------------------------------------------------------------------------------ the tail


class _Handle:
    __slots__ = ("fd", "ino", "dev", "offset", "buf", "head", "last", "retired_at", "skip_partial")

    def __init__(self, fd: int, st: os.stat_result, offset: int, skip_partial: bool):
        self.fd = fd
        self.ino = st.st_ino
        self.dev = st.st_dev
        self.offset = offset
        self.buf = b""
        self.head = b""
        self.last = b""  # the last bytes read (before `offset`): matched against a copytruncate copy
        self.retired_at: float | None = None
        self.skip_partial = skip_partial


class AccessLogTail:
    """Complete new lines of a log file, rotation-safe. Not thread-safe: one reader calls `read_lines`."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        from_end: bool = True,
        drain_grace_s: float = 2.0,
        copy_suffixes: Sequence[str] = (".1",),
    ):
        self.path = Path(path)
        self.drain_grace_s = drain_grace_s
        self.copy_suffixes = tuple(copy_suffixes)
        self.rotations = 0
        self.truncations = 0
        self.recovered_from_copy = 0
        self.dropped_partial = 0  # incomplete lines left in a file that was closed or truncated
        self._old: list[_Handle] = []
        self._cur: _Handle | None = self._open(from_end=from_end)

    def _open(self, from_end: bool) -> _Handle | None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        st = os.fstat(fd)
        offset = st.st_size if from_end else 0
        skip = False
        if offset > 0 and os.pread(fd, 1, offset - 1) != b"\n":
            skip = True  # opened in the middle of a line: skip to its end
        h = _Handle(fd, st, offset, skip)
        h.head = os.pread(fd, _HEAD, 0)
        h.last = os.pread(fd, min(_HEAD, offset), offset - min(_HEAD, offset))
        return h

    def read_lines(self) -> list[str]:
        """The complete lines written since the last call (without their newline)."""
        out: list[str] = []
        now = time.monotonic()
        for h in list(self._old):
            got = self._read(h, out)
            if not got and h.retired_at is not None and now - h.retired_at >= self.drain_grace_s:
                self._close(h)
                self._old.remove(h)
        cur = self._cur
        if cur is None:
            self._cur = self._open(from_end=False)
            if self._cur is not None:
                self._read(self._cur, out)
            return out
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None  # renamed away, not recreated yet: keep reading the old file
        if st is not None and (st.st_ino != cur.ino or st.st_dev != cur.dev):
            self._read(cur, out)  # the rest of the old file, then the new one from its start
            cur.retired_at = now
            self._old.append(cur)
            self.rotations += 1
            self._cur = self._open(from_end=False)
            if self._cur is not None:
                self._read(self._cur, out)
            return out
        self._check_truncated(cur, out)
        self._read(cur, out)
        return out

    def _check_truncated(self, h: _Handle, out: list[str]) -> None:
        size = os.fstat(h.fd).st_size
        truncated = size < h.offset
        if not truncated and h.head and h.offset >= len(h.head):
            truncated = os.pread(h.fd, len(h.head), 0) != h.head
        if not truncated:
            return
        self.truncations += 1
        self._recover_from_copy(h, out)
        if h.buf:
            self.dropped_partial += 1
        h.offset, h.buf, h.last, h.skip_partial = 0, b"", b"", False
        h.head = os.pread(h.fd, _HEAD, 0)

    def _recover_from_copy(self, h: _Handle, out: list[str]) -> None:
        """copytruncate: lines written after our last read are in the copy; read it from where we stood."""
        look = min(h.offset, _HEAD)
        for suffix in self.copy_suffixes:
            copy = self.path.with_name(self.path.name + suffix)
            try:
                fd = os.open(copy, os.O_RDONLY)
            except OSError:
                continue
            try:
                if os.fstat(fd).st_size < h.offset:
                    continue
                if look and os.pread(fd, look, h.offset - look) != h.last[-look:]:
                    continue
                probe = _Handle(fd, os.fstat(fd), h.offset, False)
                probe.buf = h.buf
                self._read(probe, out)
                h.buf = probe.buf
                self.recovered_from_copy += 1
                return
            finally:
                os.close(fd)

    def _read(self, h: _Handle, out: list[str]) -> bool:
        got = False
        while True:
            data = os.pread(h.fd, CHUNK, h.offset)
            if not data:
                return got
            got = True
            h.offset += len(data)
            h.last = data[-_HEAD:] if len(data) >= _HEAD else (h.last + data)[-_HEAD:]
            if len(h.head) < _HEAD:
                h.head = os.pread(h.fd, _HEAD, 0)
            data = h.buf + data if h.buf else data
            end = data.rfind(b"\n")
            if end < 0:
                h.buf = data
                continue
            h.buf = data[end + 1 :]
            lines = data[:end].decode("utf-8", "replace").split("\n")
            if h.skip_partial:
                lines = lines[1:]
                h.skip_partial = False
            out.extend(lines)

    def _close(self, h: _Handle) -> None:
        if h.buf:
            self.dropped_partial += 1
        os.close(h.fd)

    def close(self) -> None:
        for h in self._old:
            self._close(h)
        self._old.clear()
        if self._cur is not None:
            self._close(self._cur)
            self._cur = None

    def __enter__(self) -> AccessLogTail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------ the sample


@dataclass(frozen=True)
class SideStats:
    """One side's figures over the window (None where there were no requests)."""

    count: int
    rps: float
    error_rate: float | None  # % of responses that were 5xx
    client_error_rate: float | None  # % of responses that were 4xx
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    # % of responses that were 502, 503 or 504: the upstream (or its database) could not be reached, as the users
    # saw it (nginx answers 502 when it cannot connect to the upstream, the app 503 without its database)
    connection_failure_rate: float | None = None


@dataclass(frozen=True)
class TrafficSample:
    """What the access log says about the last `window_s` seconds, at `ts` (epoch seconds)."""

    ts: float
    window_s: float
    blue: SideStats
    green: SideStats
    overall: SideStats
    green_share: float | None  # observed % of requests served by green, over `share_window_s`
    malformed: int  # malformed lines skipped since the start
    lines: int  # lines read since the start
    share_window_s: float = (
        0.0  # the seconds the green share covers (shorter than window_s after a split change)
    )
    share_restarted: bool = False  # the share counts only since the last split change

    def side(self, name: str) -> SideStats:
        return self.green if name == "green" else self.blue

    def as_metrics(self) -> dict[str, float]:
        """Flat metric names for rules, gates and the journal; a figure without data is left out."""
        out: dict[str, float] = {}
        for name, s in (("blue", self.blue), ("green", self.green)):
            _put(out, name + ".", s)
            out[f"{name}.rps"] = s.rps
        _put(out, "", self.overall)
        out["throughput"] = self.overall.rps
        if self.green_share is not None:
            out["traffic_distribution"] = self.green_share
        out["access_log.window_s"] = self.window_s  # the window of rps, error rates and percentiles
        out["traffic_distribution.window_s"] = round(self.share_window_s, 1)
        out["traffic_distribution.restarted"] = 1.0 if self.share_restarted else 0.0
        out["access_log.malformed"] = float(self.malformed)
        return out


def _put(out: dict[str, float], prefix: str, s: SideStats) -> None:
    out[prefix + "requests"] = float(s.count)
    for key, value in (
        ("error_rate", s.error_rate),
        ("client_error_rate", s.client_error_rate),
        ("response_time_p50", s.p50_ms),
        ("response_time_p95", s.p95_ms),
        ("response_time_p99", s.p99_ms),
        ("connection_failure_rate", s.connection_failure_rate),
    ):
        if value is not None:
            out[prefix + key] = value


# ------------------------------------------------------------------------------------------------ the metrics


def latency_bucket(ms: float) -> int:
    """Histogram bucket of a latency: 1 ms steps below 100 ms, then 1 % wide steps."""
    if ms < _LINEAR_MS:
        return int(ms) if ms > 0 else 0
    return _LINEAR_MS + int(math.log(ms / _LINEAR_MS) / _LOG_STEP)


def bucket_value(idx: int) -> float:
    """The latency a bucket stands for (its middle)."""
    if idx < _LINEAR_MS:
        return float(idx)
    low = _LINEAR_MS * math.exp((idx - _LINEAR_MS) * _LOG_STEP)
    return low * (1.0 + 0.005)


_UNREACHABLE = frozenset((502, 503, 504))


class _Second:
    """Counters for one second: per side [count, 5xx, 4xx, 502/503/504] and a latency histogram."""

    __slots__ = ("counts", "hists")

    def __init__(self) -> None:
        self.counts = [0] * 8  # blue n, 5xx, 4xx, 502-504, then green's same four
        self.hists: tuple[dict[int, int], dict[int, int]] = ({}, {})


class AccessLogMetrics:
    """Per-side sliding-window figures from one or more access logs (one per balancer)."""

    def __init__(
        self,
        path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        window_s: float = 60.0,
        *,
        from_end: bool = True,
        split_files: Sequence[str | os.PathLike[str]] = (),
    ):
        paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
        self.split_files = [Path(f) for f in split_files]
        self._split_seen: tuple[bytes | None, ...] | None = None  # each include's green_percent, last read
        self.split_changed_at: float | None = None  # epoch seconds: when the last split change was written
        self.window_s = float(window_s)
        if self.window_s <= 0:
            raise ValueError("window_s must be positive")
        self.tails = [AccessLogTail(p, from_end=from_end) for p in paths]
        self.malformed = 0
        self.lines = 0
        self._seconds: dict[int, _Second] = {}
        self._max_seconds = int(math.ceil(self.window_s)) + 2
        self._started = time.time()

    @classmethod
    def from_plan(cls, plan: Plan) -> AccessLogMetrics | None:
        """Metrics over every balancer's access log (paths relative to the plan), with the plan's window;
        None when no balancer has an access log."""
        paths = [plan.path(b.access_log) for b in plan.traffic.balancers if b.access_log]
        includes = [plan.path(b.include) for b in plan.traffic.balancers if b.include]
        return cls(paths, window_s=float(plan.traffic.window), split_files=includes) if paths else None

    def ingest(self, lines: Iterable[str]) -> None:
        """Count lines (already split, without newlines) into the per-second buckets."""
        seconds = self._seconds
        fast = _FAST.match
        cur_sec = -1
        counts: list[int] = []
        hists: tuple[dict[int, int], dict[int, int]] = ({}, {})
        n = 0
        bad = 0
        for line in lines:
            n += 1
            m = fast(line)
            if m is not None:
                t_s, st_s, rt_s, side_s = m.groups()
                sec = int(t_s)
                status = int(st_s)
                ms = float(rt_s) * 1000.0
                g = side_s == "green"
            else:
                rec = _slow_parse(line)
                if rec is None:
                    if line:
                        bad += 1
                    else:
                        n -= 1
                    continue
                sec, status, ms, g = rec
            if sec != cur_sec:
                slot = seconds.get(sec)
                if slot is None:
                    if sec > time.time() + _FUTURE_S:  # a clock far ahead would push the whole window out
                        bad += 1
                        cur_sec = -1
                        continue
                    slot = seconds[sec] = _Second()
                    if len(seconds) > self._max_seconds:
                        self._prune(max(seconds))
                        slot = seconds.get(sec) or _Second()  # a line older than the window lands nowhere
                cur_sec = sec
                counts = slot.counts
                hists = slot.hists
            base = 4 if g else 0
            counts[base] += 1
            if status >= 500:
                counts[base + 1] += 1
                if status in _UNREACHABLE:
                    counts[base + 3] += 1
            elif status >= 400:
                counts[base + 2] += 1
            idx = int(ms) if ms < _LINEAR_MS else latency_bucket(ms)
            h = hists[1 if g else 0]
            h[idx] = h.get(idx, 0) + 1
        self.lines += n
        self.malformed += bad

    def _prune(self, newest: float) -> None:
        oldest_kept = int(newest - self.window_s)
        for sec in [s for s in self._seconds if s < oldest_kept]:
            del self._seconds[sec]

    def watch_split(self) -> None:
        """Note a split change: a balancer's include now says another green_percent (its mtime is when)."""
        seen: list[bytes | None] = []
        written = 0.0
        for path in self.split_files:
            try:
                with open(path, "rb") as f:
                    m = _MARKER.match(f.readline(256))
                written = max(written, path.stat().st_mtime)
            except OSError:
                m = None
            seen.append(m.group(1) if m else None)
        now = tuple(seen)
        if self._split_seen is not None and now != self._split_seen:
            self.split_changed_at = written or time.time()
        self._split_seen = now

    def poll(self, now: float | None = None) -> TrafficSample:
        """Read what is new in the log(s) and return the figures of the window ending at `now`."""
        if self.split_files:
            self.watch_split()
        for tail in self.tails:
            lines = tail.read_lines()
            if lines:
                self.ingest(lines)
        return self.sample(now)

    def sample(self, now: float | None = None) -> TrafficSample:
        now = time.time() if now is None else now
        self._prune(now)
        first = now - self.window_s
        span = max(1.0, min(self.window_s, now - self._started))
        # the share: from the first whole second after the last split change (requests of that second may have
        # met either split), up to the whole window
        restarted = self.split_changed_at is not None and int(self.split_changed_at) + 1 > first
        share_from = int(self.split_changed_at) + 1 if restarted else first  # type: ignore[arg-type]
        counts = [0] * 8
        share_counts = [0, 0]  # blue, green since share_from
        hists: tuple[dict[int, int], dict[int, int]] = ({}, {})
        for sec, slot in self._seconds.items():
            if sec + 1 <= first or sec > now:
                continue
            if sec >= share_from:
                share_counts[0] += slot.counts[0]
                share_counts[1] += slot.counts[4]
            for i, c in enumerate(slot.counts):
                counts[i] += c
            for side in (0, 1):
                h = hists[side]
                for k, v in slot.hists[side].items():
                    h[k] = h.get(k, 0) + v
        blue = _side_stats(counts[0:4], hists[0], span)
        green = _side_stats(counts[4:8], hists[1], span)
        both: dict[int, int] = dict(hists[0])
        for k, v in hists[1].items():
            both[k] = both.get(k, 0) + v
        overall = _side_stats([b + g for b, g in zip(counts[0:4], counts[4:8], strict=True)], both, span)
        total = share_counts[0] + share_counts[1]
        share = 100.0 * share_counts[1] / total if total else None
        share_window = max(0.0, min(self.window_s, now - share_from, now - self._started))
        return TrafficSample(
            now,
            self.window_s,
            blue,
            green,
            overall,
            share,
            self.malformed,
            self.lines,
            share_window,
            restarted,
        )

    @property
    def dropped_partial(self) -> int:
        return sum(t.dropped_partial for t in self.tails)

    def close(self) -> None:
        for tail in self.tails:
            tail.close()


def _side_stats(counts: Sequence[int], hist: dict[int, int], span: float) -> SideStats:
    """One side's figures from its counters: requests, 5xx, 4xx, 502/503/504."""
    n, e5, e4, unreachable = counts
    if n == 0:
        return SideStats(0, 0.0, None, None, None, None, None)
    p50, p95, p99 = percentiles(hist, (0.50, 0.95, 0.99))
    return SideStats(n, n / span, 100.0 * e5 / n, 100.0 * e4 / n, p50, p95, p99, 100.0 * unreachable / n)


def percentiles(hist: dict[int, int], qs: Sequence[float]) -> list[float | None]:
    """Nearest-rank percentiles (0 < q <= 1) of a latency histogram, in ms."""
    total = sum(hist.values())
    if not total:
        return [None for _ in qs]
    keys = sorted(hist)
    out: list[float | None] = []
    for q in qs:
        rank = max(1, math.ceil(q * total))
        cum = 0
        for k in keys:
            cum += hist[k]
            if cum >= rank:
                out.append(bucket_value(k))
                break
    return out


def _slow_parse(line: str) -> tuple[int, int, float, bool] | None:
    """Any JSON object with t, s, rt and side (blue or green); None when the line is not one."""
    if not line.startswith("{"):
        return None
    try:
        rec = json.loads(line)
        side = rec["side"]
        if side not in _SIDES:
            return None
        t = float(rec["t"])
        status = int(rec["s"])
        rt = float(rec["rt"])
    except (ValueError, KeyError, TypeError):
        return None
    if not (math.isfinite(t) and math.isfinite(rt)) or rt < 0:
        return None
    return int(t), status, rt * 1000.0, side == "green"
