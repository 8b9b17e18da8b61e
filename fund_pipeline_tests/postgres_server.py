"""A throwaway PostgreSQL server on 127.0.0.1 for the tests that need one (`.ci/run` installs the package).

It runs from the Debian package's binaries in a temporary data directory of its own (the server's
user must reach it, so not under pytest's root-only folders), as the `postgres` user when the
tests run as root (initdb refuses root); it is stopped and its directory removed at the end.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple


class PostgresServer(NamedTuple):
    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL server's bin folder, None when no server is installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(command: list[str | Path]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode:
        raise RuntimeError(f"{' '.join(map(str, command))} failed ({done.returncode}): {done.stderr or done.stdout}")


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    binaries = server_binaries()
    if binaries is None:
        raise RuntimeError("no PostgreSQL server installed (apt-get install postgresql; .ci/run does it)")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="fund-pipeline-pg-"))
    if as_postgres:
        shutil.chown(root, "postgres")
    data, port = root / "data", _free_port()
    pg_ctl: list[str | Path] = [*as_postgres, binaries / "pg_ctl", "-D", data]
    try:
        _run([*as_postgres, binaries / "initdb", "-D", data, "-A", "trust", "-U", "postgres"])
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        _run([*pg_ctl, "-o", options, "-l", root / "server.log", "-w", "start"])
        yield PostgresServer("127.0.0.1", port, "postgres")
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def create_database(server: PostgresServer, name: str) -> str:
    """A new empty database on the server (dropped first if a test left one); its URL."""
    import psycopg2

    conn = psycopg2.connect(server.url("postgres"))
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return server.url(name)
