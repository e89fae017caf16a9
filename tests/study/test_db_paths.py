"""``--db`` paths that cannot hold a study database: one line, exit 2, before any work, nothing created."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sonogan.errors import SonoganInputError
from sonogan.study.db import check_database, make_engine


def _refusal(db: str, must_exist: bool = False) -> str:
    with pytest.raises(SonoganInputError) as info:
        check_database(db, must_exist)
    assert len(str(info.value).splitlines()) == 1
    return str(info.value)


def test_unusable_paths_are_refused_and_nothing_is_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.db").write_text("not a database")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert f"its parent {tmp_path / 'file'} is a file, not a folder" in _refusal(str(tmp_path / "file" / "sub" / "s.db"))
    assert "nothing can be written in /proc " in _refusal("/proc/s.db")
    assert _refusal(str(tmp_path / "folder")).endswith("folder: is not a regular file; fix: pass --db a file in a "
                                                       "writable folder (e.g. runs/reader-study.db) or a postgresql:// URL")
    assert "notes.db: is not a SQLite database" in _refusal(str(tmp_path / "notes.db"))
    assert "no study database here" in _refusal(str(tmp_path / "new.db"), must_exist=True)
    assert "unsupported database kind 'mysql'" in _refusal("mysql://u@localhost/db")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_usable_paths_pass(tmp_path: Path) -> None:
    check_database(str(tmp_path / "new" / "deeper" / "s.db"), must_exist=False)
    check_database("postgresql://u@localhost/db", must_exist=True)  # a server is asked when connecting
    make_engine(str(tmp_path / "s.db")).dispose()
    check_database(str(tmp_path / "s.db"), must_exist=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]


def test_a_server_that_does_not_answer_is_one_line() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(SonoganInputError) as info:
        make_engine("postgresql://nobody:secret@127.0.0.1:1/none")  # port 1: refused at once
    message = str(info.value)
    assert message.startswith("postgresql+psycopg://nobody:***@127.0.0.1:1/none: cannot open the study database (")
    assert "secret" not in message and len(message.splitlines()) == 1


def test_cli_checks_the_db_before_any_work(cli, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    bad = str(tmp_path / "file" / "s.db")
    # --real does not exist either: the --db line comes first, before any image is looked at
    code, out, err = cli(["study", "create", "--real", str(tmp_path / "none"), "--synthetic", str(tmp_path / "none"),
                          "--raters", "ana", "--db", bad])
    assert (code, out) == (2, "") and err.startswith(f"error: {bad}: its parent") and len(err.splitlines()) == 1
    for args in (["serve", "--db", bad], ["serve", "--db", "/proc/self/s.db"], ["study", "export", "--db", bad,
                                                                              "--out", str(tmp_path / "r.json")]):
        code, _, err = cli(args)
        assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


READ_ONLY_SCRIPT = """
import sys
from sonogan.cli.main import main
for args in (["serve", "--db", sys.argv[1] + "/study.db"], ["study", "create", "--real", "x", "--synthetic", "x",
                                                            "--raters", "ana", "--db", sys.argv[1] + "/new.db"]):
    sys.argv = ["sonogan", *args]
    try:
        main()
    except SystemExit as exc:
        print("exit", exc.code, flush=True)
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare to mount")
def test_a_read_only_mount_is_refused(tmp_path: Path) -> None:
    mount = tmp_path / "ro"
    mount.mkdir()
    make_engine(str(tmp_path / "study.db")).dispose()
    # a private mount namespace: the read-only tmpfs vanishes with the process, whatever happens
    shell = (f"mount -t tmpfs -o size=1m tmpfs {mount} && cp {tmp_path / 'study.db'} {mount}/ && "
             f"mount -o remount,ro {mount} && exec {sys.executable} -c '{READ_ONLY_SCRIPT}' {mount}")
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    if probe.returncode:
        pytest.skip("no private mount namespace here: " + probe.stderr.decode(errors="replace").strip())
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", shell],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.split("\n") == ["exit 2", "exit 2", ""], done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 2 and all(f"nothing can be written in {mount} (read-only" in line for line in lines), lines
