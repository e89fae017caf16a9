"""What a run's models were developed on: the dataset, its splits, and a hash of every image.

The fold models of an experiment were trained and selected on the development images (train +
validation of every fold = every real non-test image of the saved splits). External
validation must know them to warn about duplicates, and the model card reports their hash.

:func:`training_hashes` reads ``training_hashes.csv`` from the run folder (image_id, label,
sha256 of the file, 64-bit perceptual hash as hex), or, for a run made before it existed,
recomputes the same table from the run's dataset and splits (read-only) and can keep it in
another folder. The experiment keeps it in the run folder when it writes the model card, the
one extra file it writes for this; the checkpoints are unchanged, so older runs still load.

Example:
    >>> table = training_hashes(Path("runs/exp"))               # doctest: +SKIP
    >>> table.columns.tolist()                                  # doctest: +SKIP
    ['image_id', 'label', 'sha256', 'phash']
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sonogan.config import read_yaml
from sonogan.data.duplicates import dataset_hashes
from sonogan.data.manifest import Dataset, load_dataset
from sonogan.data.splits import Splits
from sonogan.errors import SonoganInputError
from sonogan.locations import fallback_dir
from sonogan.runs import atomic_write_text, sha256_file

HASHES_FILE = "training_hashes.csv"


@dataclass
class RunData:
    """A run's dataset, its splits, and the development image ids."""

    dataset: Dataset
    splits: Splits
    development_ids: list[str]


def run_data(run_dir: Path) -> RunData:
    """The dataset and splits of an experiment run, found from its config.yaml and run.json."""
    run_dir = Path(run_dir)
    cfg = read_yaml(run_dir / "config.yaml")
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    root = Path(cfg["dataset"]) if cfg.get("dataset") else run_dir / "dataset"
    if not root.is_absolute():
        root = (run_dir / root).resolve()
    ds = load_dataset(root)
    # where prepare_splits put them: the config's file, the dataset folder, or its work folder
    candidates = [Path(cfg["splits"])] if cfg.get("splits") else []
    candidates += [ds.root / "splits.json", fallback_dir(ds.root) / "splits.json"]
    want = info.get("splits_sha256")
    for path in candidates:
        if path.is_file() and (want is None or sha256_file(path) == want):
            splits = Splits.load(path, ds)
            return RunData(ds, splits, sorted(splits.partition(None, "train")))
    raise SonoganInputError(run_dir, "the splits file the run used was not found (or has changed)",
                            f"restore it (sha256 {want}) beside the dataset")


def hash_images(ds: Dataset, ids: list[str], progress: bool = False) -> pd.DataFrame:
    """image_id, label, sha256, phash (16 hex digits) of ``ids`` of ``ds``."""
    sub = Dataset(ds.root, ds.spec, ds.manifest[ds.manifest["image_id"].isin(set(ids))].reset_index(drop=True))
    table = dataset_hashes(sub, progress=progress)
    table["label"] = list(sub.manifest["label"])
    table["phash"] = [f"{int(h):016x}" for h in table["phash"]]
    return table[["image_id", "label", "sha256", "phash"]].sort_values("image_id").reset_index(drop=True)


def read_hashes(path: Path) -> pd.DataFrame:
    """A saved hash table, with phash back as int (what :func:`sonogan.data.duplicates.cross_pairs` wants)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table["phash"] = [int(h, 16) for h in table["phash"]]
    table["image"] = table["image_id"]
    return table


def training_hashes(run_dir: Path, keep_in: Path | None = None, progress: bool = False) -> pd.DataFrame:
    """The run's saved hash table, else recomputed; with ``keep_in`` the table used is also saved
    there, so an evaluation or an exported model card carries the hashes it relied on."""
    saved = Path(run_dir) / HASHES_FILE
    if keep_in is not None and saved.is_file() and not (Path(keep_in) / HASHES_FILE).is_file():
        Path(keep_in).mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(keep_in) / HASHES_FILE, saved.read_text())
    for folder in (Path(run_dir), keep_in):
        if folder is not None and (folder / HASHES_FILE).is_file():
            return read_hashes(folder / HASHES_FILE)
    data = run_data(run_dir)
    table = hash_images(data.dataset, data.development_ids, progress)
    if keep_in is not None:
        atomic_write_text(Path(keep_in) / HASHES_FILE, table.to_csv(index=False))
    return read_hashes(Path(keep_in) / HASHES_FILE) if keep_in is not None else \
        table.assign(phash=[int(h, 16) for h in table["phash"]], image=table["image_id"])


def images_sha256(hashes: pd.DataFrame) -> str:
    """One sha256 over the sorted per-image sha256s: the development images' content hash."""
    return hashlib.sha256("\n".join(sorted(hashes["sha256"])).encode()).hexdigest()
