"""A model card for every trained model: what it is for, what it saw, how well it did, how it reads input.

:func:`write_model_card` reads an experiment run folder (config, run.json, metrics.json, the
checkpoints' metadata, the dataset and splits it used) and writes ``model_card.md`` and
``model_card.json`` (after Mitchell et al., 2019): intended use (decision support / second
reader, adults, not externally validated unless external evaluations are given), training
data (dataset name, manifest hash, a content hash of every development image, class counts),
the model (architecture, arms, folds, ensemble, calibration), inputs and preprocessing, the
hold-out and cross-validation metrics with bootstrap CIs, the referral operating point
chosen on validation predictions, and known limitations. It also leaves
``training_hashes.csv`` (see :mod:`sonogan.infer.provenance`) in the output folder, which
``sonogan evaluate`` uses for its duplicate check.

Example:
    >>> md, js = write_model_card(Path("runs/exp"))              # doctest: +SKIP
    >>> md.name, js.name                                         # doctest: +SKIP
    ('model_card.md', 'model_card.json')
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from sonogan.config import read_yaml
from sonogan.infer.decision import operating_point
from sonogan.infer.provenance import images_sha256, run_data, training_hashes
from sonogan.infer.resolve import load_model, run_model_files
from sonogan.models.checkpoint import read_checkpoint
from sonogan.models.ensemble import read_ensemble_file
from sonogan.report.html import format_ci
from sonogan.report.markdown import markdown_table
from sonogan.runs import atomic_write_text, write_json

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc")
INTENDED_USE = ("Decision support only: a second reader for B-mode ultrasound images of adnexal/ovarian lesions "
                "in adults, read together with a clinician who makes the decision. Not a diagnosis, not for "
                "screening, not for children or pregnancy scans unless such patients were in the training data.")


def _checkpoint_meta(run_dir: Path, arm: str) -> dict[str, Any]:
    """Inputs and preprocessing of the arm's first fold model (every fold model shares them)."""
    f = run_model_files(run_dir, arm)[0]
    paths = list(read_ensemble_file(f.path)[0].values()) if f.path.suffix == ".json" else [f.path]
    members = []
    for p in paths:
        blob = read_checkpoint(p)
        members.append({"architecture": blob["config"]["name"], "in_chans": blob["input"]["in_chans"],
                        "image_size": blob["input"]["image_size"], "tta": blob["input"].get("tta", "none"),
                        "normaliser": blob["normaliser"], "temperature": blob.get("calibration", {}).get("temperature")})
    return {"preprocess": read_checkpoint(paths[0])["preprocess"], "members": members}


def _external(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Headline numbers of earlier ``sonogan evaluate`` folders."""
    out = []
    for folder in map(Path, paths):
        res = json.loads((folder / "results.json").read_text(encoding="utf-8"))
        first = next(iter(res["metrics"].values()))["all"]
        out.append({"folder": folder.name, "dataset": res["dataset"], "n_images": res["n_images"],
                    "duplicates_of_training": len(res["duplicate_ids"]),
                    "metrics": {m: first[m] for m in HEADLINE + ("ece",)}})
    return out


def build_card(run_dir: Path, keep_hashes_in: Path, external: Sequence[Path] = ()) -> dict[str, Any]:
    """Everything the card says, as a JSON-ready dict."""
    run_dir = Path(run_dir)
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    cfg = read_yaml(run_dir / "config.yaml")
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    data = run_data(run_dir)
    ds, names = data.dataset, data.dataset.spec.classes
    labels = ds.manifest.set_index("image_id")["label"]
    count = lambda ids: {c: int((labels.loc[ids] == c).sum()) for c in names}  # noqa: E731
    primary, arm = metrics["primary_model"], metrics["arms"][0]
    loaded = load_model(run_dir, arm=arm)
    point = operating_point(loaded)
    hashes = training_hashes(run_dir, keep_hashes_in)
    ext = _external(external)
    return {
        "name": cfg.get("name"), "run": run_dir.name, "sonogan_version": info.get("versions", {}).get("sonogan"),
        "git_commit": info.get("git_commit"), "created": info.get("finished") or info.get("started"),
        "intended_use": INTENDED_USE,
        "externally_validated": bool(ext),
        "external_validation": ext,
        "training_data": {"dataset": ds.spec.name, "description": ds.spec.description,
                          "manifest_sha256": data.splits.manifest_sha256, "images_sha256": images_sha256(hashes),
                          "n_development_images": len(data.development_ids), "n_test_images": len(data.splits.test),
                          "development_class_counts": count(data.development_ids),
                          "test_class_counts": count(data.splits.test), "patients_known": ds.spec.patients_known,
                          "folds": data.splits.n_folds, "synthetic_images": "training partitions only" if
                          any(a != "baseline" for a in metrics["arms"]) else "none"},
        "model": {"primary": primary, "arms": metrics["arms"], "folds_run": metrics["folds_run"],
                  "prediction": "the fold models' calibrated probabilities averaged", **_checkpoint_meta(run_dir, arm)},
        "metrics": {"bootstrap": metrics["bootstrap"], "n_test": metrics["n_test"], "n_cv": metrics["n_cv"],
                    "test": {a: metrics["test"]["ci"][a] for a in metrics["arms"]},
                    "cv": {a: metrics["cv"]["ci"][a] for a in metrics["arms"]}},
        "referral": None if point is None else {**point.to_dict(), "rule": point.describe(), "arm": arm},
        "class_names": names,
    }


def _metric_rows(card: dict[str, Any], scope: str) -> list[dict[str, str]]:
    keys = list(HEADLINE) + [f"f1/{c}" for c in card["class_names"]]
    return [{"arm": arm, **{k: format_ci(*v[k][:3]) for k in keys if k in v}}
            for arm, v in card["metrics"][scope].items()]


def render_card(card: dict[str, Any]) -> str:
    """The card as Markdown."""
    td, model = card["training_data"], card["model"]
    prep = model["preprocess"]
    ext = card["external_validation"]
    lines = [f"# Model card: {card['name']} ({card['run']})", "",
             f"sonogan {card['sonogan_version']}, commit {card['git_commit']}, {card['created']}.", "",
             "## Intended use", "", card["intended_use"], "",
             ("Externally validated on: " + "; ".join(f"{e['dataset']} ({e['n_images']} images)" for e in ext)
              if ext else "**Not externally validated**: every number below comes from the development dataset "
              "(a hold-out split of it). Validate on local data with `sonogan evaluate` before any use."), "",
             "## Training data", "",
             f"- dataset **{td['dataset']}**: {td['n_development_images']} development images (train + validation "
             f"of {td['folds']} folds), {td['n_test_images']} hold-out test images; patients known: {td['patients_known']}",
             f"- manifest sha256 `{td['manifest_sha256']}`; images sha256 `{td['images_sha256']}` (over the "
             "development images' file hashes, listed in `training_hashes.csv`)",
             "- development class counts: " + ", ".join(f"{c} {n}" for c, n in td["development_class_counts"].items()),
             f"- synthetic images: {td['synthetic_images']} (never in validation or test)", "",
             "## Model", "",
             f"- primary model **{model['primary']}**, arms {', '.join(model['arms'])}, folds {model['folds_run']}; "
             f"{model['prediction']}",
             *[f"- member {m['architecture']}: {m['in_chans']} channel(s), {m['image_size']} px, TTA {m['tta']}, "
               f"temperature {m['temperature']}" for m in model["members"]], "",
             "## Inputs and preprocessing", "",
             f"- B-mode ultrasound image (PNG/JPEG or DICOM, cropped to the scan region); preset `{prep.get('name')}`: "
             f"median {prep.get('median_ksize')}, scan area {prep.get('scan_area')}, ROI {prep.get('roi')} "
             f"(margin {prep.get('roi_margin')}), {prep.get('size')} px ({prep.get('resize_mode')}), "
             f"{prep.get('channels')} channel(s), CLAHE {prep.get('clahe')}",
             "- the lesion ROI needs a lesion mask; without one the whole scan area is used (lower accuracy)"
             if prep.get("roi") == "lesion" else "- no lesion mask needed", "",
             "## Metrics", "",
             f"95 % percentile bootstrap CIs over {card['metrics']['bootstrap']['n_resamples']} resamples of "
             f"{card['metrics']['bootstrap']['unit']}s.", "",
             markdown_table(_metric_rows(card, "test"), f"Hold-out test (n={card['metrics']['n_test']})"), "",
             markdown_table(_metric_rows(card, "cv"), f"Pooled out-of-fold validation (n={card['metrics']['n_cv']})"),
             "", "## Referral operating point", "",
             card["referral"]["rule"] if card["referral"] else "none (no validation predictions found)", "",
             "## Limitations", "",
             "- one dataset; scanners, hospitals and populations outside it are untested unless listed above",
             "- probabilities are calibrated by a temperature fitted on validation images of the same dataset",
             "- the classes are the dataset's: a lesion of another kind is forced into one of them"]
    return "\n".join(lines) + "\n"


def write_model_card(run_dir: Path, out_dir: Path | None = None, external: Sequence[Path] = ()) -> tuple[Path, Path]:
    """Write ``model_card.md`` and ``model_card.json`` (and ``training_hashes.csv``) into
    ``out_dir`` (default: the run folder); returns the two card paths."""
    out = Path(out_dir) if out_dir is not None else Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    card = build_card(run_dir, out, external)
    write_json(out / "model_card.json", card)
    atomic_write_text(out / "model_card.md", render_card(card))
    return out / "model_card.md", out / "model_card.json"
