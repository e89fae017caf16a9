"""Study results: the summary from stored answers, study lookup, and the experiment-report section."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from sonogan.errors import SonoganInputError
from sonogan.report.html import render_report
from sonogan.report.markdown import render_markdown_summary
from sonogan.runs import write_json
from sonogan.study.create import StudyConfig, create_study
from sonogan.study.db import Answer, Assignment, Item, Rater, make_engine, session
from sonogan.study.report import reader_study_section, run_reader_study_section
from sonogan.study.results import json_safe, pick_study, study_summary


def _study(tmp_path: Path) -> str:
    for folder, label in (("real", "cyst"), ("syn", "cyst")):
        for i in range(3):
            path = tmp_path / folder / label / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(path)
    db = str(tmp_path / "s.db")
    create_study(db, tmp_path / "real", tmp_path / "syn", StudyConfig(n=4, raters=["ana", "ben"], size=32))
    return db


def _answer_all(db: str, rater: str, realism: dict[str, int], call: str) -> None:
    with session(make_engine(db, create=False)) as s:
        r = s.scalars(select(Rater).where(Rater.name == rater)).one()
        for a in s.scalars(select(Assignment).where(Assignment.rater_id == r.id)).all():
            item = s.get(Item, a.item_id)
            assert item is not None
            s.add(Answer(rater_id=r.id, position=a.position, item_id=item.id, realism=realism[item.source],
                         source_call=call, class_call="cyst", comment=""))


def test_summary_section_and_report(tmp_path: Path) -> None:
    db = _study(tmp_path)
    _answer_all(db, "ana", {"real": 4, "synthetic": 2}, "real")
    _answer_all(db, "ben", {"real": 5, "synthetic": 3}, "real")
    summary = study_summary(make_engine(db, create=False), 1)
    assert summary["realism"]["real"] == {"n": 4, "mean": 4.5, "sd": 0.5774}
    assert summary["realism"]["synthetic"] == {"n": 4, "mean": 2.5, "sd": 0.5774}
    assert summary["real_vs_synthetic"]["pooled"]["accuracy"] == 0.5
    assert summary["class_accuracy"]["ana"]["synthetic"] == {"k": 2, "n": 2, "accuracy": 1.0, "ci": [0.1581, 1.0],
                                                             "p_vs_chance": 0.5}
    # both raters call everything real: no variation, so kappa and alpha are undefined (null in JSON)
    assert summary["agreement"]["source_call_fleiss_kappa"] == {"value": None, "n_items": 4}
    # realism (ana, ben) per item: (4,5) x2, (2,3) x2 -> D_o = 8/8 = 1; the 8 values have SS 10,
    # so D_e = 2 * 8 * 10 / (8 * 7) = 20/7 and alpha = 1 - 7/20 = 0.65
    assert summary["agreement"]["realism_krippendorff_alpha"] == {"value": pytest.approx(0.65), "metric": "interval"}
    section = reader_study_section(summary)
    out = render_report([section], tmp_path / "report.html", "study")
    text = out.read_text()
    assert "Reader study" in text and "4/8 = 50.0% (15.7 to 84.3)" in text
    md = render_markdown_summary([section], title="study")
    assert run_reader_study_section(tmp_path) is None
    write_json(tmp_path / "reader_study.json", summary)
    assert run_reader_study_section(tmp_path) == section
    write_json(tmp_path / "reader_study.json", {"format": "something-else"})
    with pytest.raises(SonoganInputError, match="not a sonogan reader-study results file"):
        run_reader_study_section(tmp_path)
    assert "4.50 ± 0.58" in md and "n/a" in md


def test_pick_study_and_json_safe(tmp_path: Path) -> None:
    db = _study(tmp_path)
    engine = make_engine(db, create=False)
    assert pick_study(engine, None, db) == 1 and pick_study(engine, 1, db) == 1
    with pytest.raises(SonoganInputError, match="study 5 not found; fix: pass --study with one of: 1"):
        pick_study(engine, 5, db)
    assert json_safe({"a": [math.nan, 1.0], "b": (math.nan,)}) == {"a": [None, 1.0], "b": [None]}
