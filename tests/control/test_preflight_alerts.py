"""The preflight's alerts area against a real HTTP receiver (the webhook) and a real SMTP server (aiosmtpd, with
a login): the test message is sent and marked, `--no-test-message` sends nothing, no mail is ever sent; then the
webhook down and the SMTP login refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.control.preflight_support import check, make_plan, run_json
from tests.drivers.conftest import LocalHTTP
from tests.drivers.test_notify import BoundController, Inbox

USER, PASSWORD = b"alerts", b"s3cret-pass"


@pytest.fixture
def receiver() -> Iterator[LocalHTTP]:
    srv = LocalHTTP()
    srv.thread.start()
    yield srv
    srv.release.set()
    srv.server.shutdown()
    srv.server.server_close()


@pytest.fixture
def smtp() -> Iterator[tuple[BoundController, Inbox, list[LoginPassword]]]:
    seen: list[LoginPassword] = []

    def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        seen.append(auth_data)
        return AuthResult(success=auth_data == LoginPassword(USER, PASSWORD), handled=False)

    inbox = Inbox()
    controller = BoundController(inbox, authenticator=authenticator, auth_require_tls=False)
    controller.start()
    yield controller, inbox, seen
    controller.stop()


def _plan(tmp_path: Path, pg_url: str, webhook: str, smtp_port: int, password: bytes = PASSWORD) -> Path:
    alerts = {
        "webhook": {"url": webhook, "min_level": "critical"},
        "email": {
            "to": ["sre@example.test"],
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port,
            "username": USER.decode(),
            "password": password.decode(),
        },
    }
    return make_plan(tmp_path, pg_url, f"alerts: {json.dumps(alerts)}\n", copied=True)


def test_the_test_message_is_sent_marked_and_no_mail(
    tmp_path: Path, pg_url: str, receiver: LocalHTTP, smtp, capsys: pytest.CaptureFixture[str]
) -> None:
    controller, inbox, seen = smtp
    plan = _plan(tmp_path, pg_url, receiver.url("/ok"), controller.port)
    code, doc = run_json(plan, capsys, test_message=True)
    assert code == 0, doc
    hook = check(doc, "alerts", "webhook")
    assert hook["status"] == "pass" and "HTTP 200" in hook["found"], hook
    [req] = receiver.requests  # one message, even though the channel's min_level is critical
    body = req.json()
    assert isinstance(body, dict) and body["test"] is True
    assert body["cockpit"]["title"] == "cockpit preflight test" and body["cockpit"]["level"] == "info"
    mail = check(doc, "alerts", "smtp")
    assert mail["status"] == "pass" and "login accepted" in mail["found"] and "no mail sent" in mail["found"]
    assert seen == [LoginPassword(USER, PASSWORD)]
    assert inbox.envelopes == []


def test_no_test_message_only_connects(
    tmp_path: Path, pg_url: str, receiver: LocalHTTP, smtp, capsys: pytest.CaptureFixture[str]
) -> None:
    controller, _inbox, _seen = smtp
    code, doc = run_json(_plan(tmp_path, pg_url, receiver.url("/ok"), controller.port), capsys)
    assert code == 0, doc
    hook = check(doc, "alerts", "webhook")
    assert hook["status"] == "pass" and "skipped" in hook["found"], hook
    assert receiver.requests == []


@pytest.mark.parametrize("test_message", [True, False])
def test_the_webhook_down_is_no_go(
    tmp_path: Path,
    pg_url: str,
    refused_url: str,
    smtp,
    capsys: pytest.CaptureFixture[str],
    test_message: bool,
) -> None:
    controller, _inbox, _seen = smtp
    code, doc = run_json(_plan(tmp_path, pg_url, refused_url, controller.port), capsys, test_message)
    assert code == 1
    hook = check(doc, "alerts", "webhook")
    assert hook["status"] == "fail" and "refused" in hook["found"].lower(), hook
    assert check(doc, "alerts", "smtp")["status"] == "pass"


def test_the_smtp_login_refused_is_no_go(
    tmp_path: Path, pg_url: str, receiver: LocalHTTP, smtp, capsys: pytest.CaptureFixture[str]
) -> None:
    controller, inbox, seen = smtp
    plan = _plan(tmp_path, pg_url, receiver.url("/ok"), controller.port, password=b"rotated-yesterday")
    code, doc = run_json(plan, capsys)
    assert code == 1
    mail = check(doc, "alerts", "smtp")
    assert mail["status"] == "fail" and "login refused (535)" in mail["found"], mail
    assert "rotated-yesterday" not in json.dumps(doc)  # the password never shows
    assert seen and inbox.envelopes == []


def test_no_channel_only_warns(tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run_json(make_plan(tmp_path, pg_url, copied=True), capsys)
    assert code == 0
    assert check(doc, "alerts", "channels")["status"] == "warn"


def test_starttls_then_login(
    tmp_path: Path, pg_url: str, receiver: LocalHTTP, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    """A real STARTTLS: aiosmtpd with a certificate for 127.0.0.1 made by openssl, trusted through SSL_CERT_FILE
    (what ssl.create_default_context reads), login only after TLS (auth_require_tls)."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make the server's certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    seen: list[LoginPassword] = []

    def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        seen.append(auth_data)
        return AuthResult(success=auth_data == LoginPassword(USER, PASSWORD), handled=False)

    controller = BoundController(
        Inbox(),
        authenticator=authenticator,
        tls_context=context,
        require_starttls=True,
        auth_require_tls=True,
    )
    controller.start()
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        plan = _plan(tmp_path, pg_url, receiver.url("/ok"), controller.port)
        plan.write_text(plan.read_text().replace('"smtp_host"', '"starttls": true, "smtp_host"'))
        code, doc = run_json(plan, capsys)
        mail = check(doc, "alerts", "smtp")
        assert code == 0 and mail["status"] == "pass" and "login accepted, TLS" in mail["found"], mail
        assert seen == [LoginPassword(USER, PASSWORD)]
        monkeypatch.delenv("SSL_CERT_FILE")  # the same server, its certificate no longer trusted
        code, doc = run_json(plan, capsys)
        mail = check(doc, "alerts", "smtp")
        assert code == 1 and mail["status"] == "fail" and "CERTIFICATE_VERIFY_FAILED" in mail["found"], mail
    finally:
        controller.stop()
