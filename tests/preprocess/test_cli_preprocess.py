"""``sonogan preprocess`` says how many images had no lesion mask, and refuses (one line,
exit 2) a lesion-ROI preset when none has one unless ``--allow-no-masks``."""

from __future__ import annotations

import sys

from sonogan.cli.main import main


def run_cli(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["sonogan", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_fallback_count_is_printed(ds, capsys, monkeypatch):
    code, out, _ = run_cli(["preprocess", str(ds.root), "--preset", "flagship-64"], capsys, monkeypatch)
    assert code == 0 and "1 of 8 images have no lesion mask: whole scan area used" in out
    code, out, _ = run_cli(["preprocess", str(ds.root), "--preset", "flagship-64"], capsys, monkeypatch)
    assert code == 0 and "1 of 8 images" in out  # said again when the cache is reused
    code, out, _ = run_cli(["preprocess", str(ds.root), "--preset", "full-64"], capsys, monkeypatch)
    assert code == 0 and "no lesion mask" not in out


def test_no_masks_refused_unless_allowed(tmp_path, tiny_dataset, capsys, monkeypatch):
    tiny_dataset(tmp_path, masks="none")
    code, _, err = run_cli(["preprocess", str(tmp_path), "--preset", "roi-128"], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "none of the 8 real images has a (non-empty) lesion mask" in err and "--allow-no-masks" in err
    code, out, _ = run_cli(["preprocess", str(tmp_path), "--preset", "roi-128", "--allow-no-masks"],
                           capsys, monkeypatch)
    assert code == 0 and "8 of 8 images have no lesion mask: whole scan area used" in out
