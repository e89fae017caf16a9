"""The phantom's config (a pydantic model, so YAML files and the CLI can set every knob).

Example:
    >>> cfg = PhantomConfig(n_benign=4, n_borderline=2, n_malignant=3, image_size=128)
    >>> cfg.n_patients, cfg.n_images
    (9, 27)
"""

from __future__ import annotations

from pydantic import Field

from sonogan.config import StrictModel


class PhantomConfig(StrictModel):
    """Knobs of the built-in synthetic cohort.

    The defaults (68 patients, 204 images of 256 px) keep the flagship's class ratio
    390:44:202 at about a tenth of its size (``--scale 10`` gives 680 patients; the flagship
    had 636 and 6 images each) and take a few seconds on 2 CPU cores.
    """

    seed: int = 0
    n_benign: int = Field(39, ge=2, description="benign patients (flagship: 390)")
    n_borderline: int = Field(9, ge=2, description="borderline patients (flagship: 44)")
    n_malignant: int = Field(20, ge=2, description="malignant patients (flagship: 202)")
    images_per_patient: int = Field(3, ge=1, le=64, description="views of the same lesion (flagship: 6)")
    image_size: int = Field(256, ge=64, le=1024, description="square output side in px")
    annotated_fraction: float = Field(0.3, ge=0.0, le=1.0,
                                      description="share of images with burned-in text, callipers, arrows")
    styles: int = Field(3, ge=1, le=32, description="number of scanner styles (gain, speckle, fan, tint)")
    difficulty: float = Field(0.5, ge=0.0, le=1.0,
                              description="share of look-alike lesions: 0 = textbook only, 0.5 = default, "
                                          "1 = twice the default")
    annotation_bias: float = Field(0.0, ge=0.0, le=1.0,
                                   description="make annotations a confounder: annotation probability "
                                               "x(1-b) benign, x1 borderline, x(1+b) malignant")
    ca125_missing: float = Field(0.0, ge=0.0, le=1.0,
                                 description="share of patients with CA-125 left empty (missing)")

    @property
    def counts(self) -> dict[str, int]:
        return {"benign": self.n_benign, "borderline": self.n_borderline, "malignant": self.n_malignant}

    @property
    def n_patients(self) -> int:
        return self.n_benign + self.n_borderline + self.n_malignant

    @property
    def n_images(self) -> int:
        return self.n_patients * self.images_per_patient
