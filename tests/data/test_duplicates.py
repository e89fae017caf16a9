"""Exact + perceptual duplicate groups, and split-group keys that keep duplicates together."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import imagehash
import pandas as pd
import pytest

from sonogan.data.duplicates import (duplicate_group_of, find_duplicate_groups, group_hashes,
                                     image_hashes, phash_int)
from sonogan.data.manifest import Dataset, DatasetSpec, load_dataset, write_dataset
from sonogan.errors import SonoganInputError

# hand-made 64-bit hashes: distances a-b 3, b-c 4, a-c 7, d far from all
A, B, C, D = 0b0, 0b111, 0b1111111, (1 << 64) - 1


@pytest.mark.parametrize("max_distance, expected", [
    (2, {}),
    (3, {"near-0001": ["a", "b"]}),
    (4, {"near-0001": ["a", "b", "c"]}),  # c joins through b (connected components)
    (64, {"near-0001": ["a", "b", "c", "d"]}),
])
def test_group_hashes_table(max_distance: int, expected: dict) -> None:
    assert group_hashes(["a", "b", "c", "d"], ["s1", "s2", "s3", "s4"], [A, B, C, D], max_distance) == expected


def test_group_hashes_exact_and_blocking() -> None:
    ids, shas, hashes = ["x", "y", "z", "w"], ["s", "t", "s", "u"], [A, D, A, C]
    assert group_hashes(ids, shas, hashes, 0) == {"exact-0001": ["x", "z"]}
    # the same answer when the all-pairs matrix is computed in blocks of one row
    assert group_hashes(ids, shas, hashes, 0, block=1) == {"exact-0001": ["x", "z"]}
    # equal sha256 counts as duplicate even with max_distance < 0 (no phash pair passes)
    assert group_hashes(ids, shas, hashes, -1) == {"exact-0001": ["x", "z"]}
    assert group_hashes(["only"], ["s"], [A]) == {}


def test_image_hashes_match_libraries(tmp_path: Path, dh) -> None:
    p = dh.write_image(tmp_path / "a.png", seed=1)
    [(sha, ph)] = image_hashes([p])
    assert sha == hashlib.sha256(p.read_bytes()).hexdigest()
    from PIL import Image
    assert ph == imagehash.phash(Image.open(p)) and phash_int(Image.open(p)) == int(str(ph), 16)
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(SonoganInputError, match="bad.png: image cannot be decoded"):
        image_hashes([tmp_path / "bad.png"])


def _dup_dataset(root: Path, dh) -> Dataset:
    """a (p1), b = byte copy of a (p2), c = a with a white corner, as JPEG (p3; phash distance 2),
    d distinct (p3), e distinct (p4)."""
    a = dh.write_image(root / "a.png", seed=1, size=(96, 96))
    (root / "b.png").write_bytes(a.read_bytes())
    c = cv2.imread(str(a))
    cv2.rectangle(c, (0, 0), (15, 15), (255, 255, 255), -1)
    cv2.imwrite(str(root / "c.jpg"), c, [cv2.IMWRITE_JPEG_QUALITY, 90])
    dh.write_image(root / "d.png", seed=2, size=(96, 96))
    dh.write_image(root / "e.png", seed=3, size=(96, 96))
    spec = DatasetSpec(name="dups", classes=["x", "y"], masks="none", min_patients_per_class=1)
    df = pd.DataFrame({"image_id": list("abcde"), "image": ["a.png", "b.png", "c.jpg", "d.png", "e.png"],
                       "label": list("xxyyx"), "patient_id": ["p1", "p2", "p3", "p3", "p4"]})
    write_dataset(root, spec, df)
    return load_dataset(root)


def test_find_duplicate_groups(tmp_path: Path, dh) -> None:
    ds = _dup_dataset(tmp_path, dh)
    assert find_duplicate_groups(ds, max_distance=4) == {"near-0001": ["a", "b", "c"]}
    assert find_duplicate_groups(ds, max_distance=1) == {"exact-0001": ["a", "b"]}


def test_duplicate_group_of_links_patients(tmp_path: Path, dh) -> None:
    ds = _dup_dataset(tmp_path, dh)
    keys = duplicate_group_of(ds, {"near-0001": ["a", "b", "c"]})
    # a, b, c (patients p1, p2, p3) share one key, and so does d because it belongs to p3
    assert keys == {"a": "p1", "b": "p1", "c": "p1", "d": "p1", "e": "p4"}
    assert duplicate_group_of(ds, {}) == {"a": "p1", "b": "p2", "c": "p3", "d": "p3", "e": "p4"}
