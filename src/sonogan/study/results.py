"""A study's results: the admin summary (JSON), the answers as CSV, and the report section.

The summary follows the seed papers: realism mean +- SD per source (``000_*`` §3.1), per rater
the real-vs-synthetic accuracy with an exact binomial CI (50 % = indistinguishable) and the
class accuracy on real vs synthetic images (``004_*`` Table 4), and the agreement between raters
(Fleiss' kappa on the real/synthetic calls of the images every rater answered; Krippendorff's
alpha, which allows missing answers, on those calls, the class calls and the realism scores).
Tables and the report section drawn from a summary are in :mod:`sonogan.study.report`.

Example:
    >>> summary = study_summary(engine, study_id=1)              # doctest: +SKIP
    >>> summary["real_vs_synthetic"]["pooled"]["accuracy"]       # doctest: +SKIP
    0.55
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, select

from sonogan.csvsafe import safe_csv_text
from sonogan.errors import SonoganInputError
from sonogan.study.db import SOURCES, Answer, Assignment, Item, Rater, Study, session
from sonogan.study.report import FORMAT
from sonogan.study.stats import (agreement_table, binomial_accuracy, fleiss_kappa, krippendorff_alpha, mean_sd,
                                 ratings_matrix)

CSV_COLUMNS = ["rater", "position", "item", "source", "label", "origin", "realism", "source_call",
               "source_correct", "class_call", "class_correct", "comment", "answered_at"]


def pick_study(engine: Engine, study_id: int | None, where: str) -> int:
    """``study_id`` when it exists, else the database's only study; SonoganInputError otherwise."""
    with session(engine) as s:
        ids = list(s.scalars(select(Study.id).order_by(Study.id)).all())
    if study_id is not None and study_id in ids:
        return study_id
    if study_id is None and len(ids) == 1:
        return ids[0]
    problem = f"study {study_id} not found" if study_id is not None else f"{len(ids)} studies"
    raise SonoganInputError(where, problem, f"pass --study with one of: {', '.join(map(str, ids)) or 'none'}")


def answers_frame(engine: Engine, study_id: int) -> pd.DataFrame:
    """One row per answer with the ground truth beside it (admin only), in CSV_COLUMNS order."""
    query = (select(Rater.name, Answer.position, Item.key, Item.source, Item.label, Item.origin, Answer.realism,
                    Answer.source_call, Answer.class_call, Answer.comment, Answer.created_at)
             .join(Answer, Answer.rater_id == Rater.id).join(Item, Item.id == Answer.item_id)
             .where(Rater.study_id == study_id).order_by(Rater.name, Answer.position))
    with session(engine) as s:
        rows = s.execute(query).all()
    df = pd.DataFrame(rows, columns=["rater", "position", "item", "source", "label", "origin", "realism",
                                     "source_call", "class_call", "comment", "answered_at"])
    df["source_correct"] = df["source_call"] == df["source"]
    # None where the image has no class or the rater gave none
    df["class_correct"] = [None if not (lab and call) else lab == call for lab, call in zip(df["label"], df["class_call"])]
    df["answered_at"] = df["answered_at"].astype(str)
    return df[CSV_COLUMNS]


def answers_csv(engine: Engine, study_id: int) -> str:
    """Every answer with its ground truth as CSV; every text cell made spreadsheet-safe
    (:func:`sonogan.csvsafe.safe_csv_text`: OWASP's formula starts, CRLF rows)."""
    return safe_csv_text(answers_frame(engine, study_id))


def _class_accuracy(df: pd.DataFrame) -> dict[str, Any]:
    rated = df[df["class_correct"].notna()]
    out = {src: binomial_accuracy(int(rated.loc[rated["source"] == src, "class_correct"].sum()),
                                  int((rated["source"] == src).sum())) for src in SOURCES}
    return {**out, "total": binomial_accuracy(int(rated["class_correct"].sum()), len(rated))}


def _calls(df: pd.DataFrame, column: str) -> dict[str, dict[int, Any]]:
    rows = df[df[column].notna() & (df[column] != "")]
    return {r: dict(zip(g["item"], g[column])) for r, g in rows.groupby("rater")}


def _agreement(df: pd.DataFrame, raters: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"raters": len(raters)}
    calls = _calls(df, "source_call")
    table = agreement_table(calls, list(SOURCES)) if len(calls) >= 2 else []
    out["source_call_fleiss_kappa"] = {"value": fleiss_kappa(table) if table else math.nan, "n_items": len(table)}
    for key, column, metric in (("source_call", "source_call", "nominal"), ("class_call", "class_call", "nominal"),
                                ("realism", "realism", "interval")):
        c = _calls(df, column)
        value = krippendorff_alpha(ratings_matrix(c), metric) if len(c) >= 2 else math.nan  # type: ignore[arg-type]
        out[f"{key}_krippendorff_alpha"] = {"value": value, "metric": metric}
    return out


def study_summary(engine: Engine, study_id: int) -> dict[str, Any]:
    """Everything the admin page, the JSON export and the experiment report show."""
    with session(engine) as s:
        study = s.get(Study, study_id)
        if study is None:
            raise KeyError(study_id)
        raters = s.scalars(select(Rater.name).where(Rater.study_id == study_id).order_by(Rater.id)).all()
        items = s.execute(select(Item.source, Item.label).where(Item.study_id == study_id)).all()
        totals = dict(s.execute(select(Rater.name, func.count()).join(Assignment, Assignment.rater_id == Rater.id)
                                .where(Rater.study_id == study_id).group_by(Rater.name)).all())
        info = {"id": study.id, "name": study.name, "created_at": f"{study.created_at:%Y-%m-%d %H:%M} UTC", "seed": study.seed,
                "classes": study.classes, "n_items": len(items),
                "n_real": sum(src == "real" for src, _ in items), "n_synthetic": sum(src == "synthetic" for src, _ in items),
                "raters": list(raters)}
    df = answers_frame(engine, study_id)
    per_rater = {r: df[df["rater"] == r] for r in raters}
    return json_safe({
        "format": FORMAT, "version": 1, "study": info,
        "progress": {r: {"answered": len(per_rater[r]), "total": totals.get(r, 0)} for r in raters},
        "realism": {src: mean_sd(df.loc[df["source"] == src, "realism"].tolist()) for src in SOURCES}
        | {"per_rater": {r: {src: mean_sd(g.loc[g["source"] == src, "realism"].tolist()) for src in SOURCES}
                         for r, g in per_rater.items()}},
        "real_vs_synthetic": {"per_rater": {r: binomial_accuracy(int(g["source_correct"].sum()), len(g))
                                            for r, g in per_rater.items()},
                              "pooled": binomial_accuracy(int(df["source_correct"].sum()), len(df))},
        "class_accuracy": {r: _class_accuracy(g) for r, g in per_rater.items()},
        "agreement": _agreement(df, list(raters)),
    })



def json_safe(obj: Any) -> Any:
    """NaN -> None everywhere (JSON has no NaN; a statistic that cannot be computed is null)."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
