"""Alerts: the webhook answers a test message, and the SMTP server accepts the login.

The webhook gets one real message through the notify driver, marked as a test (`"test": true` in its JSON, the
title "cockpit preflight test", level info whatever the channel's `min_level`): the only thing a preflight sends.
With `--no-test-message` nothing is posted: the webhook's host is resolved and a TCP connection opened, and the
check says the message was skipped.

The e-mail check sends no mail, with or without `--no-test-message`: it opens the session the driver opens
(connect, EHLO, STARTTLS when configured, login when a username is set) and QUITs. A mail to the alert list at
every preflight would teach people to ignore it; the login is what fails on the day (a rotated password, a port
closed by a firewall), and the recipients are checked by the server only at RCPT, which the driver does on a real
alert.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from urllib.parse import urlsplit

from cockpit.control.preflight import Context
from cockpit.core.checks import FAIL, PASS, WARN, Check
from cockpit.core.plan import Alerts, Email, Webhook
from cockpit.core.redact import redact_text
from cockpit.drivers.notify import Notifier, SmtpRefused, smtp_error, smtp_session

TEST_TITLE = "cockpit preflight test"


def checks(ctx: Context) -> list[Check]:
    alerts = ctx.plan.alerts
    if alerts.webhook is None and alerts.email is None:
        return [
            Check(
                "alerts",
                "channels",
                WARN,
                "no webhook and no e-mail",
                "set alerts.webhook or alerts.email: an automatic rollback should wake someone",
            )
        ]
    out = []
    if alerts.webhook is not None:
        out.append(_webhook(ctx, alerts.webhook) if ctx.test_message else _reachable(ctx, alerts.webhook))
    if alerts.email is not None:
        out.append(_login(ctx, alerts.email))
    return out


def _webhook(ctx: Context, hook: Webhook) -> Check:
    notifier = Notifier(Alerts(webhook=hook.model_copy(update={"min_level": "info"})), timeout=ctx.timeout)
    [r] = notifier.send(
        "info",
        TEST_TITLE,
        f"A test from `cockpit preflight` for plan {ctx.plan.name}: nothing to do.",
        {"plan": ctx.plan.name},
        test=True,
    )
    if r.ok:
        return Check(
            "alerts", "webhook", PASS, f"{r.target} answered HTTP {r.status} in {r.latency_ms:.0f} ms (test)"
        )
    return Check(
        "alerts",
        "webhook",
        FAIL,
        f"{r.target}: {r.error}",
        "fix alerts.webhook.url or the receiver; --no-test-message only checks that it is reachable",
    )


def _reachable(ctx: Context, hook: Webhook) -> Check:
    try:
        parts = urlsplit(hook.url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        return Check("alerts", "webhook", FAIL, f"not a URL: {exc}", "fix alerts.webhook.url")
    if not host or parts.scheme not in ("http", "https"):
        return Check("alerts", "webhook", FAIL, "not an http(s) URL", "fix alerts.webhook.url")
    where = f"{parts.scheme}://{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=ctx.timeout):
            pass
    except OSError as exc:
        return Check(
            "alerts",
            "webhook",
            FAIL,
            f"{where}: {redact_text(str(exc))}",
            "fix alerts.webhook.url or the receiver (or the network between)",
        )
    return Check("alerts", "webhook", PASS, f"{where} accepts connections; test message skipped")


def _login(ctx: Context, mail: Email) -> Check:
    where = f"{mail.smtp_host}:{mail.smtp_port}"
    did = "login accepted" if mail.username else "session opened (no username: no login)"
    try:
        with smtp_session(mail, ctx.timeout) as smtp:
            tls = "TLS" if isinstance(smtp.sock, ssl.SSLSocket) else "no TLS"
    except SmtpRefused as exc:
        return Check("alerts", "smtp", FAIL, str(exc), "set alerts.email.starttls: true (or port 465)")
    except smtplib.SMTPAuthenticationError as exc:
        return Check(
            "alerts",
            "smtp",
            FAIL,
            f"{where}: login refused ({exc.smtp_code})",
            "fix alerts.email.username / password (from the environment)",
        )
    except (smtplib.SMTPException, OSError, ValueError) as exc:
        return Check(
            "alerts",
            "smtp",
            FAIL,
            redact_text(smtp_error(mail, exc, ctx.timeout)),
            "fix alerts.email.smtp_host / smtp_port / starttls",
        )
    return Check("alerts", "smtp", PASS, f"{where}: {did}, {tls}; no mail sent")
