"""Notifications delivered to a real HTTP server (webhook) and a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from cockpit.core.plan import Alerts, Email, Webhook
from cockpit.core.redact import register_secret
from cockpit.drivers.notify import DeliveryResult, Notifier


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.envelopes.append(envelope)
        return "250 OK"

    def messages(self) -> list[EmailMessage]:
        return [message_from_bytes(e.original_content, policy=policy.default) for e in self.envelopes]


class BoundController(Controller):
    """aiosmtpd's Controller on a port the kernel picked (bound before start, so no race for a free port)."""

    def __init__(self, handler: object, **kw: object) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        super().__init__(handler, hostname="127.0.0.1", port=self._sock.getsockname()[1], **kw)

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., tuple[BoundController, Inbox]]]:
    started: list[BoundController] = []

    def start(**kw: object) -> tuple[BoundController, Inbox]:
        inbox = Inbox()
        controller = BoundController(inbox, **kw)
        controller.start()
        started.append(controller)
        return controller, inbox

    yield start
    for c in started:
        c.stop()


def email_to(port: int, **kw: object) -> Email:
    kw.setdefault("min_level", "warning")
    return Email(
        to=["sre@example.test", "lead@example.test"],
        sender="cockpit@example.test",
        smtp_host="127.0.0.1",
        smtp_port=port,
        **kw,
    )  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------- webhook


def test_webhook_delivers_slack_compatible_json(http_server):
    n = Notifier(Alerts(webhook=Webhook(url=http_server.url("/ok"), min_level="info")))
    [r] = n.send(
        "critical", "Rollback completed", "SQLite system restored", {"duration_s": 4.2, "phase": "limited"}
    )
    assert r.ok and r.channel == "webhook" and r.status == 200 and r.attempts == 1 and r.error is None
    assert r.target == f"http://127.0.0.1:{http_server.port}/\u2026"
    [req] = http_server.requests
    assert req.method == "POST" and req.path == "/ok"
    assert req.headers["Content-Type"] == "application/json"
    body = req.json()
    assert body["text"].startswith("\U0001f6a8 [CRITICAL] Rollback completed\nSQLite system restored")
    assert "duration_s: 4.2" in body["text"] and "phase: limited" in body["text"]
    assert body["cockpit"]["level"] == "critical"
    assert body["cockpit"]["title"] == "Rollback completed"
    assert body["cockpit"]["fields"] == {"duration_s": "4.2", "phase": "limited"}


def test_webhook_retries_once_after_a_server_error(http_server):
    n = Notifier(Alerts(webhook=Webhook(url=http_server.url("/flaky/1/x"), min_level="info")))
    [r] = n.send("warning", "t", "x")
    assert r.ok and r.attempts == 2 and r.status == 200
    assert http_server.hits("/flaky/1/x") == 2


def test_webhook_gives_up_after_one_retry(http_server):
    n = Notifier(Alerts(webhook=Webhook(url=http_server.url("/status/502"), min_level="info")))
    [r] = n.send("warning", "t", "x")
    assert not r.ok and r.attempts == 2 and r.status == 502 and r.error.startswith("HTTP 502")
    assert http_server.hits("/status/502") == 2


def test_webhook_does_not_retry_a_client_error(http_server):
    n = Notifier(Alerts(webhook=Webhook(url=http_server.url("/status/400"), min_level="info")))
    [r] = n.send("warning", "t", "x")
    assert not r.ok and r.attempts == 1 and r.status == 400
    assert http_server.hits("/status/400") == 1


def test_unreachable_webhook_fails_quickly(refused_url):
    started = time.monotonic()
    [r] = Notifier(Alerts(webhook=Webhook(url=refused_url, min_level="info")), timeout=2).send(
        "critical", "t", "x"
    )
    assert not r.ok and r.attempts == 2 and r.status is None
    assert "cannot reach the webhook" in r.error and "refused" in r.error.lower()
    assert time.monotonic() - started < 5


def test_a_webhook_that_never_answers_times_out(http_server):
    started = time.monotonic()
    n = Notifier(Alerts(webhook=Webhook(url=http_server.url("/hang"), min_level="info")), timeout=0.3)
    [r] = n.send("critical", "t", "x")
    assert not r.ok and r.attempts == 2 and r.error == "timed out after 0.3s"
    assert time.monotonic() - started < 5


def test_a_malformed_webhook_url_is_a_failed_result():
    [r] = Notifier(Alerts(webhook=Webhook(url="not a url", min_level="info"))).send("critical", "t", "x")
    assert not r.ok and r.error


# -------------------------------------------------------------------------------------------------- levels


def test_each_channel_respects_its_min_level(http_server, smtp_server):
    controller, inbox = smtp_server()
    alerts = Alerts(
        webhook=Webhook(url=http_server.url("/ok"), min_level="warning"),
        email=email_to(controller.port, min_level="critical"),
    )
    n = Notifier(alerts)
    assert n.send("info", "t", "x") == []
    assert not n.wants("info") and n.wants("warning")
    assert [r.channel for r in n.send("warning", "t", "x")] == ["webhook"]
    results = n.send("critical", "t", "x")
    assert [(r.channel, r.ok) for r in results] == [("webhook", True), ("email", True)]
    assert len(http_server.requests) == 2 and len(inbox.envelopes) == 1


def test_no_channels_no_results():
    assert Notifier(Alerts()).send("critical", "t", "x") == []


def test_unknown_level_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown alert level 'fatal'"):
        Notifier(Alerts()).send("fatal", "t", "x")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------- email


def test_email_is_delivered_with_level_and_title_in_the_subject(smtp_server):
    controller, inbox = smtp_server()
    n = Notifier(Alerts(email=email_to(controller.port)))
    [r] = n.send("critical", "Rollback completed", "SQLite system restored", {"reason": "error_rate_spike"})
    assert r == DeliveryResult("email", "sre@example.test, lead@example.test", True, latency_ms=r.latency_ms)
    [env] = inbox.envelopes
    assert env.mail_from == "cockpit@example.test"
    assert env.rcpt_tos == ["sre@example.test", "lead@example.test"]
    [msg] = inbox.messages()
    assert msg["Subject"] == "[cockpit] CRITICAL: Rollback completed"
    assert msg["X-Cockpit-Level"] == "critical"
    body = msg.get_content()
    assert "SQLite system restored" in body and "reason: error_rate_spike" in body


def test_email_login_when_a_username_is_set(smtp_server):
    seen: list[LoginPassword] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        seen.append(auth_data)
        return AuthResult(success=auth_data == LoginPassword(b"alerts", b"s3cret-pass"), handled=False)

    controller, inbox = smtp_server(authenticator=authenticator, auth_require_tls=False)
    ok = Notifier(Alerts(email=email_to(controller.port, username="alerts", password="s3cret-pass")))
    [r] = ok.send("critical", "t", "x")
    assert r.ok and len(inbox.envelopes) == 1
    assert seen == [LoginPassword(b"alerts", b"s3cret-pass")]
    bad = Notifier(Alerts(email=email_to(controller.port, username="alerts", password="wrong-pass")))
    [r] = bad.send("critical", "t", "x")
    assert not r.ok and "SMTPAuthenticationError" in r.error
    assert len(inbox.envelopes) == 1


def test_email_password_is_not_sent_in_clear_text_to_a_remote_host():
    mail = Email(to=["a@example.test"], smtp_host="smtp.example.test", username="u", password="p4ssword")
    [r] = Notifier(Alerts(email=mail)).send("critical", "t", "x")
    assert not r.ok and r.error.startswith("refusing to send the SMTP password unencrypted")


def test_starttls_against_a_server_without_it_fails_cleanly(smtp_server):
    controller, inbox = smtp_server()
    [r] = Notifier(Alerts(email=email_to(controller.port, starttls=True))).send("critical", "t", "x")
    assert not r.ok and "STARTTLS extension not supported" in r.error
    assert inbox.envelopes == []


def test_unreachable_smtp_fails_quickly(refused_url):
    port = urlsplit(refused_url).port
    started = time.monotonic()
    [r] = Notifier(Alerts(email=email_to(port)), timeout=2).send("critical", "t", "x")
    assert not r.ok and "refused" in r.error.lower()
    assert time.monotonic() - started < 5


def test_an_smtp_server_that_never_greets_times_out():
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # connections complete in the backlog, nobody ever answers
    try:
        [r] = Notifier(Alerts(email=email_to(silent.getsockname()[1])), timeout=0.3).send(
            "critical", "t", "x"
        )
    finally:
        silent.close()
    assert not r.ok and r.error.endswith("timed out after 0.3s")


# ------------------------------------------------------------------------------------------------- secrets


def test_secrets_never_leave_the_process(http_server, smtp_server):
    register_secret("tok-7Hq2-zzz-SECRET")
    controller, inbox = smtp_server()
    n = Notifier(
        Alerts(webhook=Webhook(url=http_server.url("/ok"), min_level="info"), email=email_to(controller.port))
    )
    results = n.send(
        "critical",
        "Rollback: postgresql://app:hunter2@db.neon.tech/main unreachable",
        "token=abc123def and the API key tok-7Hq2-zzz-SECRET leaked into a log line",
        {"password": "pw-xyz-789", "dsn": "postgresql://u:sekr3t@h/d", "note": "secret=shh-42"},
    )
    assert all(r.ok for r in results) and len(results) == 2
    delivered = http_server.requests[0].body.decode() + inbox.envelopes[0].original_content.decode()
    for secret in ("hunter2", "abc123def", "tok-7Hq2-zzz-SECRET", "pw-xyz-789", "sekr3t", "shh-42"):
        assert secret not in delivered
    assert "db.neon.tech" in delivered  # the useful part of the text is still there
    assert "***" in delivered
