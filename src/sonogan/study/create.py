"""Create a reader study: sample real and synthetic images, re-encode them, make rater links.

Each input is a sonogan dataset folder (``manifest.csv`` + ``dataset.yaml``; its real rows for
``--real``, its synthetic rows for ``--synthetic``, e.g. the output of ``sonogan synth
sample``) or a plain folder of images (a sub-folder name is taken as the class). ``n`` images
are drawn, ``round(n * ratio)`` of them synthetic, with the study seed.

What a rater could learn ground truth from is removed here: every image is decoded, turned
grey, resized so its longer side is ``size`` pixels and re-encoded as a PNG without metadata
(no EXIF, no file name, the same format and size range for both sources), stored in the
database and served under a random key. Each rater gets a random token (``secrets``) and their
own order, a permutation drawn from a recorded seed; the admin gets a separate token.

Example:
    >>> cfg = StudyConfig(name="hgs", n=40, ratio=0.5, raters=["ana", "ben"])
    >>> created = create_study("runs/study.db", Path("runs/mmotu"), Path("runs/syn-hgs"), cfg)  # doctest: +SKIP
    >>> sorted(created.rater_tokens)                                                           # doctest: +SKIP
    ['ana', 'ben']
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from pydantic import Field, field_validator

from sonogan.config import StrictModel
from sonogan.data.manifest import MANIFEST_NAME, SPEC_NAME, load_dataset
from sonogan.errors import SonoganInputError
from sonogan.preprocess.cache import decode_image
from sonogan.preprocess.presets import pipeline, run_pipeline
from sonogan.preprocess.transforms import Compose
from sonogan.study.db import Assignment, Item, Rater, Study, hash_token, make_engine, session

RATER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


class StudyConfig(StrictModel):
    """A reader study's options (stored with the study)."""

    name: str = Field("reader study", min_length=1, max_length=200)
    n: int = Field(40, ge=2, description="images in the study (every rater sees all of them)")
    ratio: float = Field(0.5, ge=0.0, le=1.0, description="fraction of the images that are synthetic")
    raters: list[str] = Field(min_length=1, description="rater names (letters, digits, _ . -)")
    seed: int = 0
    size: int = Field(256, ge=32, le=2048, description="longer side of the served images, in pixels")
    classes: list[str] | None = Field(None, description="only images of these classes (default: all)")
    preset: str | None = Field(None, description="sonogan preset the real images pass through first (e.g. gan-64)")

    @field_validator("raters")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        bad = [name for name in v if not RATER_NAME.match(name)]
        if bad:
            raise ValueError(f"rater names {bad} must be 1-64 letters, digits, '_', '.' or '-'")
        if len(set(v)) != len(v):
            raise ValueError("rater names must be unique")
        return v


@dataclass
class Candidate:
    path: Path
    label: str | None
    mask: Path | None = None


@dataclass
class CreatedStudy:
    """What the study's creator needs: the id and the tokens (only hashes are stored)."""

    study_id: int
    admin_token: str
    rater_tokens: dict[str, str] = field(default_factory=dict)


def image_set(path: Path, source: str) -> tuple[list[Candidate], list[str]]:
    """The images (with class or None) of one input, and the class names it declares."""
    if (path / MANIFEST_NAME).is_file() and (path / SPEC_NAME).is_file():
        ds = load_dataset(path)
        rows = ds.manifest[ds.manifest["source"] == source]
        return ([Candidate(ds.path(r.image), r.label or None, ds.path(r.mask) if r.mask else None)
                 for r in rows.itertuples()], list(ds.spec.classes))
    if not path.is_dir():
        raise SonoganInputError(path, "folder not found", "pass a dataset folder or a folder of images")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    found = [Candidate(p, p.parent.name if p.parent != path else None) for p in files]
    return found, sorted({c.label for c in found if c.label})


def draw(pool: list[Candidate], k: int, classes: list[str] | None, rng: np.random.Generator,
         where: Path) -> list[Candidate]:
    """k images drawn without replacement from ``pool`` (only ``classes`` when given)."""
    if classes is not None:
        pool = [c for c in pool if c.label in classes]
    if len(pool) < k:
        raise SonoganInputError(where, f"needs {k} images but has {len(pool)}"
                                + (f" of classes {classes}" if classes else ""),
                                "lower --n, change --ratio, or add images")
    picked = rng.choice(len(pool), size=k, replace=False) if k else []
    return [pool[int(i)] for i in picked]


def load_pixels(c: Candidate, pipe: Compose | None) -> np.ndarray:
    """Grey uint8 pixels of a candidate, through the preset pipeline ``pipe`` when given."""
    fix = "remove the file or fix it, then create the study again"
    if pipe is None:
        return decode_image(c.path, grey=True, fix=fix)
    mask = decode_image(c.mask, grey=True, fix=fix) if c.mask is not None else None
    img = run_pipeline(pipe, decode_image(c.path, fix=fix), mask).image
    img = img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img


def encode_png(img: np.ndarray, size: int) -> bytes:
    """Longer side ``size``, PNG without metadata (OpenCV writes no text chunks)."""
    scale = size / max(img.shape)
    shape = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
    img = cv2.resize(img, shape, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    ok, buf = cv2.imencode(".png", img)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 grey image
        raise SonoganInputError("study image", "cannot be re-encoded as PNG", "convert it to PNG first")
    return buf.tobytes()


def rater_order(n: int, study_seed: int, rater_index: int) -> tuple[int, list[int]]:
    """(recorded seed, permutation of range(n)) for one rater: a seed per rater from the study seed."""
    seed = int(np.random.SeedSequence([study_seed, rater_index]).generate_state(1)[0] >> 1)
    return seed, [int(i) for i in np.random.default_rng(seed).permutation(n)]


def create_study(db: str | Path, real: Path, synthetic: Path, cfg: StudyConfig) -> CreatedStudy:
    """Sample, re-encode and store a study; returns the tokens (shown once, stored hashed)."""
    rng = np.random.default_rng(cfg.seed)
    real_pool, real_classes = image_set(real, "real")
    syn_pool, syn_classes = image_set(synthetic, "synthetic")
    n_syn = round(cfg.n * cfg.ratio)
    picked = ([(c, "real") for c in draw(real_pool, cfg.n - n_syn, cfg.classes, rng, real)]
              + [(c, "synthetic") for c in draw(syn_pool, n_syn, cfg.classes, rng, synthetic)])
    # stored in a random order, so database ids say nothing about the source either
    picked = [picked[int(i)] for i in rng.permutation(len(picked))]
    pipe = pipeline(cfg.preset) if cfg.preset else None
    pngs = [encode_png(load_pixels(c, pipe if src == "real" else None), cfg.size) for c, src in picked]
    classes = list(dict.fromkeys(real_classes + syn_classes))
    created = CreatedStudy(0, secrets.token_urlsafe(24))
    engine = make_engine(db)
    with session(engine) as s:
        study = Study(name=cfg.name, seed=cfg.seed, admin_token_hash=hash_token(created.admin_token),
                      classes=classes, config={**cfg.model_dump(), "real": str(real), "synthetic": str(synthetic)})
        s.add(study)
        s.flush()
        items = [Item(study_id=study.id, key=secrets.token_urlsafe(12), source=src, label=c.label,
                      origin=str(c.path), png=png) for (c, src), png in zip(picked, pngs)]
        s.add_all(items)
        s.flush()
        for index, name in enumerate(cfg.raters):
            token = secrets.token_urlsafe(24)
            seed, order = rater_order(len(items), cfg.seed, index)
            rater = Rater(study_id=study.id, name=name, token_hash=hash_token(token), order_seed=seed)
            s.add(rater)
            s.flush()
            s.add_all(Assignment(rater_id=rater.id, position=p, item_id=items[i].id) for p, i in enumerate(order))
            created.rater_tokens[name] = token
        created.study_id = study.id
    engine.dispose()
    return created
