"""A local TCP proxy that limits bandwidth (a token bucket per direction) and counts the bytes it carries.

The integrity bench reaches PostgreSQL through it to stand for a remote Neon over a ~100 Mbit/s link: every byte
a check moves is paid at that rate, and `bytes_up`/`bytes_down` are what crossed the socket (TCP payload, both
directions), the figure beside the check's own count.

    with ThrottleProxy("127.0.0.1", 5432, mbit=100) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/db"
        ...
        proxy.bytes_down, proxy.bytes_up

Runs its asyncio loop in a thread of its own, so that blocking clients (psycopg) can use it from the caller's.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

CHUNK = 64 * 1024


class _Bucket:
    """`rate` bytes per second, bursts of at most `burst` bytes; `take(n)` waits until n bytes may pass."""

    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    async def take(self, n: int) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= n:
                self.tokens -= n
                return
            await asyncio.sleep((n - self.tokens) / self.rate)


class ThrottleProxy:
    def __init__(self, host: str, port: int, mbit: float = 100.0):
        self.host, self.target_port = host, port
        self.rate = mbit * 1_000_000 / 8
        self.bytes_up = 0  # client -> server
        self.bytes_down = 0  # server -> client
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="throttle-proxy", daemon=True)
        self._server: asyncio.AbstractServer | None = None
        # one bucket per direction, shared by all connections: the link, not each connection, is limited
        self._up = _Bucket(self.rate, CHUNK)
        self._down = _Bucket(self.rate, CHUNK)

    def __enter__(self) -> ThrottleProxy:
        self._thread.start()
        self._ready.wait(10)
        if not self.port:
            raise RuntimeError("the throttling proxy did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def reset(self) -> None:
        self.bytes_up = self.bytes_down = 0

    @property
    def bytes(self) -> int:
        return self.bytes_up + self.bytes_down

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, self._up, "bytes_up"),
                self._pipe(up_reader, writer, self._down, "bytes_down"),
            )
        except asyncio.CancelledError:  # the proxy is closing
            pass

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, bucket: _Bucket, counter: str
    ) -> None:
        try:
            while data := await reader.read(CHUNK):
                await bucket.take(len(data))
                setattr(self, counter, getattr(self, counter) + len(data))
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
