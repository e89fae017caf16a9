"""The one layout of a run folder, for every protocol (experiment, lesion, annotation remover, synth).

::

    RUN/
      run.json          command, seed, threads, commit, versions, status (sonogan.runs.RunDir)
      config.yaml       the resolved config: --resume continues with it
      splits.json       the run's own copy of the splits it used (its sha256 in run.json)
      log.txt, metrics.json, report.html, ...
      folds/fold<K>/                      one fold: fold.json, predictions.npz, gan-<class>/, ...
      folds/fold<K>/<arm>/                one arm: ensemble.json (experiment), best.pt (lesion)
      folds/fold<K>/<arm>/<model>/        one classifier of an experiment arm: best.pt, last.pt
      folds/fold<K>/<arm>/<model>/seed-<S>/   the same, one per seed when classifier_seeds has several
      remover.pt                          the annotation remover's checkpoint (no folds)

Every path of that picture is built here and nowhere else; :func:`locate` reads it back from
a model file (which run, fold, arm and model a ``best.pt`` belongs to). Runs written before
this layout (the lesion protocol's ``RUN/fold-K/``) are refused with a one-line error that
says how to move them (:func:`check_layout`).

Example:
    >>> arm_dir("runs/exp", 0, "augmented").as_posix()
    'runs/exp/folds/fold0/augmented'
    >>> model_dir("runs/exp", 1, "baseline", "resnet10t").as_posix()
    'runs/exp/folds/fold1/baseline/resnet10t'
    >>> seed_model_dir("runs/exp", 1, "baseline", "resnet10t", 2).as_posix()
    'runs/exp/folds/fold1/baseline/resnet10t/seed-2'
    >>> fold_of(Path("runs/exp/folds/fold3")), fold_of(Path("runs/exp/fold-3"))
    (3, None)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from pydantic import BaseModel

from sonogan.config import load_config
from sonogan.errors import SonoganInputError
from sonogan.locations import splits_file
from sonogan.runs import RunDir, atomic_write_bytes, sha256_file

RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
SPLITS_COPY = "splits.json"
FOLDS = "folds"
REMOVER_FILE = "remover.pt"
ENSEMBLE_FILE = "ensemble.json"
BEST_FILE = "best.pt"
SEED_DIR = re.compile(r"seed-(\d+)")  # one classifier seed's folder inside a model folder
OLD_FOLD = re.compile(r"fold-(\d+)")  # the lesion protocol's folders before this layout
Config = TypeVar("Config", bound=BaseModel)


def fold_dir(run: str | Path, fold: int) -> Path:
    """``RUN/folds/fold<K>``: everything of one fold."""
    return Path(run) / FOLDS / f"fold{fold}"


def arm_dir(run: str | Path, fold: int, arm: str) -> Path:
    """``RUN/folds/fold<K>/<arm>``."""
    return fold_dir(run, fold) / arm


def model_dir(run: str | Path, fold: int, arm: str, model: str) -> Path:
    """``RUN/folds/fold<K>/<arm>/<model>``: one classifier of an experiment arm."""
    return arm_dir(run, fold, arm) / model


def seed_model_dir(run: str | Path, fold: int, arm: str, model: str, seed: int | None) -> Path:
    """``RUN/folds/fold<K>/<arm>/<model>/seed-<S>``: one seed's classifier; with ``seed`` None (a run
    with one classifier seed) the model folder itself, as runs were before seeds."""
    folder = model_dir(run, fold, arm, model)
    return folder if seed is None else folder / f"seed-{seed}"


def fold_of(path: Path) -> int | None:
    """K of a ``folds/fold<K>`` folder, else None."""
    name = path.name
    if path.parent.name == FOLDS and name.startswith("fold") and name[4:].isdigit():
        return int(name[4:])
    return None


def run_of_fold(folder: Path) -> Path:
    """``RUN`` of a ``RUN/folds/fold<K>`` folder."""
    if fold_of(folder) is None:
        raise ValueError(f"{folder} is not a {FOLDS}/fold<K> folder")  # a caller's bug, not the user's
    return folder.parent.parent


def is_run(path: str | Path) -> bool:
    """A run folder: a folder with run.json."""
    return (Path(path) / RUN_FILE).is_file()


def read_info(run: str | Path) -> dict[str, Any]:
    """A run's run.json (one-line error when it is not a run folder)."""
    path = Path(run) / RUN_FILE
    if not path.is_file():
        raise SonoganInputError(run, "not a sonogan run folder (no run.json)",
                                "pass the folder printed by the command that started the run")
    return json.loads(path.read_text(encoding="utf-8"))


def check_layout(run: str | Path) -> None:
    """Refuse a run written before this layout (``RUN/fold-K/`` of the lesion protocol)."""
    old = sorted(p.name for p in Path(run).iterdir() if p.is_dir() and OLD_FOLD.fullmatch(p.name)) \
        if Path(run).is_dir() else []
    if old:
        k = OLD_FOLD.fullmatch(old[0]).group(1)  # type: ignore[union-attr]
        raise SonoganInputError(Path(run) / old[0], "a run folder of an older sonogan (fold-K folders)",
                                f"move each into the current layout (mkdir {FOLDS}; mv {old[0]} {FOLDS}/fold{k}), "
                                "or start a new run")


def resume_config(run: str | Path, model: type[Config], given: Config | None = None) -> Config:
    """What ``--resume RUN`` continues with, the same for every protocol: the run's own
    ``config.yaml``. ``RUN`` must be a run folder of the current layout; a ``given`` config
    that differs would continue another training, and is refused."""
    read_info(run)
    check_layout(run)
    stored = load_config(model, Path(run) / CONFIG_FILE)
    if given is not None and given != stored:
        raise SonoganInputError(run, "this run was started with another config",
                                "resume without a config or options (its config.yaml is used), or start a new run")
    return stored


def resume_dataset(run: str | Path, given: str | Path | None) -> Path:
    """The dataset a resumed run continues on: the one its run.json records (``dataset``); a
    different ``given`` one is refused. A run that records none (made by an older sonogan)
    continues on ``given``."""
    started_on = read_info(run).get("dataset")
    if started_on is None:
        if given is None:
            raise SonoganInputError(run, "this run does not record its dataset (an older sonogan made it)",
                                    "pass the DATASET it was started on with --resume")
        return Path(given)
    if given is not None and Path(given).resolve() != Path(started_on):
        raise SonoganInputError(given, f"this run was started on {started_on}",
                                "resume without DATASET (the run's own is used), or start a new run")
    return Path(started_on)


def resume_splits(run: str | Path, dataset: str | Path) -> Path:
    """The splits a resumed run continues on, before its folder is opened: its own copy
    (checked against run.json's sha256, :func:`run_splits`); a run that recorded no splits
    (made by an older sonogan) reads the dataset's (:func:`~sonogan.locations.splits_file`),
    which :func:`keep_splits` then copies into it."""
    path = run_splits(run)
    if path is not None:
        return path
    if read_info(run).get("splits_sha256") is not None:
        raise SonoganInputError(Path(run) / SPLITS_COPY, "missing, or changed since this run started",
                                "restore the run's splits.json, or start a new run")
    return splits_file(dataset)


@dataclass(frozen=True)
class Place:
    """Where a model file sits in a run folder."""

    run: Path
    fold: int | None = None
    arm: str | None = None
    model: str | None = None   # the classifier's name, "ensemble", or None (a lesion arm's own model)
    seed: int | None = None    # the classifier seed of a ``<model>/seed-<S>/best.pt``


def locate(path: str | Path) -> Place | None:
    """The run, fold, arm and model of a model file inside a run folder, or None outside one:
    ``folds/foldK/<arm>/<model>/best.pt`` (``<model>/seed-<S>/best.pt`` with several classifier seeds),
    ``folds/foldK/<arm>/ensemble.json`` (experiment), ``folds/foldK/<arm>/best.pt`` (lesion), ``RUN/remover.pt`` (annotation remover)."""
    path = Path(path).resolve()
    if path.name == REMOVER_FILE and is_run(path.parent):
        return Place(path.parent)
    seed = SEED_DIR.fullmatch(path.parent.name)
    if seed is not None:  # <model>/seed-<S>/best.pt: the model folder's place, and the seed
        place = locate(path.parent.parent / path.name)
        return None if place is None else Place(place.run, place.fold, place.arm, place.model, int(seed.group(1)))
    for arm, model, fold_folder in ((path.parent.parent, path.parent.name, path.parent.parent.parent),
                                    (path.parent, None, path.parent.parent)):
        k = fold_of(fold_folder)
        if k is not None and is_run(fold_folder.parent.parent):
            if model is None and path.name == ENSEMBLE_FILE:
                model = "ensemble"
            return Place(fold_folder.parent.parent, k, arm.name, model)
    return None


def keep_splits(run: RunDir, source: Callable[[], Path]) -> Path:
    """The run's own copy of its splits (``RUN/splits.json``), which every later step and
    ``--resume`` read. Made when the run starts from the file ``source()`` returns (run.json
    records that file and the sha256); on resume the copy is checked against the hash and
    ``source`` is not called. A run from before the copy existed gets it on resume, if its
    source file still has the recorded hash."""
    copy, want = run.path / SPLITS_COPY, run.info.get("splits_sha256")
    if copy.is_file():
        if want is not None and sha256_file(copy) != want:
            raise SonoganInputError(copy, "changed since this run started (its sha256 differs from run.json's)",
                                    "restore the run's splits.json, or start a new run")
        return copy
    path = Path(source())
    if want is not None and sha256_file(path) != want:
        raise SonoganInputError(path, "changed since this run started (its sha256 differs from run.json's)",
                                "restore the original splits file, or start a new run")
    atomic_write_bytes(copy, path.read_bytes())
    run.set_info(splits_file=str(path.resolve()), splits_sha256=sha256_file(copy))
    return copy


def run_splits(run: str | Path) -> Path | None:
    """The splits a finished run used: its own copy, else (runs made before the copy) the file
    run.json names, when it still has the recorded hash; None when neither is there."""
    info = read_info(run)
    want = info.get("splits_sha256")
    candidates = [Path(run) / SPLITS_COPY]
    if info.get("splits_file"):
        candidates.append(Path(info["splits_file"]))
    for path in candidates:
        if path.is_file() and (want is None or sha256_file(path) == want):
            return path
    return None
