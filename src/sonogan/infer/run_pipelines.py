"""Ship a run's lesion-ROI models with their segmenters: ``pipeline.json`` beside each fold's model.

An experiment arm on a lesion-ROI preset needs a drawn mask on every scan; paired with a
``sonogan lesion`` segmenter it becomes a :class:`~sonogan.infer.pipeline.Pipeline` that does
not. :func:`write_run_pipelines` writes ``folds/foldK/<arm>/pipeline.json`` for the arm's model
of every fold (the ensemble where there is one, as ``sonogan predict`` chooses it,
:func:`~sonogan.infer.resolve.run_model_files`). The segmenter is either one ``best.pt`` for
every fold, or a ``sonogan lesion`` run: then fold K's segmenter goes with fold K's classifier,
and the two runs must share their splits (same ``splits_sha256`` in ``run.json``), so neither
stage of a fold has seen that fold's validation or the hold-out test images.

Example:
    >>> write_run_pipelines("runs/mmotu-roi", "runs/lesion-mmotu", arm="baseline")   # doctest: +SKIP
    [PosixPath('runs/mmotu-roi/folds/fold0/baseline/pipeline.json'), ...]
"""

from __future__ import annotations

from pathlib import Path

from sonogan import layout
from sonogan.errors import SonoganInputError
from sonogan.infer.pipeline import FILE_NAME, write_pipeline
from sonogan.infer.resolve import run_model_files

SEGMENTER_ARM = "segmentation"


def fold_segmenter(segmenter: Path, fold: int, run_splits: str | None, arm: str = SEGMENTER_ARM) -> Path:
    """The segmenter for ``fold``: ``segmenter`` itself (a file), or a lesion run's fold ``fold``
    ``arm`` (the run's splits must be ``run_splits``)."""
    if not layout.is_run(segmenter):
        return segmenter
    theirs = layout.read_info(segmenter).get("splits_sha256")
    if run_splits is None or theirs != run_splits:
        raise SonoganInputError(segmenter, "the lesion run's splits differ from the experiment's (splits_sha256), so "
                                "its fold segmenters may have trained on the classifiers' held-out images",
                                "run 'sonogan lesion' with the experiment's splits, or pass one segmenter best.pt")
    path = layout.arm_dir(segmenter, fold, arm) / layout.BEST_FILE
    if not path.is_file():
        raise SonoganInputError(path, f"no '{arm}' segmenter in fold {fold} of the lesion run",
                                "finish that fold, or pass one segmenter best.pt for every fold")
    return path


def write_run_pipelines(run_dir: str | Path, segmenter: str | Path, arm: str | None = None,
                        model: str | None = None, segmenter_arm: str = SEGMENTER_ARM) -> list[Path]:
    """``pipeline.json`` beside ``arm``'s model in every fold of ``run_dir``; returns the files."""
    run_dir, segmenter = Path(run_dir), Path(segmenter)
    splits = layout.read_info(run_dir).get("splits_sha256")
    written = []
    for f in run_model_files(run_dir, arm, model):
        seg = fold_segmenter(segmenter, f.fold, splits, segmenter_arm)  # type: ignore[arg-type]
        written.append(write_pipeline(layout.arm_dir(run_dir, f.fold, f.arm) / FILE_NAME,  # type: ignore[arg-type]
                                      seg, f.path))
    return written
