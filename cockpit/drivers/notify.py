"""Notifications: a webhook (Slack-compatible JSON) and e-mail (SMTP), each with its own minimum level.

`Notifier.send` never raises for a delivery problem and never waits without a bound: every network operation has
a timeout, the webhook is tried at most twice, the channels run side by side. Every title, text and field goes
through `cockpit.core.redact` before it leaves the process. What happened comes back as one `DeliveryResult` per
channel that the level selected.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from cockpit.core.plan import Alerts, Email, Webhook
from cockpit.core.redact import redact, redact_text

Level = Literal["info", "warning", "critical"]
LEVELS: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
_ICON = {"info": "\u2139\ufe0f", "warning": "\u26a0\ufe0f", "critical": "\U0001f6a8"}
_WEBHOOK_ATTEMPTS = 2  # one retry


@dataclass(frozen=True)
class DeliveryResult:
    """How one channel fared. `target` is safe to show (webhook: scheme and host only; e-mail: recipients).
    `status` is the webhook's last HTTP status; `error` is None when `ok`."""

    channel: Literal["webhook", "email"]
    target: str
    ok: bool
    attempts: int = 1
    status: int | None = None
    error: str | None = None
    latency_ms: float = 0.0


class Notifier:
    """Sends alerts to the channels of a plan's `alerts` section. `timeout` bounds each network operation
    (connect, each read or write, each SMTP command)."""

    def __init__(self, alerts: Alerts, timeout: float = 10.0, source: str | None = None) -> None:
        self.alerts = alerts
        self.timeout = float(timeout)
        self.source = source or f"cockpit@{socket.gethostname()}"

    def wants(self, level: Level) -> bool:
        """Whether any channel would deliver a message of `level`."""
        return any(_selected(ch.min_level, level) for ch in (self.alerts.webhook, self.alerts.email) if ch)

    def send(
        self,
        level: Level,
        title: str,
        text: str,
        fields: Mapping[str, Any] | None = None,
        *,
        test: bool = False,
    ) -> list[DeliveryResult]:
        """Deliver one alert to every channel whose `min_level` is at or below `level` (info < warning <
        critical). Returns one result per channel tried (empty when none was selected); never raises for a
        delivery failure. Raises ValueError for an unknown level (a programming error). A `test` message (the
        preflight's) says so: `"test": true` in the webhook's JSON, `[TEST]` and `X-Cockpit-Test` in a mail."""
        if level not in LEVELS:
            raise ValueError(f"unknown alert level {level!r}; expected one of {', '.join(LEVELS)}")
        message = _Message.build(
            level, redact_text(title), redact_text(text), fields or {}, self.source, test=test
        )
        jobs: list[Callable[[], DeliveryResult]] = []
        webhook, email = self.alerts.webhook, self.alerts.email
        if webhook is not None and _selected(webhook.min_level, level):
            jobs.append(functools.partial(self._webhook, webhook, message))
        if email is not None and _selected(email.min_level, level):
            jobs.append(functools.partial(self._email, email, message))
        if len(jobs) <= 1:
            return [job() for job in jobs]
        with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="cockpit-notify") as pool:
            futures = [pool.submit(job) for job in jobs]
            return [f.result() for f in futures]

    # --------------------------------------------------------------------------------------------- webhook

    def _webhook(self, hook: Webhook, message: _Message) -> DeliveryResult:
        target = _safe_url(hook.url)
        payload = json.dumps(message.webhook_payload(), default=str, ensure_ascii=False).encode("utf-8")
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        attempts = 0
        try:
            with httpx.Client(timeout=httpx.Timeout(self.timeout), follow_redirects=False) as client:
                for _ in range(_WEBHOOK_ATTEMPTS):
                    attempts += 1
                    status, error = None, None
                    try:
                        response = client.post(
                            hook.url,
                            content=payload,
                            headers={"Content-Type": "application/json", "User-Agent": "cockpit-notify"},
                        )
                    except httpx.TimeoutException:
                        error = f"timed out after {self.timeout:g}s"
                        continue
                    except httpx.TransportError as exc:
                        error = f"cannot reach the webhook: {exc}"
                        continue
                    status = response.status_code
                    if 200 <= status < 300:
                        break
                    error = f"HTTP {status}: {response.text[:200].strip()}"
                    if status < 500 and status != 429:  # the request itself is wrong: a retry won't help
                        break
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        return DeliveryResult(
            channel="webhook",
            target=target,
            ok=error is None,
            attempts=max(attempts, 1),
            status=status,
            error=redact_text(error) if error else None,
            latency_ms=(time.perf_counter() - started) * 1000.0,
        )

    # ---------------------------------------------------------------------------------------------- e-mail

    def _email(self, mail: Email, message: _Message) -> DeliveryResult:
        target = ", ".join(mail.to)
        started = time.perf_counter()

        def result(error: str | None) -> DeliveryResult:
            return DeliveryResult(
                channel="email",
                target=target,
                ok=error is None,
                error=redact_text(error) if error else None,
                latency_ms=(time.perf_counter() - started) * 1000.0,
            )

        if not mail.to:
            return result("no recipients ('to' is empty)")
        try:
            msg = message.email(mail)
            with smtp_session(mail, self.timeout) as smtp:
                refused = smtp.send_message(msg)
        except SmtpRefused as exc:
            return result(str(exc))
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            return result(smtp_error(mail, exc, self.timeout))
        if refused:
            return result("recipients refused: " + ", ".join(f"{r} ({c})" for r, (c, _m) in refused.items()))
        return result(None)


class SmtpRefused(ValueError):
    """The plan asks for something the cockpit will not do (a password in clear to a remote server)."""


@contextlib.contextmanager
def smtp_session(mail: Email, timeout: float) -> Iterator[smtplib.SMTP]:
    """An SMTP session as the plan sets it up: connect (TLS at once on port 465), EHLO, STARTTLS when asked, login
    when a username is set; QUIT on the way out. Raises SmtpRefused before connecting when the password would go
    unencrypted to a remote server, and smtplib's or the socket's errors (see `smtp_error`)."""
    implicit_tls = mail.smtp_port == 465
    if mail.username and not (mail.starttls or implicit_tls or _is_loopback(mail.smtp_host)):
        raise SmtpRefused(
            f"refusing to send the SMTP password unencrypted to {mail.smtp_host}; set starttls: true"
        )
    if implicit_tls:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            mail.smtp_host, mail.smtp_port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        smtp = smtplib.SMTP(mail.smtp_host, mail.smtp_port, timeout=timeout)
    with smtp:
        smtp.ehlo()
        if mail.starttls and not implicit_tls:
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if mail.username:
            smtp.login(mail.username, mail.password)
        yield smtp


def smtp_error(mail: Email, exc: BaseException, timeout: float) -> str:
    """What went wrong in an SMTP session, for a person (redact it before showing)."""
    # smtplib reports a read timeout as "SMTPServerDisconnected: ... timed out"
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        return f"SMTP {mail.smtp_host}:{mail.smtp_port}: timed out after {timeout:g}s"
    return f"SMTP {mail.smtp_host}:{mail.smtp_port}: {type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class _Message:
    """One alert, already redacted, in the shapes the channels need."""

    level: str
    title: str
    text: str
    fields: dict[str, str]
    source: str
    at: datetime
    test: bool = False

    @classmethod
    def build(
        cls, level: str, title: str, text: str, fields: Mapping[str, Any], source: str, test: bool = False
    ) -> _Message:
        masked = redact(dict(fields))  # masks values under secret-looking keys
        clean = {
            str(k): redact_text(v if isinstance(v, str) else json.dumps(v, default=str))
            for k, v in masked.items()
        }
        return cls(level, title, text, clean, redact_text(source), datetime.now(UTC), test)

    def lines(self) -> list[str]:
        return [f"{k}: {v}" for k, v in self.fields.items()]

    def webhook_payload(self) -> dict[str, Any]:
        head = f"{_ICON[self.level]} [{self.level.upper()}] {self.title}"
        body = "\n".join([head, self.text, *self.lines()]).strip()
        return {
            "text": body,  # what Slack (and most chat webhooks) display
            **({"test": True} if self.test else {}),
            "cockpit": {
                "level": self.level,
                "title": self.title,
                "text": self.text,
                "fields": self.fields,
                "source": self.source,
                "time": self.at.isoformat(timespec="seconds"),
            },
        }

    def email(self, mail: Email) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = f"[cockpit]{' [TEST]' if self.test else ''} {self.level.upper()}: {self.title}"
        msg["From"] = mail.sender
        msg["To"] = ", ".join(mail.to)
        msg["Date"] = formatdate(self.at.timestamp(), localtime=True)
        msg["Message-ID"] = make_msgid(domain=mail.sender.rpartition("@")[2] or None)
        msg["X-Cockpit-Level"] = self.level
        if self.test:
            msg["X-Cockpit-Test"] = "true"
        footer = f"-- \n{self.source}, {self.at.isoformat(timespec='seconds')}, level {self.level.upper()}"
        parts = [self.text, "\n".join(self.lines()), footer]
        msg.set_content("\n\n".join(p for p in parts if p) + "\n")
        return msg


def _selected(min_level: str, level: str) -> bool:
    return LEVELS[level] >= LEVELS.get(min_level, 0)


def _safe_url(url: str) -> str:
    """Scheme and host only: a webhook URL's path is itself a secret (Slack's token)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(invalid URL)"
    return f"{parts.scheme}://{host}{port}/\u2026" if parts.scheme else "(invalid URL)"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
