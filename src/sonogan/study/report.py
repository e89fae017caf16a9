"""Draw a reader study's summary: tables for the admin page and the experiment report's section.

Drawing only: this reads the summary dict (``results.json`` / ``sonogan study export``) and
touches no database. The experiment report calls :func:`run_reader_study_section` with its run
folder, which shows ``<run>/reader_study.json`` when the file is there.

Example:
    >>> section = run_reader_study_section(Path("runs/exp"))   # None without reader_study.json
    >>> section is None
    True
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sonogan.report.html import Section, Table, format_ci
from sonogan.runs import read_format_json

FORMAT = "sonogan-reader-study"
RUN_FILE = "reader_study.json"


def _pct(acc: dict[str, Any]) -> str:
    """'7/10 = 70.0% (34.8 to 93.3)' (Table 4 style) or 'n/a' without answers."""
    if not acc["n"]:
        return "n/a"
    point = acc["accuracy"]
    low, high = (math.nan, math.nan) if acc["ci"][0] is None else acc["ci"]
    return f"{acc['k']}/{acc['n']} = " + format_ci(point, low, high, digits=3, percent=True)


def _value(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and x != x) else f"{x:.3f}"


def summary_tables(summary: dict[str, Any]) -> list[tuple[str, list[dict[str, str]]]]:
    """(caption, rows) tables of a summary: realism per source, Table 4 per rater, agreement."""
    realism = [{"Source": src, "Ratings": str(v["n"]), "Realism (1-5), mean ± SD":
                "n/a" if not v["n"] else f"{v['mean']:.2f} ± " + ("n/a" if v["sd"] is None else f"{v['sd']:.2f}")}
               for src, v in summary["realism"].items() if src != "per_rater"]
    raters = []
    for r, prog in summary["progress"].items():
        rvs, cls = summary["real_vs_synthetic"]["per_rater"][r], summary["class_accuracy"][r]
        raters.append({"Rater": r, "Answered": f"{prog['answered']}/{prog['total']}",
                       "Real vs synthetic correct (95% CI)": _pct(rvs),
                       "p vs 50%": _value(rvs["p_vs_chance"]),
                       "Class correct, real": _pct(cls["real"]), "Class correct, synthetic": _pct(cls["synthetic"]),
                       "Class correct, all": _pct(cls["total"])})
    pooled = summary["real_vs_synthetic"]["pooled"]
    raters.append({"Rater": "all raters", "Answered": str(pooled["n"]), "Real vs synthetic correct (95% CI)": _pct(pooled),
                   "p vs 50%": _value(pooled["p_vs_chance"])})
    agr = summary["agreement"]
    fleiss = agr["source_call_fleiss_kappa"]
    agreement = [{"Measure": f"Fleiss' kappa, real/synthetic calls ({fleiss['n_items']} images answered by all)",
                  "Value": _value(fleiss["value"])}]
    agreement += [{"Measure": f"Krippendorff's alpha ({agr[k]['metric']}), {label}", "Value": _value(agr[k]["value"])}
                  for k, label in (("source_call_krippendorff_alpha", "real/synthetic calls"),
                                   ("class_call_krippendorff_alpha", "class calls"),
                                   ("realism_krippendorff_alpha", "realism scores"))]
    return [("Realism per source (all ratings)", realism),
            ("Per rater: real-vs-synthetic accuracy (exact binomial 95% CI; 50% = indistinguishable) "
             "and class accuracy on real vs synthetic images (as Frid-Adar et al. Table 4)", raters),
            (f"Agreement between {agr['raters']} raters", agreement)]


def reader_study_section(summary: dict[str, Any]) -> Section:
    """The experiment report's section for a study's results JSON (``sonogan study export``)."""
    info = summary["study"]
    text = (f"Reader study *{info['name']}*: {info['n_items']} images ({info['n_real']} real, "
            f"{info['n_synthetic']} synthetic) shown to {len(info['raters'])} rater(s), each in their own "
            f"random order. A real-vs-synthetic accuracy whose CI covers 50 % means the raters could not tell "
            f"the synthetic images from real ones.")
    return Section("Reader study", text, tables=[Table(rows, caption) for caption, rows in summary_tables(summary)])


def run_reader_study_section(run_dir: Path) -> Section | None:
    """The section for ``run_dir/reader_study.json`` (written by ``sonogan study export``), or None."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return None
    summary = read_format_json(path, FORMAT, "reader-study results file",
                               "write it again with 'sonogan study export --out <run>/reader_study.json'")
    return reader_study_section(summary)
