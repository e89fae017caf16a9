"""Single-image latency and throughput on the CPU: eager PyTorch vs ONNX Runtime, 1 and 2 threads.

Models: the default real-data model (configs/mmotu-baseline.yaml: EfficientNet-Lite0, lesion
ROI at 160 px, mirror TTA, i.e. two forward passes per image) as one fold's checkpoint, the
same recipe at 224 px, and a 3-member ensemble of the 160-px fold models 0-2 (an
``ensemble.json`` written under ``runs/agent-decision/``, equal weights). Each is exported with
``sonogan export --onnx``'s function (graphs checked against PyTorch on export).

What is timed: ``predict_pixels`` on preprocessed pixels (normaliser, TTA, fusion and
calibration included; decoding and the preset's crop/resize excluded, they are the same for
both back-ends). Latency: one image per call, ``--iters`` calls after ``--warmup``; p50 and p95
in ms. Throughput: batches of 32, images per second. Every (model, threads) cell runs PyTorch
and ONNX Runtime alternately in chunks of 10 calls in ONE process, so both see the same load;
the shared 2-core machine makes absolute numbers noisy, the ratios less so.

Example:
    $ .venv/bin/python benchmarks/latency.py --iters 40
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

from sonogan.infer.onnx import OnnxPredictor, export_onnx
from sonogan.infer.predictor import ImageInput, Predictor
from sonogan.models.ensemble import equal_weights, write_ensemble_file
from sonogan.runs import write_json

ROOT = Path(__file__).resolve().parents[1]
RUN_160 = ROOT / "runs" / "bench" / "mmotu-baseline-lite0-roi-160-002"
RUN_224 = ROOT / "runs" / "bench" / "mmotu-baseline-lite0-roi-224-001"
WORK = ROOT / "runs" / "agent-decision" / "latency"
RESULT = ROOT / "benchmarks" / "results" / "latency.json"
MEMBER = "folds/fold{k}/baseline/efficientnet-lite0/best.pt"
CHUNK = 10
BATCH = 32


def models() -> dict[str, Path]:
    """name -> best.pt / ensemble.json; the ensemble file is written once (relative member paths)."""
    ens = WORK / "ensemble-160" / "ensemble.json"
    if not ens.is_file():
        ens.parent.mkdir(parents=True, exist_ok=True)
        members = {f"fold{k}": Path("../../../bench") / RUN_160.name / MEMBER.format(k=k) for k in range(3)}
        write_ensemble_file(ens, members, equal_weights(3), "equal weights (latency benchmark)")
    return {"lite0-roi-160 (default)": RUN_160 / MEMBER.format(k=0), "lite0-roi-224": RUN_224 / MEMBER.format(k=0),
            "lite0-roi-160 3-member ensemble": ens}


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def measure(torch_p: ImageInput, onnx_p: ImageInput, pixels: np.ndarray, iters: int, warmup: int) -> dict[str, Any]:
    """Alternating chunks of single-image calls, then alternating batch calls."""
    one = pixels[:1]
    runners = {"pytorch": torch_p, "onnxruntime": onnx_p}
    for p in runners.values():
        for _ in range(warmup):
            p.predict_pixels(one)
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(max(1, iters // CHUNK)):
        for name, p in runners.items():
            times[name] += [_timed(lambda: p.predict_pixels(one)) for _ in range(CHUNK)]
    batch: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(3):
        for name, p in runners.items():
            batch[name].append(_timed(lambda: p.predict_pixels(pixels)))
    out = {}
    for name in runners:
        t = np.array(times[name])
        out[name] = {"p50_ms": round(float(np.percentile(t, 50)), 2), "p95_ms": round(float(np.percentile(t, 95)), 2),
                     "throughput_img_s": round(BATCH / (min(batch[name]) / 1000), 1), "n": int(t.size)}
    out["speedup_p50"] = round(out["pytorch"]["p50_ms"] / out["onnxruntime"]["p50_ms"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    start = time.perf_counter()
    results: dict[str, Any] = {"iters": args.iters, "batch": BATCH,
                               "host": {"cpus": os.cpu_count(), "platform": platform.platform()},
                               "torch": torch.__version__, "load_average_start": [round(v, 1) for v in os.getloadavg()],
                               "models": {}}
    for name, path in models().items():
        torch_p = Predictor.load(path)
        folder = export_onnx(torch_p, WORK / "onnx" / name.replace(" ", "_"))
        pixels = np.random.default_rng(0).integers(0, 256, (BATCH, torch_p.preset.size, torch_p.preset.size,
                                                            torch_p.preset.channels), dtype=np.uint8)
        entry = {"file": str(path.relative_to(ROOT)), "members": len(torch_p.members), "size": torch_p.preset.size,
                 "tta": torch_p.members[0].tta, "threads": {}}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            onnx_p = OnnxPredictor.load(folder, intra_op_threads=threads)
            with torch.inference_mode():
                entry["threads"][str(threads)] = measure(torch_p, onnx_p, pixels, args.iters, args.warmup)
            print(name, threads, entry["threads"][str(threads)], flush=True)
        results["models"][name] = entry
    results["wall_s"] = round(time.perf_counter() - start, 1)
    results["load_average_end"] = [round(v, 1) for v in os.getloadavg()]
    write_json(RESULT, results)
    print(RESULT)


def latency_block(r: dict[str, Any]) -> str:
    """README table: p50/p95 and throughput per model, back-end and thread count."""
    rows = ["| model | threads | PyTorch p50 / p95 ms | ONNX Runtime p50 / p95 ms | ORT speed-up (p50) | "
            "throughput PyTorch / ORT (img/s, batch 32) |", "|---|---|---|---|---|---|"]
    for name, e in r["models"].items():
        for threads, m in e["threads"].items():
            pt, ox = m["pytorch"], m["onnxruntime"]
            rows.append(f"| {name}: {e['members']} member(s), {e['size']} px, TTA {e['tta']} | {threads} | "
                        f"{pt['p50_ms']:.1f} / {pt['p95_ms']:.1f} | {ox['p50_ms']:.1f} / {ox['p95_ms']:.1f} | "
                        f"{m['speedup_p50']:.2f}x | {pt['throughput_img_s']:.0f} / {ox['throughput_img_s']:.0f} |")
    busy = max(r["load_average_start"][0], r["load_average_end"][0]) > r["host"]["cpus"]
    caveat = (" The CPU was oversubscribed: absolute numbers are far from a dedicated machine's, and 2 threads "
              "mostly measure contention." if busy else "")
    return (f"`benchmarks/latency.py`: one preprocessed image per call ({r['iters']} calls per cell, back-ends "
            f"alternating in one process), on a shared {r['host']['cpus']}-core CPU (1-min load average "
            f"{r['load_average_start'][0]} at the start, {r['load_average_end'][0]} at the end).{caveat} TTA hflip = "
            f"two forward passes per image. {r['wall_s'] / 60:.1f} min wall.\n\n" + "\n".join(rows))


README_BLOCKS = {"latency": ("latency.json", latency_block)}

if __name__ == "__main__":
    main()
