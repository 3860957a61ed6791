"""A throwaway PostgreSQL server for the tests: `initdb` in a temporary folder, `postgres` on a free loopback
port (its socket in that folder too), stopped and removed afterwards. It uses the system's server binaries
(Debian's `postgresql` package puts them in /usr/lib/postgresql/VERSION/bin). PostgreSQL refuses to run as
root, so under root the server runs as the `postgres` user (made by that package) or `nobody`."""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUPERUSER = "anisora"


def server_binaries() -> Path | None:
    """The folder of initdb, pg_ctl and postgres: on PATH, else Debian's newest version; None if absent."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(os.path.realpath(on_path)).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


class PostgresServer:
    def __init__(self, port: int):
        self.port = port
        self._names = itertools.count()

    def new_database(self) -> str:
        """A new, empty database on this server; returns its URL."""
        import psycopg

        name = f"studio_{os.getpid()}_{next(self._names)}"
        admin = f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname=postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{name}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_user() -> dict:
    """subprocess options that run the server as a user PostgreSQL accepts (not root)."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    raise RuntimeError("running as root, and there is no postgres or nobody user to run PostgreSQL as")


@contextmanager
def running_postgres(binaries: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL server for as long as the block runs (fsync off: its data is thrown away)."""
    as_user = _server_user()
    folder = Path(tempfile.mkdtemp(prefix="anisora-pg-"))
    if as_user:
        os.chown(folder, as_user["user"], as_user["group"])
    data, log = folder / "data", folder / "server.log"

    def run(*args: str) -> None:
        done = subprocess.run(args, cwd=folder, capture_output=True, text=True, **as_user)
        if done.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}{server_log}")

    try:
        initdb = (str(binaries / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust")
        run(*initdb, "-E", "UTF8", "--no-locale", "--no-sync")
        for attempt in itertools.count():  # another process may take the free port before the server does
            port = _free_port()
            options = f"-h 127.0.0.1 -p {port} -k {folder} -F -c max_connections=200"
            try:
                run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o", options, "start")
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        try:
            yield PostgresServer(port)
        finally:
            run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
