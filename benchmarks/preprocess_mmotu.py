"""Benchmark: build the preprocessing cache over all MMOTU images (flagship-64, full-128).

Builds a throw-away Dataset in a temp folder whose manifest points at the MMOTU images through
symlinks (nothing is copied), times ``build_cache`` with workers=0 and workers=2 for each
preset (each timing on a fresh cache folder), and writes
``benchmarks/results/preprocess_mmotu.json``.

Example:
    $ .venv/bin/python benchmarks/preprocess_mmotu.py
    $ .venv/bin/python benchmarks/preprocess_mmotu.py --limit 100 --out /tmp/bench.json
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sonogan.data.manifest import DatasetSpec, write_dataset
from sonogan.preprocess.cache import build_cache
from sonogan.runs import package_versions, write_json

REPO = Path(__file__).resolve().parents[1]
MMOTU = REPO / ".." / "shared" / "datasets" / "mmotu-2d"


def mmotu_dataset(root: Path, limit: int | None = None):
    src = pd.read_csv(MMOTU / "manifest.csv", dtype=str, keep_default_na=False)
    if limit:
        src = src.head(limit)
    os.symlink((MMOTU / "images").resolve(), root / "images")
    os.symlink((MMOTU / "masks").resolve(), root / "masks")
    rows = pd.DataFrame({"image_id": src["label"] + "-" + src["source_id"], "image": src["image"],
                         "mask": src["mask"], "label": src["label"], "patient_id": "", "source": "real"})
    spec = DatasetSpec(name="mmotu-bench", classes=sorted(src["label"].unique()), patients_known=False)
    return write_dataset(root, spec, rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="only the first N images")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "preprocess_mmotu.json")
    args = ap.parse_args()
    if not (MMOTU / "manifest.csv").is_file():
        raise SystemExit(f"MMOTU not found at {MMOTU}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        ds = mmotu_dataset(Path(tmp), args.limit)
        n = len(ds.manifest)
        for preset in ("flagship-64", "full-128"):
            for workers in (0, 2):
                shutil.rmtree(ds.root / "cache", ignore_errors=True)
                t0 = time.perf_counter()
                path = build_cache(ds, preset, workers=workers)
                seconds = time.perf_counter() - t0
                t0 = time.perf_counter()
                build_cache(ds, preset, workers=workers)  # complete cache -> no-op
                noop = time.perf_counter() - t0
                size = sum(f.stat().st_size for f in path.iterdir())
                info = pd.read_json(path / "info.json", typ="series")
                images = np.load(path / "images.npy", mmap_mode="r")
                results.append({"preset": preset, "workers": workers, "n_images": n, "seconds": round(seconds, 2),
                                "images_per_s": round(n / seconds, 1), "cache_mb": round(size / 2**20, 2),
                                "images_shape": list(images.shape), "n_roi_fallback": int(info["n_roi_fallback"]),
                                "noop_rebuild_s": round(noop, 4)})
                print(results[-1], flush=True)
    write_json(args.out, {"benchmark": "preprocess_mmotu", "results": results,
                          "host": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                                   "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()]},
                          "versions": package_versions()})
    print(f"-> {args.out}")


def preprocess_block(r: dict) -> str:
    by = {(e["preset"], e["workers"]): e for e in r["results"]}
    fl0, fl2, f128 = by[("flagship-64", 0)], by[("flagship-64", 2)], by[("full-128", 0)]
    load = r["host"]["loadavg_1_5_15"][0]
    return (f"Preprocessing all {fl0['n_images']} MMOTU images (`python benchmarks/preprocess_mmotu.py`, decode + "
            f"median + scan area + lesion ROI + resize, 1-min load average {load}): **{fl0['images_per_s']:.0f} "
            f"images/s** in-process and **{fl2['images_per_s']:.0f} images/s** with 2 worker processes for "
            f"`flagship-64` (cache **{fl0['cache_mb']:.1f} MB**); {f128['images_per_s']:.0f} images/s for `full-128` "
            f"(cache {f128['cache_mb']:.1f} MB). A second `sonogan preprocess` with the same preset returns in "
            f"{fl0['noop_rebuild_s']:.2f} s.")


README_BLOCKS = {"preprocess-speed": ("preprocess_mmotu.json", preprocess_block)}

if __name__ == "__main__":
    main()
