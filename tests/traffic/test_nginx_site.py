"""The private nginx helper: daemon and foreground modes, test, reload, stop."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from cockpit.core.plan import Beta, Sticky
from cockpit.drivers.traffic.nginx import NginxDriver
from cockpit.drivers.traffic.nginx_site import NginxSiteError, PrivateNginx, free_port


@pytest.mark.parametrize("daemon", [True, False])
def test_start_reload_stop(tmp_path: Path, daemon: bool) -> None:
    site = PrivateNginx(tmp_path, free_port(), tmp_path / "split.conf", daemon=daemon)
    NginxDriver([site.balancer()], ["127.0.0.1:1"], ["127.0.0.1:2"], Sticky(), Beta()).prepare(0)
    assert "successful" in site.test()
    site.start()
    try:
        pid = site.pid()
        assert pid is not None and psutil.pid_exists(pid)
        before = site.worker_pids()
        assert before
        assert site.reload() > 0
        assert site.worker_pids() - before
        with pytest.raises(NginxSiteError, match="already runs"):
            site.start()
    finally:
        site.stop()
    assert site.pid() is None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_start_fails_with_nginx_message(tmp_path: Path) -> None:
    site = PrivateNginx(tmp_path, free_port(), tmp_path / "missing.conf")
    with pytest.raises(NginxSiteError, match="missing.conf"):
        site.test()
    with pytest.raises(NginxSiteError, match="missing.conf"):
        site.start()
    assert site.pid() is None
