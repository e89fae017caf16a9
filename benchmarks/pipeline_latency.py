"""Two-stage latency on the CPU: segmenter -> lesion ROI -> classifier per scan without a mask,
eager PyTorch vs ONNX Runtime (issue 19: p50 <= 30 ms on 2 cores with ONNX Runtime).

The pipeline is built from existing runs: a ``sonogan lesion`` segmenter (``--segmenter``, a
segmentation / multitask arm's ``best.pt``) and a lesion-ROI classifier (``--classifier``, a
``best.pt`` or ``ensemble.json``). The script writes ``pipeline.json`` for them
(:func:`sonogan.infer.pipeline.write_pipeline`) and its ONNX export
(:func:`~sonogan.infer.pipeline.export_pipeline_onnx`, both graphs checked against PyTorch)
under ``--work``.

What is timed: :meth:`Pipeline.run` on ONE decoded image per call (no mask given): the
segmenter's preset, net and mask mapping, the classifier's crop, preset, net, fusion and
calibration; the file decoding is excluded (the same for both back-ends). The segmenter
stage alone (:meth:`predict_masks`) is timed the same way, so the classifier stage is the
difference. ``--n`` scans spread over the sorted image list (default 100 of MMOTU's), ``--threads``
intra-op threads for both back-ends (default 2), back-ends alternating in chunks of 10 calls in
ONE process so both see the same load. Also recorded: how often a lesion was found, and the
largest difference between the two back-ends' probabilities over the scans.

Example (the lead runs it alone; ~2 min with the default Lite0 models):
    $ .venv/bin/python benchmarks/pipeline_latency.py \\
        --segmenter runs/lesion-mmotu/folds/fold0/segmentation/best.pt \\
        --classifier runs/bench/mmotu-baseline-lite0-roi-160-002/folds/fold0/baseline/efficientnet-lite0/best.pt
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from sonogan.imageio import decode_image
from sonogan.infer.pipeline import FILE_NAME, Pipeline, export_pipeline_onnx, write_pipeline
from sonogan.infer.predict_files import IMAGE_SUFFIXES
from sonogan.runs import write_json

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "datasets" / "mmotu-2d" / "images"
WORK = ROOT / "runs" / "agent-decision" / "pipeline-latency"
RESULT = ROOT / "benchmarks" / "results" / "pipeline_latency.json"
CHUNK = 10


def scans(folder: Path, n: int) -> list[Path]:
    """``n`` image files spread evenly over ``folder``'s sorted images (every class of MMOTU)."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"{folder}: no images (pass --images)")
    return [files[k] for k in np.unique(np.linspace(0, len(files) - 1, min(n, len(files))).round().astype(int))]


def _ms(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def _stats(times: list[float]) -> dict[str, float]:
    t = np.array(times)
    return {"p50_ms": round(float(np.percentile(t, 50)), 2), "p90_ms": round(float(np.percentile(t, 90)), 2),
            "mean_ms": round(float(t.mean()), 2), "n": int(t.size)}


def measure(runners: dict[str, Pipeline], images: list[np.ndarray], warmup: int) -> dict[str, Any]:
    """Per back-end: two-stage and segmenter-only latency of single-image calls, alternating in chunks."""
    for p in runners.values():
        for img in images[:warmup]:
            p.run([img])
    total: dict[str, list[float]] = {k: [] for k in runners}
    segment: dict[str, list[float]] = {k: [] for k in runners}
    for start in range(0, len(images), CHUNK):
        chunk = images[start:start + CHUNK]
        for name, p in runners.items():
            total[name] += [_ms(lambda: p.run([img])) for img in chunk]
            segment[name] += [_ms(lambda: p.locator.predict_masks([img])) for img in chunk]
    out: dict[str, Any] = {}
    for name in runners:
        seg = _stats(segment[name])
        two = _stats(total[name])
        out[name] = {"two_stage": two, "segmenter": seg,
                     "classifier_p50_ms": round(two["p50_ms"] - seg["p50_ms"], 2)}
    out["speedup_p50"] = round(out["pytorch"]["two_stage"]["p50_ms"] / out["onnxruntime"]["two_stage"]["p50_ms"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segmenter", type=Path, required=True, help="a sonogan lesion segmenter best.pt")
    parser.add_argument("--classifier", type=Path, required=True, help="a lesion-ROI best.pt or ensemble.json")
    parser.add_argument("--images", type=Path, default=IMAGES, help="folder of scans (masks are not used)")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--work", type=Path, default=WORK, help="where pipeline.json and its ONNX export go")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    start = time.perf_counter()
    path = write_pipeline(args.work / FILE_NAME, args.segmenter, args.classifier)
    onnx_dir = export_pipeline_onnx(path, args.work / "onnx")  # again each time: the stages may have changed
    torch.set_num_threads(args.threads)
    runners = {"pytorch": Pipeline.load(path), "onnxruntime": Pipeline.load(onnx_dir, intra_op_threads=args.threads)}
    files = scans(args.images, args.n)
    images = [decode_image(f) for f in files]
    load_start = [round(v, 1) for v in os.getloadavg()]
    with torch.inference_mode():
        timing = measure(runners, images, args.warmup)
        eager, ort = runners["pytorch"].run(images), runners["onnxruntime"].run(images)
    preset = runners["pytorch"].preset
    results = {
        "segmenter": str(args.segmenter), "classifier": str(args.classifier), "images": str(args.images),
        "n_images": len(images), "threads": args.threads, "warmup": args.warmup,
        "classifier_preset": preset.name, "classifier_size": preset.size,
        "segmenter_size": runners["pytorch"].locator.preset.size,
        "lesion_found_share": round(float(eager.lesion_found.mean()), 3),
        "max_abs_diff_onnx_vs_torch": float(np.abs(eager.probs - ort.probs).max()),
        "same_prediction_share": round(float((eager.probs.argmax(1) == ort.probs.argmax(1)).mean()), 3),
        "timing": timing,
        "host": {"cpus": os.cpu_count(), "platform": platform.platform()}, "torch": torch.__version__,
        "load_average_start": load_start, "load_average_end": [round(v, 1) for v in os.getloadavg()],
        "wall_s": round(time.perf_counter() - start, 1),
    }
    write_json(args.out, results)
    print(timing, f"\n{args.out}")


def pipeline_latency_block(r: dict[str, Any]) -> str:
    """README table: p50 / p90 per back-end, two stages and the segmenter alone."""
    rows = ["| back-end | two-stage p50 / p90 ms | segmenter p50 / p90 ms | classifier p50 ms (difference) |",
            "|---|---|---|---|"]
    for name, label in (("pytorch", "eager PyTorch"), ("onnxruntime", "ONNX Runtime")):
        m = r["timing"][name]
        rows.append(f"| {label} | {m['two_stage']['p50_ms']:.1f} / {m['two_stage']['p90_ms']:.1f} | "
                    f"{m['segmenter']['p50_ms']:.1f} / {m['segmenter']['p90_ms']:.1f} | {m['classifier_p50_ms']:.1f} |")
    busy = max(r["load_average_start"][0], r["load_average_end"][0]) > r["host"]["cpus"]
    caveat = " The CPU was oversubscribed: absolute numbers are far from a dedicated machine's." if busy else ""
    return (f"`benchmarks/pipeline_latency.py`: segmenter ({r['segmenter_size']} px) -> lesion ROI -> classifier "
            f"({r['classifier_preset']}) on {r['n_images']} scans without masks, one decoded image per call, "
            f"{r['threads']} threads, back-ends alternating in one process, on a {r['host']['cpus']}-core CPU "
            f"(1-min load average {r['load_average_start'][0]} at the start, {r['load_average_end'][0]} at the "
            f"end).{caveat} Lesion found on {r['lesion_found_share']:.0%} of the scans; ONNX Runtime vs PyTorch: "
            f"max |difference| of probabilities {r['max_abs_diff_onnx_vs_torch']:.1e}, same class on "
            f"{r['same_prediction_share']:.0%}; ORT speed-up {r['timing']['speedup_p50']:.2f}x (p50).\n\n"
            + "\n".join(rows))


README_BLOCKS = {"pipeline_latency": ("pipeline_latency.json", pipeline_latency_block)}

if __name__ == "__main__":
    main()
