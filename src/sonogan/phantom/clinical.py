"""Clinical variables of the phantom, related to the class as in the literature.

- post-menopausal status and referral to an oncology centre both raise the pre-test
  probability of malignancy (IOTA ADNEX uses age, centre type and CA-125); in a general
  (non-oncology) centre malignant patients are mostly post-menopausal, in an oncology centre
  much less so (Rogmans 2025, fig. 4);
- age: malignant patients are older, borderline patients are the youngest (BOTs are a
  disease of younger women, hence fertility-sparing surgery);
- CA-125 is log-normal, raised in malignancy but overlapping: endometriomas and some benign
  and borderline tumours also raise it.

Example:
    >>> import numpy as np
    >>> row = sample_clinical("malignant", "solid", np.random.default_rng(0))
    >>> sorted(row), all(check_clinical_value(CLINICAL[k], v) is None for k, v in row.items())
    (['age', 'ca125', 'centre', 'menopausal'], True)
"""

from __future__ import annotations

import numpy as np

from sonogan.data.manifest import ClinicalVariable, check_clinical_value  # noqa: F401  (doctest)

CLINICAL: dict[str, ClinicalVariable] = {
    "menopausal": ClinicalVariable(type="binary", description="1 = post-menopausal (peri- counted as post)"),
    "centre": ClinicalVariable(type="categorical", levels=["oncology", "general"],
                               description="type of centre that examined the patient"),
    "age": ClinicalVariable(type="continuous", min=18, max=95, unit="years", description="age at the scan"),
    "ca125": ClinicalVariable(type="continuous", min=0, max=10000, unit="U/mL",
                              description="serum CA-125 (empty = not measured)"),
}

#: P(oncology centre), mean age, CA-125 median (U/mL) and log-sd per class
_CENTRE = {"benign": 0.30, "borderline": 0.50, "malignant": 0.72}
_AGE = {"benign": 44.0, "borderline": 40.0, "malignant": 57.0}
_CA125 = {"benign": (20.0, 0.9), "borderline": (30.0, 1.0), "malignant": (110.0, 1.5)}


def sample_clinical(label: str, kind: str, rng: np.random.Generator, ca125_missing: float = 0.0) -> dict[str, str]:
    """One patient's clinical values, as manifest strings."""
    oncology = rng.random() < _CENTRE[label]
    mean = _AGE[label] + (4.0 if label == "malignant" and not oncology else 0.0)
    age = int(np.clip(round(rng.normal(mean, 13.0)), 18, 95))
    post = age > rng.normal(51.0, 3.0)                 # menopause around 51, with spread
    median, sd = _CA125[label]
    if kind in ("ground_glass", "dermoid"):            # endometriomas raise CA-125 too
        median = 40.0
    ca = float(np.clip(median * np.exp(rng.normal(0.0, sd)), 1.0, 10000.0))
    missing = rng.random() < ca125_missing
    return {"menopausal": "1" if post else "0", "centre": "oncology" if oncology else "general",
            "age": str(age), "ca125": "" if missing else f"{ca:.1f}"}
