"""One run layout: paths built in one place, read back from a model file, the run's own splits
copy (checked against its hash on resume), the one --resume config rule, and old lesion runs refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sonogan import layout
from sonogan.config import StrictModel
from sonogan.errors import SonoganInputError
from sonogan.locations import splits_file
from sonogan.runs import RunDir, sha256_file


class Tiny(StrictModel):
    seed: int = 0


def make_run(path: Path, **info) -> Path:
    with RunDir.create(path, config=Tiny(), kind="test") as run:
        run.set_info(**info)
    return path


def test_paths():
    assert layout.fold_dir("r", 2) == Path("r/folds/fold2")
    assert layout.arm_dir("r", 0, "cascade") == Path("r/folds/fold0/cascade")
    assert layout.model_dir("r", 1, "augmented", "resnet10t") == Path("r/folds/fold1/augmented/resnet10t")
    assert layout.fold_of(Path("r/folds/fold12")) == 12
    assert layout.fold_of(Path("r/folds/foldx")) is None and layout.fold_of(Path("r/other/fold1")) is None


def test_locate_reads_every_protocols_model_files(tmp_path):
    run = make_run(tmp_path / "run").resolve()
    assert layout.locate(run / "folds/fold1/augmented/resnet10t/best.pt") == layout.Place(run, 1, "augmented", "resnet10t")
    assert layout.locate(run / "folds/fold0/baseline/ensemble.json") == layout.Place(run, 0, "baseline", "ensemble")
    assert layout.locate(run / "folds/fold3/cascade/best.pt") == layout.Place(run, 3, "cascade", None)
    assert layout.locate(run / "remover.pt") == layout.Place(run)
    assert layout.locate(tmp_path / "loose" / "best.pt") is None
    assert layout.locate(run / "folds/fold0/x/pretrain/y/best.pt") is None


def test_splits_copy_is_made_once_and_checked_on_resume(tmp_path):
    source = tmp_path / "splits.json"
    source.write_text('{"seed": 0}')
    with RunDir.create(tmp_path / "run", kind="test") as run:
        copy = layout.keep_splits(run, lambda: source)
    assert copy == tmp_path / "run" / "splits.json" and copy.read_text() == '{"seed": 0}'
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["splits_file"] == str(source.resolve()) and info["splits_sha256"] == sha256_file(source)
    source.write_text('{"seed": 1}')  # the dataset's splits change: the run keeps its own
    with RunDir.resume(tmp_path / "run") as run:
        assert layout.keep_splits(run, lambda: pytest.fail("source read on resume")) == copy
    assert layout.run_splits(tmp_path / "run") == copy
    copy.write_text('{"seed": 2}')
    with pytest.raises(SonoganInputError, match="changed since this run started"):
        with RunDir.resume(tmp_path / "run") as run:
            layout.keep_splits(run, lambda: source)
    assert layout.run_splits(tmp_path / "run") is None


def test_resume_config_is_the_runs_own(tmp_path):
    run = make_run(tmp_path / "run")
    assert layout.resume_config(run, Tiny) == Tiny()
    with pytest.raises(SonoganInputError, match="started with another config"):
        layout.resume_config(run, Tiny, Tiny(seed=1))
    with pytest.raises(SonoganInputError, match="no run.json"):
        layout.resume_config(tmp_path, Tiny)


def test_an_old_lesion_run_is_refused_with_the_move(tmp_path):
    run = make_run(tmp_path / "old")
    (run / "fold-1" / "segmentation").mkdir(parents=True)
    with pytest.raises(SonoganInputError) as err:
        layout.resume_config(run, Tiny)
    assert str(err.value) == (f"{run / 'fold-1'}: a run folder of an older sonogan (fold-K folders); fix: move each "
                              "into the current layout (mkdir folds; mv fold-1 folds/fold1), or start a new run")


def test_splits_file_rule(tmp_path, monkeypatch):
    ds = tmp_path / "ds"
    ds.mkdir()
    assert splits_file(ds) == ds / "splits.json"            # writable: beside the dataset
    monkeypatch.setenv("SONOGAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("sonogan.locations.is_writable", lambda folder: False)
    assert splits_file(ds).parent.parent == tmp_path / "cache"   # read-only: the work folder
    (ds / "splits.json").write_text("{}")
    assert splits_file(ds) == ds / "splits.json"            # shipped with the dataset: read in place


def test_run_of_fold():
    assert layout.run_of_fold(Path("r/folds/fold2")) == Path("r")
    with pytest.raises(ValueError):
        layout.run_of_fold(Path("r/fold-2"))


def test_resume_dataset_is_the_runs_own(tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    run = make_run(tmp_path / "run", dataset=str(ds.resolve()))
    assert layout.resume_dataset(run, None) == ds.resolve()
    assert layout.resume_dataset(run, ds) == ds.resolve()
    with pytest.raises(SonoganInputError, match="this run was started on"):
        layout.resume_dataset(run, tmp_path)
    old = make_run(tmp_path / "old")  # an older sonogan recorded no dataset: the given one is used
    assert layout.resume_dataset(old, ds) == ds
    with pytest.raises(SonoganInputError, match="does not record its dataset"):
        layout.resume_dataset(old, None)


def test_resume_splits_before_the_run_is_opened(tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "splits.json").write_text("{}")
    run = make_run(tmp_path / "run")
    assert layout.resume_splits(run, ds) == ds / "splits.json"  # no splits recorded: the one splits rule
    with RunDir.resume(run) as opened:
        layout.keep_splits(opened, lambda: ds / "splits.json")
    (ds / "splits.json").write_text('{"changed": 1}')
    assert layout.resume_splits(run, ds) == run / "splits.json"  # then its own copy
    (run / "splits.json").unlink()
    with pytest.raises(SonoganInputError, match="missing, or changed"):
        layout.resume_splits(run, ds)
