"""A real PostgreSQL server for the tests: Debian's binaries, initdb in a temp folder, a free
port on 127.0.0.1, password authentication, run as a user other than root (PostgreSQL refuses
root). Without the binaries the tests that need it skip, except where ZIMAGE_REQUIRE_POSTGRES=1 or
CI is set (`.ci/run` sets both), where they fail. `bench/replicas.py` starts its server with it
too, so this module imports neither pytest nor the test fixtures at load time.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

SUPERUSER = "zimage_admin"
APP_ROLE = "zimage_app"
# The user the server runs as when the tests run as root: Debian's package makes `postgres`;
# elsewhere this one is made.
SERVICE_USERS = ("postgres", "zimage-pg")
START_TIMEOUT_S = 60
# A server the tests throw away: nothing flushed to disk, and autovacuum looks every second (so
# a test sees deleted rows vacuumed without waiting a minute).
_THROWAWAY_SETTINGS = (
    "-c",
    "fsync=off",
    "-c",
    "full_page_writes=off",
    "-c",
    "autovacuum_naptime=1",
)


def postgres_bin() -> Path | None:
    """The folder of initdb and postgres: Debian's newest, or the PATH's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _version(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


def require_postgres_bin() -> Path:
    """postgres_bin(), or the test skips (fails in CI) without it."""
    import pytest

    folder = postgres_bin()
    if folder is None:
        message = "PostgreSQL's binaries (initdb, postgres) are not installed"
        if os.environ.get("ZIMAGE_REQUIRE_POSTGRES") == "1" or os.environ.get("CI"):
            pytest.fail(message + ", and CI or ZIMAGE_REQUIRE_POSTGRES=1 needs them")
        pytest.skip(message)
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _service_user() -> pwd.struct_passwd | None:
    """Who the server runs as: None (this user) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in SERVICE_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            SERVICE_USERS[1],
        ],
        check=True,
    )
    return pwd.getpwnam(SERVICE_USERS[1])


class PostgresServer:
    """One server: `start()`, `kill()` (SIGKILL to every server process, as a crash), `stop()`.

    `durable=False` (the tests) runs with _THROWAWAY_SETTINGS; a benchmark passes True for
    PostgreSQL's defaults, so that every commit waits for the disk as in production.
    """

    def __init__(self, bin_dir: Path, durable: bool = False) -> None:
        self.bin_dir = bin_dir
        self.durable = durable
        self.user = _service_user()
        # Outside the tests' own temp folder, which is private to root.
        self.folder = Path(tempfile.mkdtemp(prefix="zimage-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.password = secrets.token_urlsafe(16)
        self.port = free_port()
        self._process: subprocess.Popen | None = None
        self._chown(self.folder)
        password_file = self.folder / "password"
        password_file.write_text(self.password)
        self._chown(password_file)
        self._run(
            str(bin_dir / "initdb"),
            "--pgdata",
            str(self.data),
            "--username",
            SUPERUSER,
            "--pwfile",
            str(password_file),
            "--auth",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--no-instructions",
        )
        password_file.unlink()

    def _chown(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def _as_service_user(self) -> dict:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def _run(self, *command: str) -> None:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=120, **self._as_service_user()
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr

    def start(self) -> None:
        """Serve on self.port (the same port again after a kill) until it accepts logins."""
        log = open(self.log, "ab")  # noqa: SIM115 - handed to the server process
        self._chown(self.log)
        self._process = subprocess.Popen(
            [
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                "",
                "-c",
                "listen_addresses=127.0.0.1",
                *([] if self.durable else _THROWAWAY_SETTINGS),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **self._as_service_user(),
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                psycopg.connect(self.url("postgres", SUPERUSER), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        "PostgreSQL did not start:\n" + self.log.read_text()[-3000:]
                    ) from None
                time.sleep(0.2)

    def kill(self) -> None:
        """Every server process killed at once, as in a crash (the next start recovers)."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
            # The backends are in the same process group; wait until none is left.
            deadline = time.monotonic() + 10
            while _group_alive(self._process.pid) and time.monotonic() < deadline:
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str, role: str = APP_ROLE) -> str:
        return f"postgresql://{role}:{self.password}@127.0.0.1:{self.port}/{database}"

    def admin(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.url(database, SUPERUSER), autocommit=True)

    def new_database(self) -> str:
        """A fresh database owned by the app's own role (not a superuser); its URL."""
        name = f"zimage_{uuid.uuid4().hex[:12]}"
        with self.admin() as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)
            ).fetchone()
            if not exists:
                connection.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(APP_ROLE), sql.Literal(self.password)
                    )
                )
            connection.execute(f"CREATE DATABASE {name} OWNER {APP_ROLE}")
        return self.url(name)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
