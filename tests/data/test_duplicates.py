"""Exact + perceptual duplicate groups, the one union-find, duplicates across two datasets,
and the one-line errors of reading an image (empty, not an image, decompression bomb)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import imagehash
import pandas as pd
import pytest

from sonogan.data.duplicates import (MAX_PIXELS, cross_pairs, dataset_hashes, find_duplicate_groups,
                                     group_hashes, phash_int, read_image, union_find)
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


def test_union_find_roots_are_smallest_member() -> None:
    assert union_find([], ["b", "a"]) == {"b": "b", "a": "a"}
    # c-d then a-c: the root is "a" whatever the order links arrive in; "e" only appears in a link
    assert union_find([("d", "c"), ("c", "a"), ("e", "d")], ["a", "b", "c", "d"]) == \
        {"a": "a", "b": "b", "c": "a", "d": "a", "e": "a"}
    assert union_find([(3, 1, 2)], range(5)) == {0: 0, 1: 1, 2: 1, 3: 1, 4: 4}


def test_read_image_hashes_match_libraries(tmp_path: Path, dh) -> None:
    p = dh.write_image(tmp_path / "a.png", seed=1)
    sha, img = read_image(p)
    assert sha == hashlib.sha256(p.read_bytes()).hexdigest() and img.size == (48, 40)
    from PIL import Image
    assert phash_int(img) == int(str(imagehash.phash(Image.open(p))), 16)


@pytest.mark.parametrize("content, message", [
    (b"", "a.png: file is empty (0 bytes); fix: "),
    (b"nope, not pixels", "a.png: not an image PIL can decode (unrecognised or corrupt format); fix: "),
    (b"\x89PNG\r\n\x1a\n" + bytes(40), "a.png: not an image PIL can decode"),
])
def test_read_image_says_what_is_wrong(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "a.png").write_bytes(content)
    with pytest.raises(SonoganInputError) as info:
        read_image(tmp_path / "a.png")
    assert str(info.value).startswith(str(tmp_path / message)) and "BytesIO" not in str(info.value)


# sonogan.data.duplicates silences this warning at import; pytest re-enables warnings per test
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("size", [(30000, 30000), (10000, 9000)])
def test_decompression_bomb_is_one_line(tmp_path: Path, dh, size: tuple[int, int]) -> None:
    # 30000^2 px trips PIL's own DecompressionBombError; 10000x9000 only its warning band
    bomb = dh.write_bomb_png(tmp_path / "bomb.png", *size)
    assert bomb.stat().st_size < 200
    with pytest.raises(SonoganInputError) as info:
        read_image(bomb)
    msg = str(info.value)
    assert msg.startswith(f"{bomb}: image is {size[0]} x {size[1]} px, larger than the limit of {MAX_PIXELS:,} px")
    assert "\n" not in msg and "; fix: downscale the image" in msg


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


def test_dataset_hashes_in_row_order(tmp_path: Path, dh) -> None:
    ds = _dup_dataset(tmp_path, dh)
    h = dataset_hashes(ds, workers=2)
    assert list(h["image_id"]) == list("abcde") and list(h.columns) == ["image_id", "image", "sha256", "phash"]
    assert h["sha256"].iat[0] == h["sha256"].iat[1] != h["sha256"].iat[2]


def test_cross_duplicates_exact_and_near(tmp_path: Path, dh) -> None:
    train = _dup_dataset(tmp_path / "train", dh)
    # the external set: a byte copy of train's d, a re-encoded near copy of e, one new image
    ext = tmp_path / "ext"
    ext.mkdir()
    (ext / "d_copy.png").write_bytes((tmp_path / "train/d.png").read_bytes())
    cv2.imwrite(str(ext / "e_near.jpg"), cv2.imread(str(tmp_path / "train/e.png")), [cv2.IMWRITE_JPEG_QUALITY, 85])
    dh.write_image(ext / "new.png", seed=77, size=(96, 96))
    spec = DatasetSpec(name="ext", classes=["x", "y"], masks="none", min_patients_per_class=1)
    write_dataset(ext, spec, pd.DataFrame({"image_id": ["t1", "t2", "t3"], "label": ["x", "y", "x"],
                                           "image": ["d_copy.png", "e_near.jpg", "new.png"]}))
    hashes = dataset_hashes(train), dataset_hashes(load_dataset(ext))
    pairs = cross_pairs(*hashes, max_distance=4)
    assert [(p["a"], p["b"], p["kind"]) for p in pairs] == [("d", "t1", "exact"), ("e", "t2", "near")]
    assert pairs[0]["distance"] == 0 and 0 <= pairs[1]["distance"] <= 4
    assert pairs[1]["a_image"] == "e.png" and pairs[1]["b_image"] == "e_near.jpg"
    # a byte-identical pair is found even when no phash distance is allowed
    assert [p["b"] for p in cross_pairs(*hashes, max_distance=-1)] == ["t1"]
