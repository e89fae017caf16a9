"""Study databases for the app tests: SQLite always, PostgreSQL when a server can be had.

PostgreSQL comes from ``SONOGAN_TEST_POSTGRES_URL`` (an existing server; each test gets its own
database) or, when Debian's server binaries (``initdb``, ``pg_ctl``) are installed, from a
throwaway cluster started in a temporary folder for the test session (as the ``postgres``
user when the tests run as root, since PostgreSQL refuses to run as root). Otherwise the
PostgreSQL cases skip with a message that says how to get a server.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from sonogan.serve.loadtest import free_port
from sonogan.study.create import CreatedStudy, StudyConfig, create_study

ENV_URL = "SONOGAN_TEST_POSTGRES_URL"
NO_SERVER = ("no PostgreSQL server: install Debian's postgresql (apt-get install -y postgresql; .ci/run does) "
             f"or set {ENV_URL}=postgresql://user@host:port/db")


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A server URL (maintenance database ``postgres``), or a skip."""
    if os.environ.get(ENV_URL):
        yield os.environ[ENV_URL]
        return
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip(NO_SERVER)
    if os.geteuid() == 0 and (shutil.which("runuser") is None or subprocess.run(["id", "postgres"], capture_output=True).returncode):
        pytest.skip("running as root without a 'postgres' user to start PostgreSQL as; " + NO_SERVER)
    root = Path(tempfile.mkdtemp(prefix="sonogan-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data, port = root / "data", free_port()
    try:
        subprocess.run(_as_postgres([initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]),
                       check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"a throwaway PostgreSQL cluster did not start ({exc}); " + NO_SERVER)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty study database of each backend."""
    if request.param == "sqlite":
        yield str(tmp_path / "study.db")
        return
    import psycopg

    server = request.getfixturevalue("postgres_server")
    name = "sonogan_test_" + secrets.token_hex(6)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield server.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def write_images(folder: Path, n: int, classes: list[str], seed: int, size: tuple[int, int]) -> list[Path]:
    """``n`` small random grey images in ``folder/<class>/`` (classes taken in turn)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / classes[i % len(classes)] / f"img_{seed}_{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@dataclass
class StudySetup:
    db: str
    created: CreatedStudy
    real: list[Path]
    synthetic: list[Path]


def make_study(db: str, root: Path, raters: list[str], n: int = 6, ratio: float = 0.5) -> StudySetup:
    real = write_images(root / "real", 8, ["cyst", "tumour"], seed=1, size=(24, 32))
    synthetic = write_images(root / "synthetic", 8, ["cyst", "tumour"], seed=2, size=(16, 16))
    cfg = StudyConfig(name="test study", n=n, ratio=ratio, raters=raters, seed=3, size=32)
    return StudySetup(db, create_study(db, root / "real", root / "synthetic", cfg), real, synthetic)


@pytest.fixture
def study(db_url: str, tmp_path: Path) -> StudySetup:
    """Six images (three real, three synthetic, classes cyst/tumour) and raters ana, ben, cleo."""
    return make_study(db_url, tmp_path, ["ana", "ben", "cleo"])
