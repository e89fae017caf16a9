"""Lesion morphology of the phantom: per-class subtypes (after the IOTA terms) and their drawing.

Each patient gets one :class:`Lesion` (drawn once from its class's subtype table) that is
rendered into the canonical scene; every image of the patient sees that same lesion.

Why the classes overlap ON PURPOSE: on real scans borderline tumours (BOT) are hard because
they sit between benign and malignant morphology (the flagship paper's largest residual error
is BOT called malignant; expert accuracy is lowest for BOT). A phantom whose classes are
cleanly separable would make every method look perfect and make GAN augmentation pointless.
So each class contains look-alike subtypes of its neighbours (benign cysts with a septum or a
small solid projection, BOTs with a single projection that look like a simple cyst or with
thick solid parts that look malignant, malignant tumours with thin septa and little solid
tissue), and all continuous parameters (size, wall, fluid echogenicity, number and thickness
of septa, papillary size, solid fraction) have overlapping ranges. ``difficulty`` scales the
share of look-alikes: 0 = textbook lesions only, 0.5 = default, 1 = twice the default share.

Example:
    >>> import numpy as np
    >>> les = sample_lesion("borderline", np.random.default_rng(0), difficulty=0.5)
    >>> les.kind in SUBTYPES["borderline"]
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from sonogan.phantom.render import BASE_ATTENUATION, smooth_noise

#: subtype -> (weight, look-alike of another class?) per class
SUBTYPES: dict[str, dict[str, tuple[float, bool]]] = {
    "benign": {
        "unilocular": (0.42, False),        # simple / serous cyst: anechoic, thin smooth wall
        "ground_glass": (0.22, False),      # endometrioma-like homogeneous low-level echoes
        "septated": (0.12, False),          # cystadenoma with 1-2 thin septa (BOT-ish)
        "dermoid": (0.08, True),            # bright plug + shadow, hair lines (malignant-ish)
        "cystadenofibroma": (0.05, True),   # cyst with a small solid projection (BOT-ish)
        "fibroma": (0.07, True),            # solid, shadowing (malignant-ish)
    },
    "borderline": {
        "serous_papillary": (0.45, False),  # unilocular-solid: papillary projections
        "mucinous": (0.30, False),          # multilocular, thin septa, stained-glass locules
        "benign_like": (0.12, True),        # one tiny projection or a septum only
        "malignant_like": (0.13, True),     # thicker septa and a solid component
    },
    "malignant": {
        "solid": (0.38, False),             # mostly solid, heterogeneous, irregular, shadowing
        "multilocular_solid": (0.30, False),  # thick irregular septa + solid parts
        "unilocular_solid": (0.18, False),  # cyst with a large irregular solid component
        "borderline_like": (0.09, True),    # thin-ish septa, papillary-like parts, smooth outline
    },
}


@dataclass
class Lesion:
    """Morphology parameters of one lesion (lengths: fraction of image size or of the radius)."""

    kind: str
    radius: float = 0.18            # fraction of image size (at zoom 1)
    aspect: float = 0.85            # minor / major axis
    irregular: float = 0.03         # low-order outline harmonics (lobulation)
    rough: float = 0.005            # high-order outline roughness
    fluid: float = 0.04             # content echogenicity (1 = tissue)
    locule_spread: float = 0.1      # log-sd of echogenicity between locules
    wall: float = 2.6               # wall echogenicity
    wall_px: float = 1.6            # wall thickness (px at size 256)
    wall_irregular: float = 0.0     # thickness variation of the wall
    septa: int = 0
    septum_px: float = 1.3
    septum_irregular: float = 0.0
    papillae: int = 0
    papilla_size: float = 0.15      # height as fraction of the radius
    papilla_echo: float = 1.6
    solid: float = 0.0              # fraction of the interior that is solid tissue
    solid_echo: float = 1.0
    solid_het: float = 0.3
    solid_attn: float = 2.0         # attenuation of solid tissue (x soft tissue): shadowing
    necrosis: float = 0.0           # fraction of the solid part with cystic/necrotic spaces
    calcs: int = 0                  # calcifications (bright dots with a shadow)
    plug: bool = False              # dermoid plug
    hairs: int = 0                  # dermoid hair lines
    ill_defined: float = 0.4        # blur of the outer boundary (px at size 256)
    ascites: bool = False
    shape_seed: list[int] = field(default_factory=list)


def _u(rng: np.random.Generator, a: float, b: float) -> float:
    return float(rng.uniform(a, b))


def sample_kind(label: str, rng: np.random.Generator, difficulty: float) -> str:
    table = SUBTYPES[label]
    names = list(table)
    w = np.array([wt * (2.0 * difficulty if look else 1.0) for wt, look in table.values()])
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def sample_lesion(label: str, rng: np.random.Generator, difficulty: float = 0.5) -> Lesion:
    """Draw the subtype and the morphology parameters of one patient's lesion."""
    kind = sample_kind(label, rng, difficulty)
    u = lambda a, b: _u(rng, a, b)  # noqa: E731
    L = Lesion(kind=kind, aspect=u(0.65, 0.98), papilla_echo=u(1.5, 2.6),
               shape_seed=[int(x) for x in rng.integers(0, 2**31, 2)])
    if label == "benign":
        L.radius = u(0.11, 0.32)
        L.irregular, L.rough = u(0.0, 0.05), u(0.0, 0.008)
        L.wall, L.wall_px = u(1.5, 3.0), u(0.8, 1.8)
        if kind == "unilocular":
            L.fluid = u(0.015, 0.07)
            L.septa = int(rng.random() < 0.06)
        elif kind == "ground_glass":
            L.fluid = u(0.12, 0.3)
            L.septa = int(rng.random() < 0.12)
        elif kind == "septated":
            L.fluid, L.locule_spread = u(0.02, 0.12), u(0.1, 0.5)
            L.septa, L.septum_px = int(rng.integers(1, 3)), u(0.9, 1.6)
        elif kind == "dermoid":
            L.fluid, L.plug, L.hairs = u(0.2, 0.5), True, int(rng.integers(0, 7))
            L.calcs = int(rng.integers(0, 2))
        elif kind == "cystadenofibroma":
            L.fluid = u(0.02, 0.1)
            L.papillae, L.papilla_size = int(rng.integers(1, 3)), u(0.12, 0.3)
            L.septa = int(rng.random() < 0.3)
        elif kind == "fibroma":
            L.solid, L.solid_echo, L.solid_het = 1.0, u(0.09, 0.2), u(0.08, 0.2)
            L.solid_attn, L.wall, L.wall_px, L.ill_defined = u(2.0, 3.5), u(1.2, 1.8), u(0.6, 1.0), u(0.3, 0.8)
            L.radius = u(0.09, 0.2)
    elif label == "borderline":
        L.radius = u(0.14, 0.33)
        L.irregular, L.rough = u(0.02, 0.08), u(0.004, 0.015)
        L.wall, L.wall_px = u(1.8, 3.2), u(1.1, 2.2)
        if kind == "serous_papillary":
            L.fluid = u(0.02, 0.16)
            L.papillae, L.papilla_size = int(rng.integers(2, 8)), u(0.16, 0.36)
            L.septa, L.septum_px = int(rng.random() < 0.35), u(1.0, 1.6)
        elif kind == "mucinous":
            L.radius = u(0.2, 0.36)
            L.fluid, L.locule_spread = u(0.05, 0.3), u(0.5, 1.0)
            L.septa, L.septum_px = int(rng.integers(3, 8)), u(0.9, 1.7)
            L.papillae, L.papilla_size = int(rng.integers(0, 3)), u(0.06, 0.14)
        elif kind == "benign_like":
            L.fluid = u(0.02, 0.15)
            L.irregular = u(0.0, 0.05)
            if rng.random() < 0.6:
                L.papillae, L.papilla_size = 1, u(0.07, 0.14)
            else:
                L.septa, L.septum_px = 1, u(0.9, 1.5)
        elif kind == "malignant_like":
            L.fluid, L.locule_spread = u(0.04, 0.25), u(0.2, 0.6)
            L.septa, L.septum_px, L.septum_irregular = int(rng.integers(2, 5)), u(1.8, 3.2), u(0.2, 0.5)
            L.papillae, L.papilla_size = int(rng.integers(2, 5)), u(0.18, 0.35)
            L.solid, L.solid_echo, L.solid_het = u(0.12, 0.35), u(0.9, 1.4), u(0.25, 0.45)
            L.irregular, L.rough = u(0.06, 0.12), u(0.01, 0.025)
    else:  # malignant
        L.radius = u(0.15, 0.36)
        L.irregular, L.rough = u(0.06, 0.14), u(0.006, 0.02)
        L.wall, L.wall_px, L.wall_irregular = u(1.4, 2.6), u(1.6, 3.5), u(0.3, 0.6)
        L.ascites = rng.random() < 0.35
        # solid tissue is either hypo- or hyperechoic against the surroundings, and heterogeneous
        L.solid_echo = u(0.2, 0.4) if rng.random() < 0.35 else u(1.6, 2.6)
        L.solid_het, L.solid_attn = u(0.4, 0.75), u(1.6, 3.2)
        L.calcs = int(rng.integers(0, 4)) if rng.random() < 0.35 else 0
        if kind == "solid":
            L.solid, L.necrosis = u(0.82, 1.0), u(0.0, 0.18)
            L.wall, L.wall_px, L.ill_defined = 1.2, u(0.0, 1.5), u(0.6, 1.8)
        elif kind == "multilocular_solid":
            L.fluid, L.locule_spread = u(0.03, 0.25), u(0.3, 0.8)
            L.septa, L.septum_px, L.septum_irregular = int(rng.integers(2, 6)), u(2.5, 5.0), u(0.4, 0.8)
            L.solid, L.papillae, L.papilla_size = u(0.2, 0.5), int(rng.integers(1, 4)), u(0.25, 0.45)
        elif kind == "unilocular_solid":
            L.fluid = u(0.03, 0.2)
            L.solid, L.papillae, L.papilla_size = u(0.25, 0.6), int(rng.integers(0, 3)), u(0.2, 0.4)
        elif kind == "borderline_like":
            L.fluid, L.locule_spread = u(0.03, 0.2), u(0.3, 0.8)
            L.septa, L.septum_px, L.septum_irregular = int(rng.integers(2, 5)), u(1.2, 2.2), u(0.1, 0.3)
            L.papillae, L.papilla_size = int(rng.integers(2, 5)), u(0.15, 0.3)
            L.solid = u(0.04, 0.15)
            L.irregular, L.rough, L.wall_px, L.wall_irregular = u(0.03, 0.08), u(0.005, 0.015), u(1.4, 2.4), 0.2
            L.ascites = rng.random() < 0.1
            L.calcs = 0
    return L


# --------------------------------------------------------------------------- drawing

def outline(les: Lesion, r_px: float, rng: np.random.Generator, n: int = 256) -> np.ndarray:
    """Closed outline (n x 2, local px around (0, 0)): an ellipse with lobulation and roughness."""
    phi = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rho = np.ones(n)
    for k in range(2, 6):
        rho += les.irregular * rng.normal(0, 1.0 / k ** 0.5) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    for k in range(6, 18):
        rho += les.rough * rng.normal(0, (6.0 / k) ** 0.5) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    rho = np.clip(rho, 0.55, 1.5)
    rot = rng.uniform(0, 2 * np.pi)
    x, y = rho * np.cos(phi), les.aspect * rho * np.sin(phi)
    xr = x * math.cos(rot) - y * math.sin(rot)
    yr = x * math.sin(rot) + y * math.cos(rot)
    return np.stack([xr, yr], 1) * r_px


_SHIFT = 4
_ONE = 1 << _SHIFT


def _pts(p: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(p) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _circle(layer: np.ndarray, c: np.ndarray, r: float, value: int = 255) -> None:
    cv2.circle(layer, (int(round(c[0] * _ONE)), int(round(c[1] * _ONE))), max(1, int(round(r * _ONE))),
               value, -1, cv2.LINE_AA, _SHIFT)


def _lerp(a: np.ndarray, b: np.ndarray | float, w: np.ndarray) -> np.ndarray:
    return a + (b - a) * w


def draw_lesion(E: np.ndarray, A: np.ndarray, centre: tuple[float, float], les: Lesion, size: int,
                ) -> np.ndarray:
    """Render ``les`` into the canonical maps ``E``/``A`` (in place) around ``centre``.

    Returns the lesion mask (uint8 0/1, same shape as E).
    """
    rng = np.random.default_rng(les.shape_seed)
    sc = size / 256.0
    a0 = BASE_ATTENUATION / sc
    R = les.radius * size
    poly = outline(les, R, rng)
    half = int(math.ceil(np.abs(poly).max() + 6 * sc + 4))
    P = 2 * half + 1
    cx, cy = int(round(centre[0])), int(round(centre[1]))
    loc = poly + half                                        # local patch coordinates
    fill = np.zeros((P, P), np.uint8)
    cv2.fillPoly(fill, [_pts(loc)], 255, cv2.LINE_AA, _SHIFT)
    inside = fill >= 128
    dist = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 5)
    c = np.array([half, half], np.float64)

    # wall: distance to the outline below a (possibly varying) thickness
    wall_t = les.wall_px * sc
    if les.wall_irregular > 0:
        wall_t = wall_t * np.clip(1 + les.wall_irregular * 1.5 * smooth_noise(rng, (P, P), R * 0.35), 0.3, 3.0)
    wall_cov = np.clip(wall_t - dist + 0.5, 0.0, 1.0) * inside if les.wall_px > 0 else np.zeros((P, P), np.float32)

    # septa: borders of a (warped) Voronoi partition of the inside into septa+1 locules, so that
    # they end on the wall, bow a little and meet at Y-junctions like real septa
    interior = inside & (dist > wall_t)
    n_pts = len(loc)
    yy, xx = np.mgrid[0:P, 0:P].astype(np.float32)
    septa_cov = np.zeros((P, P), np.float32)
    locule = np.zeros((P, P), np.int32)
    ys, xs = np.nonzero(interior)
    if les.septa > 0 and len(xs) > 0:
        k = les.septa + 1
        cand = rng.integers(len(xs), size=12 * k)
        pts = np.stack([xs[cand], ys[cand]], 1).astype(np.float32)
        seeds = [pts[0]]
        for _ in range(k - 1):   # spread the seeds (best of a few random candidates)
            dmin = np.min(np.linalg.norm(pts[:, None] - np.array(seeds)[None], axis=2), axis=1)
            dmin = dmin * rng.uniform(0.5, 1.0, len(dmin))
            seeds.append(pts[int(np.argmax(dmin))])
        amp = 0.18 * R
        wx = xx + amp * smooth_noise(rng, (P, P), R * 0.6)
        wy = yy + amp * smooth_noise(rng, (P, P), R * 0.6)
        d = np.stack([np.hypot(wx - sx, wy - sy) for sx, sy in seeds])
        order = np.argsort(d, axis=0)
        locule = order[0].astype(np.int32) + 1
        d_sorted = np.take_along_axis(d, order[:2], axis=0)
        to_border = 0.5 * (d_sorted[1] - d_sorted[0])
        t = les.septum_px * sc
        width = t * np.clip(1 + les.septum_irregular * 1.5 * smooth_noise(rng, (P, P), R * 0.2), 0.3, 3.0)
        septa_cov = np.clip(0.5 * np.maximum(width, 1.0) - to_border + 0.5, 0.0, 1.0) * np.minimum(width, 1.0)
        septa_cov = (septa_cov * inside).astype(np.float32)

    # locules: each with its own content echogenicity (mucinous "stained glass")
    loc_echo = les.fluid * np.exp(rng.normal(0, les.locule_spread, les.septa + 2)).astype(np.float32)
    fluid = loc_echo[locule].astype(np.float32)
    fluid = fluid * (1 + 0.15 * smooth_noise(rng, (P, P), R * 0.3))

    tissue_tex = np.exp(les.solid_het * smooth_noise(rng, (P, P), max(1.5, R * 0.12))
                        + 0.5 * les.solid_het * smooth_noise(rng, (P, P), max(1.0, 2.5 * sc)))
    # solid component: a lobulated region grown from one side of the wall
    solid_cov = np.zeros((P, P), np.float32)
    if les.solid > 0:
        if les.solid >= 0.97:
            solid_cov = inside.astype(np.float32)
        else:
            ang = rng.uniform(0, 2 * np.pi)
            yy, xx = np.mgrid[0:P, 0:P].astype(np.float32) - half
            grad = (xx * math.cos(ang) + yy * math.sin(ang)) / R
            f = smooth_noise(rng, (P, P), R * 0.45) + 2.2 * grad
            vals = f[inside]
            thr = np.quantile(vals, 1 - les.solid) if vals.size else np.inf
            solid_cov = cv2.GaussianBlur(((f > thr) & inside).astype(np.float32), (0, 0), 0.6 * sc + 0.3)
        if les.necrosis > 0:
            g = smooth_noise(rng, (P, P), max(2.0, R * 0.3))
            nec = (g > np.quantile(g, 1 - les.necrosis)).astype(np.float32)
            solid_cov = solid_cov * (1 - 0.9 * cv2.GaussianBlur(nec, (0, 0), 0.8))

    # papillary projections: cauliflower-like bumps from the inner wall towards the centre
    pap = np.zeros((P, P), np.uint8)
    for _ in range(les.papillae):
        i = int(rng.integers(n_pts))
        base = loc[i]
        inward = (c - base) / (np.linalg.norm(c - base) + 1e-6)
        a = rng.uniform(-0.35, 0.35)
        inward = np.array([inward[0] * math.cos(a) - inward[1] * math.sin(a),
                           inward[0] * math.sin(a) + inward[1] * math.cos(a)])
        h = les.papilla_size * R * rng.uniform(0.7, 1.3)
        w = h * rng.uniform(0.45, 0.8)
        k = int(rng.integers(2, 5))
        for m in range(k):
            t = (m + 0.5) / k
            jitter = np.array([-inward[1], inward[0]]) * rng.normal(0, 0.25) * w
            ctr = base + inward * (les.wall_px * sc + h * t * 0.8) + jitter
            _circle(pap, ctr, w * (1.0 - 0.45 * t) * rng.uniform(0.7, 1.1))
    pap_cov = (pap.astype(np.float32) / 255.0) * inside

    # dermoid plug (bright, strongly attenuating ball against the wall) and hair lines
    plug = np.zeros((P, P), np.uint8)
    if les.plug:
        i = int(rng.integers(n_pts))
        base = loc[i]
        inward = (c - base) / (np.linalg.norm(c - base) + 1e-6)
        rr = R * rng.uniform(0.22, 0.42)
        _circle(plug, base + inward * rr * 0.9, rr)
    hair = np.zeros((P, P), np.uint8)
    for _ in range(les.hairs):
        p0 = c + rng.uniform(-0.6, 0.6, 2) * R
        d = rng.normal(0, 1, 2)
        d = d / (np.linalg.norm(d) + 1e-6) * R * rng.uniform(0.15, 0.45)
        cv2.line(hair, tuple(_pts(p0).ravel()), tuple(_pts(p0 + d).ravel()), 200, 1, cv2.LINE_AA, _SHIFT)
    plug_cov = (plug.astype(np.float32) / 255.0) * inside
    hair_cov = (hair.astype(np.float32) / 255.0) * inside

    calc = np.zeros((P, P), np.uint8)
    for _ in range(les.calcs):
        ys, xs = np.nonzero(inside & (dist > 2))
        if len(xs):
            q = int(rng.integers(len(xs)))
            _circle(calc, np.array([xs[q], ys[q]], float), rng.uniform(0.8, 1.8) * sc + 0.4)
    calc_cov = (calc.astype(np.float32) / 255.0) * inside

    # compose echogenicity and attenuation inside the lesion
    e = fluid.copy()
    att = np.full((P, P), 0.12 * a0, np.float32)              # fluid: little attenuation -> enhancement
    solid_e = les.solid_echo * tissue_tex
    e = _lerp(e, 2.2 * (1 + 0.15 * smooth_noise(rng, (P, P), 3 * sc + 1)), septa_cov)
    att = _lerp(att, 1.6 * a0, septa_cov)
    e = _lerp(e, les.papilla_echo * tissue_tex, pap_cov)
    att = _lerp(att, les.solid_attn * 0.8 * a0, pap_cov)
    e = _lerp(e, solid_e, solid_cov)
    att = _lerp(att, les.solid_attn * a0, solid_cov)
    e = _lerp(e, 2.4 * (1 + 0.2 * smooth_noise(rng, (P, P), 2 * sc + 1)), hair_cov)
    e = _lerp(e, 3.2 * tissue_tex, plug_cov)
    att = _lerp(att, 7.0 * a0, plug_cov)
    e = _lerp(e, les.wall * (1 + 0.2 * smooth_noise(rng, (P, P), 4 * sc + 1)), wall_cov)
    att = _lerp(att, 1.8 * a0, wall_cov)
    e = _lerp(e, 6.0, calc_cov)
    att = _lerp(att, 40.0 * a0, calc_cov)

    alpha = fill.astype(np.float32) / 255.0
    if les.ill_defined > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), les.ill_defined * sc + 0.1)
    y0, x0 = cy - half, cx - half
    ys0, xs0 = max(0, -y0), max(0, -x0)
    ys1, xs1 = min(P, E.shape[0] - y0), min(P, E.shape[1] - x0)
    sl = (slice(y0 + ys0, y0 + ys1), slice(x0 + xs0, x0 + xs1))
    lo = (slice(ys0, ys1), slice(xs0, xs1))
    E[sl] = _lerp(E[sl], e[lo], alpha[lo])
    A[sl] = _lerp(A[sl], att[lo], alpha[lo])
    mask = np.zeros(E.shape, np.uint8)
    mask[sl] = inside[lo]
    return mask
