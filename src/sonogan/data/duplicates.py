"""Exact (sha256) and near (perceptual hash) duplicate images, within a dataset and across two.

Every image is read by :func:`read_image` (one decode; clear one-line errors for missing,
empty, undecodable and oversized files) and hashed by :func:`phash_int`. Near duplicates
are pairs whose 64-bit phashes differ in at most ``max_distance`` bits (:func:`near_pairs`);
groups are the connected components of "near or byte-identical", found by the one
union-find of the package, :func:`union_find` (splits use it too, to merge patients).

Example:
    >>> union_find([("b", "c"), ("c", "a")], ["a", "b", "c", "d"])
    {'a': 'a', 'b': 'a', 'c': 'a', 'd': 'd'}
    >>> group_hashes(["x", "y", "z"], ["s1", "s1", "s2"], [0b0, 0b0, 0b1111], max_distance=2)
    {'exact-0001': ['x', 'y']}
    >>> ds = load_dataset("datasets/mmotu")                        # doctest: +SKIP
    >>> find_duplicate_groups(ds, max_distance=4)                  # doctest: +SKIP
    {'near-0001': ['mmotu_12', 'mmotu_845'], ...}
    >>> cross_pairs(dataset_hashes(ds), dataset_hashes(load_dataset("datasets/external")), 4)    # doctest: +SKIP
    [{'a': 'mmotu_12', 'b': 'ext_3', 'distance': 0, 'kind': 'exact', ...}]
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import imagehash
import numpy as np
import pandas as pd
from PIL import Image
from rich.progress import track

from sonogan.data.manifest import Dataset
from sonogan.imageio import MAX_PIXELS, open_image  # noqa: F401  (MAX_PIXELS: kept importable here)

K = TypeVar("K", str, int)


def read_image(path: Path) -> tuple[str, Image.Image]:
    """Read ``path`` once: (sha256 of its bytes, fully decoded PIL image), through the one safe
    decoder (:func:`sonogan.imageio.open_image`: the pixel limit is checked from the header)."""
    data, img = open_image(path)
    return hashlib.sha256(data).hexdigest(), img


def phash_int(img: Image.Image) -> int:
    """The 64-bit perceptual hash of a decoded image, as an int (for vectorised Hamming distances)."""
    bits = imagehash.phash(img).hash.flatten()
    return int(np.packbits(bits).view(">u8")[0])


def union_find(links: Iterable[Iterable[K]], items: Iterable[K]) -> dict[K, K]:
    """item -> its component's root; each link joins its members. Roots are the smallest
    member (so names are stable whatever the link order); items only in links are added."""
    parent: dict[K, K] = {i: i for i in items}

    def find(x: K) -> K:
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving keeps the trees flat
            x = parent[x]
        return x

    for link in links:
        members = list(link)
        for m in members:
            parent.setdefault(m, m)
        for m in members[1:]:
            a, b = find(members[0]), find(m)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {i: find(i) for i in parent}


def near_pairs(a: list[int], b: list[int], max_distance: int,
               block: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, distance) for every phash pair a[i], b[j] within ``max_distance`` bits."""
    ha, hb = np.array(a, dtype=np.uint64), np.array(b, dtype=np.uint64)
    block = block or max(1, 2**22 // max(1, len(hb)))  # about 4M pairs (32 MB) per block
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, len(ha), block):  # 1000 x 1000 images is 1e6 XOR + popcounts: milliseconds
        d = np.bitwise_count(ha[start:start + block, None] ^ hb[None, :])
        i, j = np.nonzero(d <= max_distance)
        out.append((i + start, j, d[i, j]))
    if not out:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, int)
    return tuple(np.concatenate(parts) for parts in zip(*out))  # type: ignore[return-value]


def group_hashes(ids: list[str], shas: list[str], phashes: list[int], max_distance: int = 4,
                 block: int | None = None) -> dict[str, list[str]]:
    """Pure grouping: ids whose sha256 match or whose phash Hamming distance <= max_distance.

    Returns {group_id: [ids in input order]} for groups of >= 2, group ids ``exact-0001``
    (all members byte-identical) or ``near-0001``, numbered by first member.
    """
    i, j, _ = near_pairs(phashes, phashes, max_distance, block)
    keep = i < j
    links = [(int(x), int(y)) for x, y in zip(i[keep], j[keep])]
    first_sha: dict[str, int] = {}
    for k, s in enumerate(shas):  # byte-identical files are duplicates whatever max_distance is
        links.append((first_sha.setdefault(s, k), k))
    members: dict[int, list[int]] = {}
    for k, r in sorted(union_find(links, range(len(ids))).items()):
        members.setdefault(r, []).append(k)
    groups: dict[str, list[str]] = {}
    for idx in sorted((m for m in members.values() if len(m) >= 2), key=lambda m: m[0]):
        kind = "exact" if len({shas[k] for k in idx}) == 1 else "near"
        groups[f"{kind}-{len(groups) + 1:04d}"] = [ids[k] for k in idx]
    return groups


def dataset_hashes(ds: Dataset, progress: bool = False, workers: int | None = None) -> pd.DataFrame:
    """image_id, image, sha256, phash of every row of ``ds`` (each image decoded once)."""
    def one(rel: str) -> tuple[str, int]:
        sha, img = read_image(ds.path(rel))
        return sha, phash_int(img)

    rels = list(ds.manifest["image"])
    # PIL releases the GIL while decoding, so a few threads overlap reads and decodes
    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
        rows = list(track(pool.map(one, rels), total=len(rels), description=f"hashing {ds.spec.name}",
                          disable=not progress))
    return pd.DataFrame({"image_id": list(ds.manifest["image_id"]), "image": rels,
                         "sha256": [r[0] for r in rows], "phash": [r[1] for r in rows]})


def find_duplicate_groups(ds: Dataset, max_distance: int = 4, progress: bool = False) -> dict[str, list[str]]:
    """Duplicate groups (>= 2 members) over every image in the manifest."""
    h = dataset_hashes(ds, progress)
    return group_hashes(list(h["image_id"]), list(h["sha256"]), list(h["phash"]), max_distance)


def cross_pairs(a: pd.DataFrame, b: pd.DataFrame, max_distance: int = 4) -> list[dict[str, Any]]:
    """Pairs (one image of ``a``, one of ``b``) that are byte-identical or near duplicates.

    ``a`` and ``b`` are :func:`dataset_hashes` tables; each pair gives both ids and image
    paths, the phash distance and ``kind`` ("exact" when the bytes match), sorted by a's row.
    """
    i, j, d = near_pairs(list(a["phash"]), list(b["phash"]), max_distance)
    found = {(int(x), int(y)): int(z) for x, y, z in zip(i, j, d)}
    b_rows: dict[str, list[int]] = {}
    for k, s in enumerate(b["sha256"]):
        b_rows.setdefault(s, []).append(k)
    for x, s in enumerate(a["sha256"]):  # equal bytes count whatever max_distance is
        for y in b_rows.get(s, []):
            found[(x, y)] = 0
    return [{"a": a["image_id"].iat[x], "b": b["image_id"].iat[y], "a_image": a["image"].iat[x],
             "b_image": b["image"].iat[y], "distance": dist,
             "kind": "exact" if a["sha256"].iat[x] == b["sha256"].iat[y] else "near"}
            for (x, y), dist in sorted(found.items())]
