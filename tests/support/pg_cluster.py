"""A throwaway PostgreSQL cluster for tests: initdb + pg_ctl on 127.0.0.1, a free port, a temp folder.

Needs Debian's `postgresql` package (binaries in /usr/lib/postgresql/<major>/bin). PostgreSQL refuses to run
as root, so under root the cluster runs as the `postgres` system user (created by the package) via runuser.
Tests using it are skipped only when the binaries are absent.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def postgres_bindir() -> Path | None:
    """Folder of initdb/pg_ctl: from PATH, else the newest Debian install."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresCluster:
    host: str
    port: int
    user: str
    password: str
    dbname: str
    bindir: Path
    datadir: Path
    run_as: list[str]

    def dsn(self) -> str:
        return f"host={self.host} port={self.port} dbname={self.dbname} user={self.user} password={self.password}"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-h {self.host} -p {self.port} -k {self.datadir} -c fsync=off -c full_page_writes=off"
        self.pg_ctl("-o", options, "-l", str(self.datadir / "server.log"), "-w", "start")

    def stop(self) -> None:
        self.pg_ctl("-m", "immediate", "-w", "stop")


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install -y postgresql)")
    as_root = os.geteuid() == 0
    run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
    workdir = Path(tempfile.mkdtemp(prefix="cdp-pg-"))
    datadir = workdir / "data"
    pwfile = workdir / "pw"
    password = "test-" + os.urandom(6).hex()
    pwfile.write_text(password + "\n")
    if as_root:
        shutil.chown(workdir, "postgres")
        shutil.chown(pwfile, "postgres")
    cluster = PostgresCluster("127.0.0.1", free_port(), "cdp", password, "postgres", bindir, datadir, run_as)
    subprocess.run(
        [
            *run_as,
            str(bindir / "initdb"),
            "-D",
            str(datadir),
            "-U",
            "cdp",
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    cluster.start()
    try:
        yield cluster
    finally:
        try:
            cluster.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped by a test
        shutil.rmtree(workdir, ignore_errors=True)
