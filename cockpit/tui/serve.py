"""The cockpit's screen in a browser, read-only, through textual-serve (Textualize's own web front end for Textual).

`serve(plan_path, host, port, token)` runs an aiohttp server; every browser page gets its own process running
`python -m cockpit.tui.serve PLAN`: the same screen as `cockpit tui --read-only`, with `serving=True`, so no
key that acts exists (not dimmed: absent). It binds to loopback unless told otherwise.

With a token, every request but the page's static files needs it: `?token=T` on the page (which then sets a
same-site cookie that the page's websocket carries), or that cookie. Tokens are compared in constant time.
textual-serve starts each page's process through a shell; the command is built with `shlex.join`, so the plan's
path is one quoted word whatever it holds.
"""

from __future__ import annotations

import hmac
import ipaddress
import shlex
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from textual_serve.server import Server

COOKIE = "cockpit_token"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def app_command(plan_path: str | Path) -> str:
    """The shell command textual-serve runs for each page (one argument list, quoted)."""
    return shlex.join([sys.executable, "-m", "cockpit.tui.serve", str(Path(plan_path).resolve())])


class CockpitServer(Server):
    """textual-serve's Server with an optional access token in front of the page and its websocket."""

    def __init__(
        self, command: str, *, host: str, port: int, title: str, token: str = "", public_url: str = ""
    ):
        super().__init__(command, host=host, port=port, title=title, public_url=public_url or None)
        self.token = token

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        if self.token:
            app.middlewares.append(self._require_token)
        return app

    @web.middleware
    async def _require_token(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/static/"):
            return await handler(request)
        given = request.query.get("token") or request.cookies.get(COOKIE, "")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise web.HTTPUnauthorized(text="cockpit serve: this view needs its token (?token=...)\n")
        response = await handler(request)
        if request.query.get("token") and request.path == "/":
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict")
        return response

    async def on_startup(self, app: web.Application) -> None:
        where = self.public_url + ("/?token=…" if self.token else "/")
        self.console.print(f"cockpit: read-only view of the plan on {where} (Ctrl+C stops it)")


def serve(
    plan_path: str, *, host: str = "127.0.0.1", port: int = 8000, token: str = "", title: str = ""
) -> None:
    """Serve the read-only screen until interrupted (blocking)."""
    server = CockpitServer(
        app_command(plan_path), host=host, port=port, title=title or "cockpit", token=token
    )
    server.serve()


def main(argv: list[str] | None = None) -> int:
    """One browser page's process: the screen, read-only, without action keys."""
    from cockpit.core.plan import load_plan
    from cockpit.tui.app import CockpitApp

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m cockpit.tui.serve PLAN", file=sys.stderr)
        return 2
    app = CockpitApp(load_plan(args[0]), read_only=True, serving=True)
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    raise SystemExit(main())
