"""The preprocessing cache: every image decoded and preprocessed once, stored as uint8 arrays.

Layout: ``<work>/cache/<preset-name>-<key>/`` with ``images.npy`` (N,S,S,C uint8),
``masks.npy`` (N,S,S uint8, 1 = lesion), ``index.csv`` (row,image_id,label,source,roi_fallback),
``preset.yaml`` and ``info.json`` (timings, size; written last, so its presence marks a complete
cache). ``<work>`` is the dataset folder when it is writable, else a folder under
``$SONOGAN_CACHE_DIR`` or ``~/.cache/sonogan`` (:func:`sonogan.locations.work_dir`); a complete
cache already inside a read-only dataset is still used. ``key`` hashes the cache tokens of the
preset's transforms, the manifest rows and the image files' sizes and mtimes, so editing the
manifest, the images or the preset (or a transform's checkpoint) gives a new key and
:func:`open_cache` reports the old cache as stale.

A lesion-ROI preset keeps the whole scan area of an image without a lesion mask; the count is
``n_roi_fallback`` in ``info.json`` (:func:`read_info`), and :func:`build_cache` refuses when
no real image has one, unless ``allow_no_masks=True``.

The cache holds uint8 pixels only: z-score statistics are computed at training time from the
training partition of each fold (see :func:`sonogan.preprocess.fold.load_fold`), never baked in here.

Example:
    >>> ds = load_dataset("runs/phantom")                    # doctest: +SKIP
    >>> path = build_cache(ds, "flagship-64", progress=True)  # doctest: +SKIP
    >>> cache = open_cache(ds, "flagship-64")                 # doctest: +SKIP
    >>> images, masks = cache.get(["img-0001", "img-0002"])   # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from rich.progress import track

import sonogan
from sonogan.config import to_yaml
from sonogan.data.manifest import Dataset
from sonogan.errors import SonoganInputError
from sonogan.imageio import decode_image  # the one safe decoder (pixel limit from the header)
from sonogan.locations import ENV_VAR, work_dir
from sonogan.preprocess.presets import PreprocessConfig, get_preset, pipeline, run_pipeline
from sonogan.preprocess.transforms import Compose
from sonogan.runs import write_json

CACHE_DIR = "cache"
_FILES = ("images.npy", "masks.npy", "index.csv", "preset.yaml", "info.json")


def _stat(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def cache_key(ds: Dataset, cfg: PreprocessConfig) -> str:
    """First 16 hex of sha256 over the cache tokens of the preset's transforms, the manifest
    rows (image_id, image, mask, label, source) and each image/mask file's size and mtime."""
    h = hashlib.sha256()
    h.update(json.dumps(pipeline(cfg).cache_token(), sort_keys=True).encode())
    for row in ds.manifest[["image_id", "image", "mask", "label", "source"]].itertuples(index=False):
        image_id, image, mask, label, source = (str(v) for v in row)
        files = _stat(ds.path(image)) + "|" + (_stat(ds.path(mask)) if mask else "")
        h.update("\t".join([image_id, image, mask, label, source, files]).encode() + b"\n")
    return h.hexdigest()[:16]


def _cache_dirs(ds: Dataset) -> list[Path]:
    """Where caches of ``ds`` may lie: inside the dataset (read even when it is read-only, so a
    dataset shipped with its caches needs no rebuild), then the work folder new caches go to."""
    own, work = ds.root / CACHE_DIR, work_dir(ds.root) / CACHE_DIR
    return [own] if own == work else [own, work]


def _folder_name(cfg: PreprocessConfig, key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", cfg.name) + "-" + key


def _is_complete(path: Path) -> bool:
    return all((path / f).is_file() for f in _FILES)


def _process_row(task: tuple[Compose, str, str, str, bool]) -> tuple[np.ndarray, np.ndarray, bool]:
    """Decode one image (+mask) exactly once and preprocess it. Top-level so a Pool can pickle it."""
    pipe, image_path, mask_path, image_id, synthetic = task
    image = decode_image(Path(image_path), context=f"manifest row {image_id}")
    mask = decode_image(Path(mask_path), grey=True, context=f"manifest row {image_id}") if mask_path else None
    res = run_pipeline(pipe, image, mask, synthetic=synthetic)
    return res.image, res.mask, res.roi_fallback


def _refuse_without_masks(ds: Dataset, cfg: PreprocessConfig, n_without: int, n_real: int,
                          allow_no_masks: bool) -> None:
    """A lesion-ROI preset where no real image has a lesion mask would silently train on whole
    scans under a lesion preset's name: refuse unless the user asked for exactly that."""
    if cfg.roi != "lesion" or allow_no_masks or n_real == 0 or n_without < n_real:
        return
    raise SonoganInputError(
        ds.manifest_path, f"preset '{cfg.name}' crops to the lesion, but none of the {n_real} real images "
        "has a (non-empty) lesion mask", "add masks to the manifest, use a whole-scan preset such as "
        "full-64, or allow it (--allow-no-masks; allow_no_masks=True) to use the whole scan areas")


def read_info(path: Path) -> dict:
    """``info.json`` of a complete cache folder: counts (``n_images``, ``n_real``,
    ``n_roi_fallback``), shape, timings, the transforms' tokens."""
    return json.loads((path / "info.json").read_text(encoding="utf-8"))


def _remove_dead_tmp(parent: Path, name: str) -> None:
    """Delete temp folders left by builds that were killed (their process no longer exists);
    a folder of a build still running in another process is left alone."""
    for tmp in parent.glob(f".tmp-{name}-*"):
        try:
            os.kill(int(tmp.name.rsplit("-", 1)[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, PermissionError):
            continue


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core already; nested OpenCV threads only contend


def _fill(tasks: list, images: np.ndarray, masks: np.ndarray, workers: int, progress: str) -> np.ndarray:
    """Preprocess ``tasks`` into the arrays (in order) and return the roi_fallback flags;
    ``progress`` is the progress bar's title ("" = none)."""
    fallback = np.zeros(len(tasks), bool)
    # 'spawn', not fork: forking a process whose OpenCV thread pool is already running
    # deadlocks the children (seen on Linux); spawned workers start clean.
    ctx = multiprocessing.get_context("spawn")
    pool = ctx.Pool(workers, initializer=_worker_init) if workers > 0 else None
    try:
        results = pool.imap(_process_row, tasks, chunksize=8) if pool else map(_process_row, tasks)
        if progress:
            results = track(results, total=len(tasks), description=progress)
        for i, (img, msk, fb) in enumerate(results):
            images[i], masks[i], fallback[i] = img, msk, fb
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return fallback


def build_cache(ds: Dataset, preset: str | PreprocessConfig, progress: bool = False,
                workers: int = 0, allow_no_masks: bool = False) -> Path:
    """Preprocess every manifest row into ``<work>/cache/<preset>-<key>/`` and return it.

    A complete folder with the same key is reused as is (no work). Writes go to a temporary
    folder renamed at the end, so an interrupted build leaves no half cache. ``workers > 0``
    decodes and preprocesses in a multiprocessing pool (order is kept, output is identical).
    A lesion-ROI preset on a dataset where no real image has a lesion mask raises
    SonoganInputError unless ``allow_no_masks``; how many images fell back to the whole scan
    area is ``read_info(path)["n_roi_fallback"]``.
    """
    cfg = get_preset(preset)
    pipe = pipeline(cfg)
    m = ds.manifest
    real = m["source"] == "real"
    _refuse_without_masks(ds, cfg, int((real & (m["mask"] == "")).sum()), int(real.sum()), allow_no_masks)
    key = cache_key(ds, cfg)
    dirs = _cache_dirs(ds)
    done = [d / _folder_name(cfg, key) for d in dirs if _is_complete(d / _folder_name(cfg, key))]
    final = done[0] if done else _build(ds, cfg, pipe, dirs[-1], key, progress, workers)
    info = read_info(final)
    _refuse_without_masks(ds, cfg, info["n_roi_fallback"], info["n_real"], allow_no_masks)
    return final


def _build(ds: Dataset, cfg: PreprocessConfig, pipe: Compose, parent: Path, key: str, progress: bool,
           workers: int) -> Path:
    """Write ``parent/<preset>-<key>`` through a temporary folder (see :func:`build_cache`)."""
    if len(ds.manifest) == 0:
        raise SonoganInputError(ds.manifest_path, "manifest has no rows", "import some images first")
    final = parent / _folder_name(cfg, key)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SonoganInputError(parent, f"cannot create the cache folder ({exc.strerror})",
                                f"set {ENV_VAR} to a writable folder") from None
    _remove_dead_tmp(parent, final.name)
    tmp = parent / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    m = ds.manifest
    tasks = [(pipe, str(ds.path(r.image)), str(ds.path(r.mask)) if r.mask else "", r.image_id,
              r.source == "synthetic") for r in m[["image", "mask", "image_id", "source"]].itertuples()]
    n, s, c = len(tasks), cfg.size, cfg.channels
    start = time.perf_counter()
    try:
        images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(n, s, s, c))
        masks = np.lib.format.open_memmap(tmp / "masks.npy", mode="w+", dtype=np.uint8, shape=(n, s, s))
        fallback = _fill(tasks, images, masks, workers, f"preprocess {cfg.name}" if progress else "")
        images.flush()
        masks.flush()
        del images, masks
        seconds = time.perf_counter() - start
        pd.DataFrame({"row": np.arange(n), "image_id": m["image_id"].to_numpy(), "label": m["label"].to_numpy(),
                      "source": m["source"].to_numpy(), "roi_fallback": fallback.astype(int)}
                     ).to_csv(tmp / "index.csv", index=False)
        (tmp / "preset.yaml").write_text(to_yaml(cfg), encoding="utf-8")
        size = sum(f.stat().st_size for f in tmp.iterdir())
        write_json(tmp / "info.json", {
            "preset": cfg.name, "key": key, "transforms": pipe.cache_token(),
            "dataset": ds.spec.name, "n_images": n,
            "n_real": int((m["source"] == "real").sum()), "n_synthetic": int((m["source"] == "synthetic").sum()),
            "n_roi_fallback": int(fallback.sum()), "shape": [n, s, s, c], "workers": workers,
            "seconds": round(seconds, 3), "images_per_s": round(n / max(seconds, 1e-9), 2),
            "size_bytes": size, "sonogan_version": sonogan.__version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
        try:
            os.rename(tmp, final)
        except OSError:
            if not _is_complete(final):  # not a concurrent builder finishing first: a real error
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


@dataclass
class PreprocessCache:
    """An opened cache: memory-mapped arrays plus the row index."""

    path: Path
    cfg: PreprocessConfig
    images: np.ndarray          # (N,S,S,C) uint8, memory-mapped
    masks: np.ndarray           # (N,S,S) uint8, memory-mapped
    ids: list[str]
    labels: list[str]
    sources: list[str]
    roi_fallback: np.ndarray    # (N,) bool
    index: dict[str, int]

    def rows(self, image_ids: list[str]) -> np.ndarray:
        """Row numbers of ``image_ids`` in the arrays (SonoganInputError for an unknown id)."""
        try:
            return np.array([self.index[i] for i in image_ids], dtype=np.int64)
        except KeyError as exc:
            raise SonoganInputError(self.path, f"image_id {exc.args[0]!r} is not in this cache",
                                    "rebuild the cache with 'sonogan preprocess' after changing the dataset") from None

    def get(self, image_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(images (n,S,S,C), masks (n,S,S)) as in-memory uint8 copies, in the order asked."""
        rows = self.rows(image_ids)
        return np.asarray(self.images[rows]), np.asarray(self.masks[rows])

    def __len__(self) -> int:
        return len(self.ids)


def open_cache(ds: Dataset, preset: str | PreprocessConfig) -> PreprocessCache:
    """Open the cache of ``ds`` for ``preset``; SonoganInputError if it is absent or stale."""
    cfg = get_preset(preset)
    name = _folder_name(cfg, cache_key(ds, cfg))
    dirs = _cache_dirs(ds)
    done = [d / name for d in dirs if _is_complete(d / name)]
    if not done:
        prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", cfg.name) + "-"
        old = [p for d in dirs if d.is_dir() for p in d.glob(prefix + "*") if p.is_dir() and _is_complete(p)]
        what = ("cache is stale (the manifest, the image files or the preset changed since it was built)"
                if old else f"no preprocessing cache for preset '{cfg.name}'")
        raise SonoganInputError(dirs[-1] / name, what, f"run 'sonogan preprocess {ds.root} --preset {cfg.name}' first")
    path = done[0]
    index = pd.read_csv(path / "index.csv", dtype=str, keep_default_na=False)
    ids = index["image_id"].tolist()
    return PreprocessCache(
        path=path, cfg=cfg,
        images=np.load(path / "images.npy", mmap_mode="r"), masks=np.load(path / "masks.npy", mmap_mode="r"),
        ids=ids, labels=index["label"].tolist(), sources=index["source"].tolist(),
        roi_fallback=index["roi_fallback"].astype(int).to_numpy().astype(bool),
        index={i: k for k, i in enumerate(ids)})
