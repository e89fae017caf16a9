"""Exact (sha256) and near (perceptual hash) duplicate images, and split-group keys.

Near duplicates are pairs whose ``imagehash.phash`` values differ in at most
``max_distance`` of 64 bits; groups are the connected components of that relation.
:func:`duplicate_group_of` turns groups into a key per image so that duplicates (and
every image of the patients involved) land in ONE split group.

Example:
    >>> ds = load_dataset("datasets/mmotu")                       # doctest: +SKIP
    >>> groups = find_duplicate_groups(ds, max_distance=4)       # doctest: +SKIP
    >>> key = duplicate_group_of(ds, groups)                     # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image
from rich.progress import track
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from sonogan.data.manifest import Dataset
from sonogan.errors import SonoganInputError

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def read_image(path: Path) -> tuple[str, Image.Image]:
    """Read ``path`` once: (sha256 of its bytes, fully decoded PIL image).

    ``load()`` forces a full decode, so truncated JPEGs and garbage bytes fail here.
    """
    path = Path(path)
    if not path.is_file():
        raise SonoganInputError(path, "image file not found", "restore the file or fix its path in manifest.csv")
    data = path.read_bytes()
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except _DECODE_ERRORS as exc:
        raise SonoganInputError(path, f"image cannot be decoded ({type(exc).__name__}: {exc})".replace("\n", " "),
                                "re-export the image as PNG or JPEG, or remove its row") from None
    if img.width == 0 or img.height == 0:
        raise SonoganInputError(path, "image has zero size", "re-export the image")
    return hashlib.sha256(data).hexdigest(), img


def phash_int(img: Image.Image) -> int:
    """The 64-bit perceptual hash of a decoded image, as an int (for vectorised Hamming distances)."""
    bits = imagehash.phash(img).hash.flatten()
    return int(np.packbits(bits).view(">u8")[0])


def image_hashes(paths: list[Path]) -> list[tuple[str, imagehash.ImageHash]]:
    """(sha256 of bytes, perceptual hash) of each image; raises on unreadable images."""
    out = []
    for p in paths:
        sha, img = read_image(p)
        out.append((sha, imagehash.phash(img)))
    return out


def group_hashes(ids: list[str], shas: list[str], phashes: list[int], max_distance: int = 4,
                 block: int | None = None) -> dict[str, list[str]]:
    """Pure grouping: ids whose sha256 match or whose phash Hamming distance <= max_distance.

    Returns {group_id: [ids in input order]} for groups of >= 2, group ids ``exact-0001``
    (all members byte-identical) or ``near-0001``, numbered by first member.
    """
    n = len(ids)
    if n < 2:
        return {}
    h = np.array(phashes, dtype=np.uint64)
    block = block or max(1, 2**22 // n)  # about 4M pairs (32 MB) per block, whatever n is
    rows, cols = [], []
    # blocked all-pairs XOR + popcount: 1000 images is 1e6 pairs, done in milliseconds
    for start in range(0, n, block):
        d = np.bitwise_count(h[start:start + block, None] ^ h[None, :])
        i, j = np.nonzero(d <= max_distance)
        i = i + start
        keep = i < j
        rows.append(i[keep])
        cols.append(j[keep])
    first_sha: dict[str, int] = {}
    for k, s in enumerate(shas):  # byte-identical files are duplicates whatever max_distance is
        if s in first_sha:
            rows.append(np.array([first_sha[s]]))
            cols.append(np.array([k]))
        else:
            first_sha[s] = k
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    members: dict[int, list[int]] = {}
    for k, g in enumerate(comp):
        members.setdefault(int(g), []).append(k)
    groups: dict[str, list[str]] = {}
    for idx in sorted((m for m in members.values() if len(m) >= 2), key=lambda m: m[0]):
        kind = "exact" if len({shas[k] for k in idx}) == 1 else "near"
        groups[f"{kind}-{len(groups) + 1:04d}"] = [ids[k] for k in idx]
    return groups


def find_duplicate_groups(ds: Dataset, max_distance: int = 4, progress: bool = False) -> dict[str, list[str]]:
    """Duplicate groups (>= 2 members) over every image in the manifest."""
    shas, hashes = [], []
    for rel in track(list(ds.manifest["image"]), description="hashing images", disable=not progress):
        sha, img = read_image(ds.path(rel))
        shas.append(sha)
        hashes.append(phash_int(img))
    return group_hashes(list(ds.manifest["image_id"]), shas, hashes, max_distance)


def duplicate_group_of(ds: Dataset, groups: dict[str, list[str]]) -> dict[str, str]:
    """image_id -> split group key. Without duplicates the key is the patient_id; patients
    linked through a duplicate group share one key (the smallest patient_id of the linked set)."""
    patient = dict(zip(ds.manifest["image_id"], ds.manifest["patient_id"]))
    parent: dict[str, str] = {p: p for p in patient.values()}

    def root(p: str) -> str:  # union-find over patients: a few lines, no library needed for dict keys
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for ids in groups.values():
        pats = [patient[i] for i in ids if i in patient]
        for p in pats[1:]:
            a, b = root(pats[0]), root(p)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {i: root(p) for i, p in patient.items()}
