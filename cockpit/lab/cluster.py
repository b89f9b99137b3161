"""PostgreSQL for the lab: a private cluster (initdb + pg_ctl, loopback, trust) or a database on a given server.

With `ssl=True` the private cluster serves TLS with a throwaway CA and a server certificate for localhost and
127.0.0.1 (made with the `openssl` binary), so a client can connect as to Neon (`sslmode=require`) or check the
server fully (`sslmode=verify-full&sslrootcert=` the cluster's `ca_file`).

PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` user (its binaries run with that
uid), and its folder must be reachable by that user; when the lab's folder is not (a 0700 parent such as pytest's
temp root), the cluster lives in a folder of its own under the system temp dir, recorded in the lab's state.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from cockpit.lab.errors import LabError

INSTALL_HINT = (
    "install PostgreSQL: apt-get install -y postgresql (or set COCKPIT_LAB_PG_URL to an existing server)"
)


def find_pg_bindir(path: str | None = None, pattern: str = "/usr/lib/postgresql/*/bin") -> Path:
    """The folder holding initdb and pg_ctl: PATH, then `pg_config --bindir`, then /usr/lib/postgresql/*/bin."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb", path=path)
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    pg_config = shutil.which("pg_config", path=path)
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
            )
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass

    def version(p: str) -> tuple[int, ...]:
        name = Path(p).parent.name
        return tuple(int(x) for x in name.split(".") if x.isdigit())

    candidates += [Path(p) for p in sorted(glob.glob(pattern), key=version, reverse=True)] if pattern else []
    for c in candidates:
        if (c / "initdb").is_file() and (c / "pg_ctl").is_file():
            return c
    raise LabError(
        f"PostgreSQL server binaries (initdb, pg_ctl) not found on PATH, through pg_config or under "
        f"/usr/lib/postgresql/*/bin; {INSTALL_HINT}"
    )


@dataclass
class ClusterInfo:
    """What `down` needs to stop and remove a private cluster, also from another process."""

    base: str  # folder holding data/, socket/ and the log
    bindir: str
    port: int
    owner: str  # user running the server ("" = the current user)
    external: bool  # base lives outside the lab folder (removed on down)
    ca_file: str = ""  # the CA that signed the server's certificate ("" = SSL off)

    @property
    def data(self) -> Path:
        return Path(self.base) / "data"

    @property
    def socket_dir(self) -> Path:
        return Path(self.base) / "socket"

    @property
    def log(self) -> Path:
        return Path(self.base) / "postgresql.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def verify_full_url(self) -> str:
        """`url` checking the server's certificate against `ca_file` and its name (SSL clusters only)."""
        if not self.ca_file:
            raise LabError("this cluster was started without SSL: it has no CA file")
        return f"{self.url}?{urlencode({'sslmode': 'verify-full', 'sslrootcert': self.ca_file})}"

    def server_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


def _reachable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """Can `user` traverse every parent of `path` (o+x, or g+x with its group, or owner)?"""
    for parent in [path, *path.parents]:
        if not parent.exists():
            continue
        st = parent.stat()
        if st.st_uid == user.pw_uid:
            ok = st.st_mode & 0o100
        elif st.st_gid == user.pw_gid:
            ok = st.st_mode & 0o010
        else:
            ok = st.st_mode & 0o001
        if not ok:
            return False
    return True


def _run_as(info_owner: str, argv: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    kwargs: dict[str, object] = {}
    if info_owner:
        pw = pwd.getpwnam(info_owner)
        kwargs = {
            "user": pw.pw_uid,
            "group": pw.pw_gid,
            "extra_groups": [],
            "env": {**os.environ, "HOME": pw.pw_dir, "USER": info_owner, "LOGNAME": info_owner},
        }
    try:
        return subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            **kwargs,
        )  # type: ignore[call-overload]
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{Path(argv[0]).name} did not finish within {timeout:g}s") from exc


def _tail(text: str, lines: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def make_certificates(folder: Path, owner: str = "", days: int = 30) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for localhost and 127.0.0.1 signed by it: (ca, cert, key).

    Made by `owner` (the server's user), the key mode 0600, as PostgreSQL demands. The CA's own key is deleted once
    it has signed: nothing else is ever signed with it.
    """
    openssl = shutil.which("openssl")
    if not openssl:
        raise LabError(
            "openssl not found on PATH: install it (apt-get install -y openssl) or start without SSL"
        )
    folder.mkdir(parents=True, exist_ok=True)
    if owner:
        pw = pwd.getpwnam(owner)
        os.chown(folder, pw.pw_uid, pw.pw_gid)
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", str(days)]
    steps = [
        [
            openssl,
            "req",
            "-x509",
            *new_key,
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=cockpit lab CA",
        ],
        [
            openssl,
            "req",
            "-x509",
            *new_key,
            "-keyout",
            "server.key",
            "-out",
            "server.crt",
            "-subj",
            "/CN=localhost",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ],
    ]
    for argv in steps:
        out = _run_as(owner, argv, folder, 30)
        if out.returncode != 0:
            raise LabError(
                f"openssl could not make the lab's certificates:\n{_tail(out.stderr or out.stdout)}"
            )
    (folder / "ca.key").unlink()
    os.chmod(folder / "server.key", 0o600)
    return folder / "ca.crt", folder / "server.crt", folder / "server.key"


def init_cluster(lab_root: Path, port: int, ssl: bool = False) -> ClusterInfo:
    """initdb a new private cluster (trust on loopback) and configure it for the lab. Does not start it.

    `ssl`: serve TLS too (plain connections are still accepted, as on a default server); see `make_certificates`.
    """
    bindir = find_pg_bindir()
    owner = ""
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise LabError(
                "running as root, PostgreSQL needs an unprivileged user to run as and there is no "
                "'postgres' user; run the lab as a normal user or create one (apt-get install -y "
                "postgresql creates it)"
            ) from None
        owner = "postgres"
    base = lab_root / "pg"
    external = False
    # the socket path must stay under the kernel's 107-byte limit, and as root the owner must reach the folder
    if (owner and not _reachable_by(lab_root, pwd.getpwnam(owner))) or len(str(base / "socket")) > 80:
        base = Path(tempfile.mkdtemp(prefix="cockpit-lab-pg-"))
        external = True
    else:
        base.mkdir(parents=True, exist_ok=True)
    info = ClusterInfo(base=str(base), bindir=str(bindir), port=port, owner=owner, external=external)
    info.socket_dir.mkdir(exist_ok=True)
    if owner:
        pw = pwd.getpwnam(owner)
        for p in (base, info.socket_dir):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        if external:
            os.chmod(base, 0o700)
    out = _run_as(
        owner,
        [
            str(bindir / "initdb"),
            "-D",
            str(info.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
        base,
        120,
    )
    if out.returncode != 0:
        remove_cluster(info)
        raise LabError(f"initdb failed:\n{_tail(out.stderr or out.stdout)}")
    settings = {
        "port": str(port),
        "listen_addresses": "'127.0.0.1'",
        "unix_socket_directories": f"'{info.socket_dir}'",
        "fsync": "off",  # a lab: speed over durability
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "shared_buffers": "'32MB'",
        "max_connections": "60",
        "log_min_messages": "warning",
    }
    if ssl:
        try:
            ca, cert, key = make_certificates(base / "tls", owner)
        except LabError:
            remove_cluster(info)
            raise
        info.ca_file = str(ca)
        settings.update(ssl="on", ssl_cert_file=f"'{cert}'", ssl_key_file=f"'{key}'")
    with open(info.data / "postgresql.conf", "a", encoding="utf-8") as f:
        f.write("\n# cockpit lab\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    return info


def start_cluster(info: ClusterInfo, timeout: float = 60) -> None:
    out = _run_as(
        info.owner,
        [
            str(Path(info.bindir) / "pg_ctl"),
            "-D",
            str(info.data),
            "-l",
            str(info.log),
            "-w",
            "-t",
            str(int(timeout)),
            "start",
        ],
        Path(info.base),
        timeout + 10,
    )
    if out.returncode != 0:
        log = ""
        try:
            log = _tail(info.log.read_text(errors="replace"))
        except OSError:
            pass
        raise LabError(
            f"PostgreSQL did not start on 127.0.0.1:{info.port}:\n{_tail(out.stderr or out.stdout)}\n{log}"
        )


def stop_cluster(info: ClusterInfo, timeout: float = 30) -> None:
    """`pg_ctl stop -m fast`; if that fails (binaries gone, state odd), signal the postmaster itself."""
    if not info.data.exists():
        return
    pid = info.server_pid()
    if pid is None:
        return
    out = _run_as(
        info.owner,
        [
            str(Path(info.bindir) / "pg_ctl"),
            "-D",
            str(info.data),
            "-m",
            "fast",
            "-w",
            "-t",
            str(int(timeout)),
            "stop",
        ],
        Path(info.base),
        timeout + 10,
    )
    if out.returncode == 0:
        return
    try:
        os.kill(pid, signal.SIGQUIT)  # immediate shutdown
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def remove_cluster(info: ClusterInfo) -> None:
    shutil.rmtree(info.base, ignore_errors=True)


# ------------------------------------------------------------------------------------------ external server


def create_lab_database(server_url: str) -> tuple[str, str]:
    """Create a fresh database for the lab on the server of `server_url`; returns (url of it, its name)."""
    name = f"cockpit_lab_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise LabError(
            f"cannot create the lab database on the server of COCKPIT_LAB_PG_URL: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
        ) from exc
    return with_database(server_url, name), name


def drop_lab_database(server_url: str, name: str) -> None:
    """Drop the lab's database, connecting through the URL's database or, if that one is gone, a maintenance one."""
    last: Exception | None = None
    for url in (server_url, with_database(server_url, "postgres"), with_database(server_url, "template1")):
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                return
        except psycopg.OperationalError as exc:  # cannot connect there: try the next way in
            last = exc
    raise LabError(
        f"cannot drop the lab database {name}: {str(last).strip().splitlines()[0] if last else ''}"
    )


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
