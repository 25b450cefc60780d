"""A private PostgreSQL cluster that checks passwords, for tests that must see a wrong password refused.

The shared test server (TEST_POSTGRES_URL) trusts every login, so a login with an old password succeeds there. This
one is made by `initdb --auth=scram-sha-256` in a temporary directory, listens on 127.0.0.1 only (a free port, its
Unix socket in that directory), and is stopped (`pg_ctl stop -m immediate`) and removed afterwards, always.

`initdb` refuses to run as root: as root, the cluster's commands run as the `postgres` OS user (`runuser`). Nothing
missing is skipped: a missing binary or user fails the test with a message saying what to install.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

BINARIES = "/usr/lib/postgresql/*/bin"  # Debian's layout; PG_BINDIR overrides it
OS_USER = "postgres"  # who runs the cluster when the tests run as root
INITDB_SECONDS = 120
START_SECONDS = 60
STOP_SECONDS = 30


@dataclass(frozen=True)
class PrivateCluster:
    host: str
    port: int
    superuser: str
    password: str  # the superuser's
    directory: Path  # data/, its log and the Unix socket; removed afterwards

    def url(self, user: str | None = None, password: str | None = None, database: str = "postgres") -> str:
        """A DSN over TCP (so pg_hba.conf's password rules apply), as the superuser unless told otherwise."""
        user = self.superuser if user is None else user
        if password is None:
            password = self.password if user == self.superuser else ""
        return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{self.host}:{self.port}/{database}"

    @property
    def log(self) -> Path:
        return self.directory / "postgresql.log"


def binaries() -> Path:
    """The newest server's bin directory (holding initdb and pg_ctl)."""
    given = os.environ.get("PG_BINDIR")
    found = [Path(given)] if given else sorted(Path("/").glob(BINARIES.lstrip("/")), key=_version, reverse=True)
    for bindir in found:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    pytest.fail(
        f"no PostgreSQL server binaries (initdb, pg_ctl) under {given or BINARIES}: install the PostgreSQL server"
        " package (e.g. apt-get install postgresql) or set PG_BINDIR",
        pytrace=False,
    )


def _version(bindir: Path) -> tuple[int, ...]:
    text = bindir.parent.name
    return tuple(int(p) for p in text.split(".") if p.isdigit()) or (0,)


def _as_cluster_user() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs a cluster command, and the OS user it runs as when we are root."""
    if os.geteuid() != 0:
        return [], None
    try:
        user = pwd.getpwnam(OS_USER)
    except KeyError:
        pytest.fail(f"running as root, the private PostgreSQL cluster needs the {OS_USER!r} OS user", pytrace=False)
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.fail("running as root, the private PostgreSQL cluster needs runuser (util-linux)", pytrace=False)
    return [runuser, "-u", OS_USER, "--"], user


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(command: list[str], cwd: Path, timeout: float, what: str, log: Path | None = None) -> None:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"private PostgreSQL: {what} took more than {timeout} s{_log_tail(log)}", pytrace=False)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-2000:]
        pytest.fail(f"private PostgreSQL: {what} failed ({done.returncode}):\n{output}{_log_tail(log)}", pytrace=False)


def _log_tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    return "\n--- server log:\n" + log.read_text(errors="replace")[-2000:]


@contextmanager
def running_cluster() -> Iterator[PrivateCluster]:
    """Make, start, yield, then stop and remove a password-checking cluster (blocking; see private_postgres)."""
    bindir = binaries()
    prefix, owner = _as_cluster_user()
    directory = Path(tempfile.mkdtemp(prefix="mp-private-pg-"))
    data, log = directory / "data", directory / "postgresql.log"
    try:
        os.chmod(directory, 0o700)
        password = secrets.token_urlsafe(24)
        pwfile = directory / "pwfile"
        pwfile.write_text(password + "\n")
        os.chmod(pwfile, 0o600)
        if owner is not None:
            os.chown(directory, owner.pw_uid, owner.pw_gid)
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        initdb = [
            str(bindir / "initdb"), "--pgdata", str(data), "--username", "postgres", "--auth=scram-sha-256",
            f"--pwfile={pwfile}", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
        ]
        _run(prefix + initdb, directory, INITDB_SECONDS, "initdb")
        pwfile.unlink()
        for attempt in range(3):  # another process may take the free port before the server binds it
            port = _free_port()
            with (data / "postgresql.conf").open("a") as conf:  # the last setting of a name wins
                conf.write(
                    f"\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{directory}'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                )
            start = [str(bindir / "pg_ctl"), "--pgdata", str(data), "--log", str(log), "--wait",
                     f"--timeout={START_SECONDS}", "start"]
            try:
                _run(prefix + start, directory, START_SECONDS + 10, "pg_ctl start", log)
                break
            except pytest.fail.Exception:
                if attempt == 2 or "could not bind" not in (log.read_text(errors="replace") if log.exists() else ""):
                    raise
                _stop(bindir, prefix, directory, data)
        yield PrivateCluster(host="127.0.0.1", port=port, superuser="postgres", password=password, directory=directory)
    finally:
        try:
            _stop(bindir, prefix, directory, data)
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def _stop(bindir: Path, prefix: list[str], directory: Path, data: Path) -> None:
    """pg_ctl stop -m immediate; if that fails, SIGKILL the postmaster this module started (its pid file)."""
    pid_file = data / "postmaster.pid"
    if not pid_file.exists():
        return
    stop = [str(bindir / "pg_ctl"), "--pgdata", str(data), "--mode=immediate", "--wait", f"--timeout={STOP_SECONDS}",
            "stop"]
    try:
        done = subprocess.run(prefix + stop, cwd=directory, capture_output=True, text=True, timeout=STOP_SECONDS + 10)
        if done.returncode == 0:
            return
    except subprocess.TimeoutExpired:
        pass
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass


@asynccontextmanager
async def private_postgres() -> AsyncIterator[PrivateCluster]:
    """`running_cluster()` for async tests and fixtures: its blocking steps run in a thread, off the event loop
    (which may be serving a FakeVercel or TokenKit meanwhile)."""
    stack = ExitStack()
    cluster = await asyncio.to_thread(stack.enter_context, running_cluster())
    try:
        yield cluster
    finally:
        await asyncio.to_thread(stack.close)
