"""Headless Chromium (Debian's package) driven through the DevTools protocol, to read what a `cockpit serve` page
shows. textual-serve draws the terminal with xterm.js on a canvas, so the page's DOM holds no text: a script
added before the page loads keeps a hand on each xterm Terminal (it notices the `_core` every Terminal sets in
its constructor) and reads its buffer, line by line, as the person would see it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
]

# Object.prototype gets a `_core` setter: the first assignment on any object defines its own property (so nothing
# else changes) and, when the object is an xterm Terminal (it has loadAddon), keeps it.
HOOK = """
(() => {
  window.__xterms = [];
  Object.defineProperty(Object.prototype, "_core", {
    configurable: true,
    set(value) {
      Object.defineProperty(this, "_core", {value, writable: true, configurable: true, enumerable: true});
      if (typeof this.loadAddon === "function") window.__xterms.push(this);
    },
  });
  window.__screenText = () => window.__xterms.map((t) => {
    const b = t.buffer.active, lines = [];
    for (let y = 0; y < t.rows; y++) { const l = b.getLine(b.viewportY + y); lines.push(l ? l.translateToString(true) : ""); }
    return lines.join("\\n");
  }).join("\\n---\\n");
})();
"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """`with Browser(tmp) as b: b.open(url); b.wait_for_text(...)`."""

    def __init__(self, folder: Path, size: tuple[int, int] = (1600, 1000)):
        self.folder = folder
        self.size = size
        self.proc: subprocess.Popen[bytes] | None = None
        self.loop = asyncio.new_event_loop()
        self.session: aiohttp.ClientSession | None = None
        self.ws: Any = None
        self.ids = itertools.count(1)

    def __enter__(self) -> Browser:
        binary = chromium()
        assert binary, "chromium is not installed (scripts/setup installs it)"
        profile = self.folder / "chromium-profile"
        profile.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                binary,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={self.size[0]},{self.size[1]}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        self.loop.run_until_complete(self._connect(port))
        return self

    async def _connect(self, port: int) -> None:
        self.session = aiohttp.ClientSession()
        deadline = time.monotonic() + 30
        while True:
            async with self.session.get(f"http://127.0.0.1:{port}/json/list") as r:
                pages = [t for t in await r.json() if t.get("type") == "page"]
            if pages or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        self.ws = await self.session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        await self._call("Page.enable")
        await self._call("Page.addScriptToEvaluateOnNewDocument", source=HOOK)

    async def _call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        await self.ws.send_str(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads((await self.ws.receive()).data)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def open(self, url: str) -> None:
        self.loop.run_until_complete(self._call("Page.navigate", url=url))

    def evaluate(self, expression: str) -> Any:
        result = self.loop.run_until_complete(
            self._call("Runtime.evaluate", expression=expression, returnByValue=True)
        )
        return result.get("result", {}).get("value")

    def text(self) -> str:
        """What the page's terminal(s) show now ("" before the first one)."""
        return self.evaluate("window.__screenText ? window.__screenText() : ''") or ""

    def wait_for_text(self, *needles: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            shown = self.text()
            if all(n in shown for n in needles):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"the page never showed {needles}; it shows:\n{shown}")
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            if self.ws is not None:
                await self.ws.close()
            if self.session is not None:
                await self.session.close()

        self.loop.run_until_complete(close())
        self.loop.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
