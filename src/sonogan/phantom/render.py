"""B-mode image formation for the phantom: sector geometry, speckle, attenuation, display.

A scene is two float maps on a *canonical* grid (1 canonical px = 1 output px at zoom 1):
``E`` (backscatter amplitude, 1 = ordinary soft tissue) and ``A`` (attenuation per px).
One view samples the scene along the beams of a sector probe (polar grid: depth x angle),
forms speckle there, applies the cumulative attenuation along each beam (so fluid gives
posterior enhancement and dense solid tissue casts a shadow, as on a real scanner), adds
time-gain compensation, log-compresses and finally scan-converts to the square image.

Example:
    >>> import numpy as np
    >>> style = scanner_style(0)
    >>> geo = fan_geometry(64, style)
    >>> E = np.ones((128, 128), np.float32); A = np.full_like(E, 0.004)
    >>> M = view_matrix((64, 64), (32.0, 36.0), 0.0, 1.0, 1.0)
    >>> v = render_bmode(E, A, M, geo, style, np.random.default_rng(0), zoom=1.0)
    >>> v.shape, bool(v[0, 0] == 0), bool(v[40, 32] > 0)
    ((64, 64), True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

#: attenuation of ordinary soft tissue per canonical px at image_size 256 (scaled with size)
BASE_ATTENUATION = 0.011


@dataclass(frozen=True)
class ScannerStyle:
    """One scanner / preset: fan shape, speckle size, display mapping and colour tint.

    Lengths are fractions of the image size; speckle sizes are in px at image size 256.
    """

    name: str
    half_angle_deg: float = 62.0       # half of the fan opening (transvaginal probes: ~ 120-150 deg)
    apex_y: float = -0.02              # apex of the sector (fraction of size; < 0 = above the image)
    r0: float = 0.10                   # probe-face radius: the curved top edge of the fan
    r_max: float = 0.95                # fan radius: the curved bottom edge
    psf_axial: float = 0.7             # speckle cell along the beam (px at size 256)
    psf_lateral: float = 1.5           # speckle cell across the beam (px at size 256, mid depth)
    smoothing: float = 0.7             # scanner speckle reduction (0 = raw speckle)
    gain_db: float = 0.0               # overall gain (+ = brighter)
    dynamic_range_db: float = 50.0     # log-compression range (smaller = more contrast)
    gamma: float = 1.0                 # display gamma
    tgc_balance: float = 1.0           # 1 = perfect depth compensation, < 1 = darker far field
    tgc_ripple: float = 0.12           # slider unevenness of the time-gain curve
    noise_floor: float = 0.02          # electronic noise (relative to tissue)
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)   # RGB multipliers (chroma maps)
    annotation_colour: tuple[int, int, int] = (255, 255, 0)  # RGB of burned-in marks
    header: str = "TV 7.5MHz"


#: Hand-made presets roughly after the look of common machines; further styles are drawn at random.
_PRESETS = (
    ScannerStyle("neutral", header="E8C 6.5MHz  MI 0.9  TIS 0.4"),
    ScannerStyle("warm-smooth", half_angle_deg=68.0, apex_y=-0.05, r0=0.12, r_max=0.98,
                 psf_axial=0.9, psf_lateral=1.9, smoothing=0.85, gain_db=0.5, dynamic_range_db=46.0,
                 gamma=1.0, tgc_balance=0.95, tint=(1.0, 0.93, 0.80), annotation_colour=(120, 255, 120),
                 header="IC5-9 7.0MHz  MI 1.1"),
    ScannerStyle("cool-contrast", half_angle_deg=56.0, apex_y=0.0, r0=0.08, r_max=0.92,
                 psf_axial=0.6, psf_lateral=1.2, smoothing=0.5, gain_db=-1.5, dynamic_range_db=44.0,
                 gamma=1.15, tgc_balance=1.05, tint=(0.90, 0.96, 1.0), annotation_colour=(255, 255, 255),
                 header="VE 9MHz  Gn 52  DR 60"),
    ScannerStyle("grainy-dim", half_angle_deg=60.0, apex_y=-0.03, r0=0.11, r_max=0.94,
                 psf_axial=1.0, psf_lateral=2.2, smoothing=0.3, gain_db=-3.0, dynamic_range_db=52.0,
                 gamma=1.0, tgc_balance=0.9, tgc_ripple=0.2, noise_floor=0.04,
                 annotation_colour=(80, 220, 255), header="TV  P 100%  F 2"),
)


def scanner_style(k: int) -> ScannerStyle:
    """Style ``k``: a preset for small k, otherwise drawn from a fixed generator (seed-independent)."""
    if k < len(_PRESETS):
        return _PRESETS[k]
    rng = np.random.default_rng([9176, k])
    tint = tuple(float(x) for x in np.clip(1.0 - rng.uniform(0.0, 0.15, 3), 0.8, 1.0))
    colours = [(255, 255, 0), (120, 255, 120), (255, 255, 255), (80, 220, 255), (255, 160, 60)]
    return ScannerStyle(
        f"random-{k}", half_angle_deg=float(rng.uniform(52, 70)), apex_y=float(rng.uniform(-0.06, 0.01)),
        r0=float(rng.uniform(0.07, 0.13)), r_max=float(rng.uniform(0.9, 0.99)),
        psf_axial=float(rng.uniform(0.6, 1.3)), psf_lateral=float(rng.uniform(1.3, 2.6)),
        smoothing=float(rng.uniform(0.1, 1.0)), gain_db=float(rng.uniform(-3, 3)),
        dynamic_range_db=float(rng.uniform(42, 58)), gamma=float(rng.uniform(0.85, 1.2)),
        tgc_balance=float(rng.uniform(0.88, 1.06)), tgc_ripple=float(rng.uniform(0.05, 0.22)),
        noise_floor=float(rng.uniform(0.01, 0.05)), tint=tint,  # type: ignore[arg-type]
        annotation_colour=colours[int(rng.integers(len(colours)))], header=f"P{k} {rng.uniform(5, 9):.1f}MHz")


@dataclass(frozen=True)
class FanGeometry:
    """Sector scan of one style at one image size, with the maps both ways (cached)."""

    size: int
    apex: tuple[float, float]     # (x, y) in output px
    r0: float
    r_max: float
    half_angle: float             # radians
    n_r: int
    n_t: int
    beam_x: np.ndarray            # (n_r, n_t) output x of every polar sample
    beam_y: np.ndarray
    conv_t: np.ndarray            # (size, size) polar column of every output pixel (for remap)
    conv_r: np.ndarray            # (size, size) polar row of every output pixel
    fan: np.ndarray               # (size, size) bool: inside the sector

    @property
    def dr(self) -> float:
        return (self.r_max - self.r0) / self.n_r


@lru_cache(maxsize=64)
def fan_geometry(size: int, style: ScannerStyle) -> FanGeometry:
    s = float(size)
    apex = (s / 2.0, style.apex_y * s)
    r0, r_max = style.r0 * s, style.r_max * s
    half = math.radians(style.half_angle_deg)
    n_r = size
    n_t = int(max(64, round(1.6 * r_max * half)))       # ~0.8 samples per px of the far arc
    r = r0 + (r_max - r0) * (np.arange(n_r, dtype=np.float64) + 0.5) / n_r
    t = -half + 2 * half * (np.arange(n_t, dtype=np.float64) + 0.5) / n_t
    rr, tt = np.meshgrid(r, t, indexing="ij")
    beam_x = (apex[0] + rr * np.sin(tt)).astype(np.float32)
    beam_y = (apex[1] + rr * np.cos(tt)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    dx, dy = xx - apex[0], yy - apex[1]
    rad = np.hypot(dx, dy)
    ang = np.arctan2(dx, dy)
    conv_r = ((rad - r0) / ((r_max - r0) / n_r) - 0.5).astype(np.float32)
    conv_t = ((ang + half) / (2 * half / n_t) - 0.5).astype(np.float32)
    fan = (rad >= r0) & (rad <= r_max) & (np.abs(ang) <= half)
    for arr in (beam_x, beam_y, conv_r, conv_t, fan):
        arr.setflags(write=False)
    return FanGeometry(size, apex, r0, r_max, half, n_r, n_t, beam_x, beam_y, conv_t, conv_r, fan)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Zero-mean, unit-std smooth random field with features about ``scale`` px wide."""
    h, w = shape
    scale = max(float(scale), 1.0)
    gh, gw = int(h / scale) + 4, int(w / scale) + 4
    low = rng.standard_normal((gh, gw)).astype(np.float32)
    low = cv2.GaussianBlur(low, (0, 0), 0.7)
    up = cv2.resize(low, (int(round(gw * scale)), int(round(gh * scale))), interpolation=cv2.INTER_CUBIC)
    oy, ox = int(scale), int(scale)
    field = up[oy:oy + h, ox:ox + w]
    field = field - field.mean()
    return field / (field.std() + 1e-6)


def view_matrix(canon_centre: tuple[float, float], out_centre: tuple[float, float], angle_deg: float,
                zoom: float, stretch: float) -> np.ndarray:
    """2x3 matrix mapping OUTPUT px -> canonical px (the lesion at ``canon_centre`` lands on
    ``out_centre``, turned by ``angle_deg``, scaled by ``zoom``, one axis stretched by ``stretch``)."""
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    fwd = rot @ np.diag([zoom * stretch, zoom / stretch])          # canonical offset -> output offset
    inv = np.linalg.inv(fwd)
    c = np.asarray(canon_centre, np.float64)
    o = np.asarray(out_centre, np.float64)
    return np.hstack([inv, (c - inv @ o)[:, None]])


def _apply(M: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u = M[0, 0] * x + M[0, 1] * y + M[0, 2]
    v = M[1, 0] * x + M[1, 1] * y + M[1, 2]
    return u.astype(np.float32), v.astype(np.float32)


def _gauss_kernel(sigma: float) -> tuple[np.ndarray, int]:
    k = int(2 * math.ceil(3 * sigma) + 1)
    return cv2.getGaussianKernel(k, sigma).astype(np.float32), k


def render_bmode(E: np.ndarray, A: np.ndarray, M: np.ndarray, geo: FanGeometry, style: ScannerStyle,
                 rng: np.random.Generator, zoom: float, tgc_curve: np.ndarray | None = None) -> np.ndarray:
    """One B-mode frame of the scene (E, A) seen through ``M`` (output -> canonical px).

    Returns display brightness in [0, 1] (float32, size x size), 0 outside the fan.
    """
    size = geo.size
    sc = size / 256.0
    u, v = _apply(M, geo.beam_x, geo.beam_y)
    Ep = cv2.remap(E, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    Ap = cv2.remap(A, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # Fully developed speckle: complex Gaussian scatterers weighted by the echogenicity, blurred
    # by the point-spread function (short along the beam, wide across it), then the envelope.
    sig_r = max(0.5, style.psf_axial * sc / geo.dr)
    r_mid = 0.5 * (geo.r0 + geo.r_max)
    dtheta = 2 * geo.half_angle / geo.n_t
    sig_t = max(0.5, style.psf_lateral * sc / (r_mid * dtheta))
    kr, _ = _gauss_kernel(sig_r)
    kt, _ = _gauss_kernel(sig_t)
    norm = float(np.sqrt((kr ** 2).sum() * (kt ** 2).sum()))
    re = rng.standard_normal(Ep.shape, dtype=np.float32) * Ep
    im = rng.standard_normal(Ep.shape, dtype=np.float32) * Ep
    re = cv2.sepFilter2D(re, -1, kt, kr, borderType=cv2.BORDER_REFLECT) / norm
    im = cv2.sepFilter2D(im, -1, kt, kr, borderType=cv2.BORDER_REFLECT) / norm
    env = np.sqrt(re * re + im * im) * (1.0 / math.sqrt(2.0))
    if style.smoothing > 0:   # scanner speckle reduction: blend with a locally averaged envelope
        sm = cv2.GaussianBlur(env, (0, 0), sigmaX=1.2 * sig_t, sigmaY=1.2 * sig_r)
        env = (1 - 0.7 * style.smoothing) * env + 0.7 * style.smoothing * sm
    # Attenuation along each beam (scene units: canonical px per polar row = dr / zoom)
    step = geo.dr / zoom
    path = np.cumsum(Ap * step, axis=0)
    rows = (np.arange(geo.n_r, dtype=np.float32) + 0.5)[:, None]
    comp = style.tgc_balance * (BASE_ATTENUATION / sc) * rows * step   # time-gain compensation
    gain = np.exp(comp - path)
    if tgc_curve is not None:
        gain = gain * tgc_curve[:, None]
    env = env * gain
    noise = np.abs(rng.standard_normal(env.shape, dtype=np.float32)
                   + 1j * rng.standard_normal(env.shape, dtype=np.float32)) * (style.noise_floor / 1.4142)
    env = env + noise.astype(np.float32)
    db = 20.0 * np.log10(env + 1e-4)
    disp = 0.45 + (db - style.gain_db) / style.dynamic_range_db
    disp = np.clip(disp, 0.0, 1.0) ** style.gamma
    out = cv2.remap(disp.astype(np.float32), geo.conv_t, geo.conv_r, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out[~geo.fan] = 0.0
    return out


def tgc_profile(rng: np.random.Generator, n: int, style: ScannerStyle) -> np.ndarray:
    """A time-gain curve: smooth unevenness (slider positions) plus near-field brightening."""
    knots = rng.normal(0.0, style.tgc_ripple, 8)
    curve = np.interp(np.linspace(0, 7, n), np.arange(8), knots)
    depth = np.linspace(0, 1, n)
    near = 0.5 * np.exp(-depth / 0.04)                 # reverberation just under the probe face
    return np.exp(curve + near).astype(np.float32)


def to_display(v: np.ndarray, style: ScannerStyle) -> np.ndarray:
    """Brightness in [0, 1] -> uint8 RGB with the style's tint."""
    tint = np.asarray(style.tint, np.float32)
    rgb = v[:, :, None] * tint[None, None, :] * 255.0 + 0.5
    return np.clip(rgb, 0, 255).astype(np.uint8)


def draw_scanner_overlay(img: np.ndarray, geo: FanGeometry, style: ScannerStyle, px_per_cm: float) -> None:
    """What every frame of this scanner shows (kept in the 'clean' image too): a depth scale of
    dots every centimetre along the right edge and the probe-face arc. Drawn in place."""
    size = geo.size
    grey = (190, 190, 190)
    x = size - max(3, size // 64)
    top = int(geo.apex[1] + geo.r0)
    step = max(px_per_cm, 4.0)
    y = float(top)
    k = 0
    while y < size - 2:
        r = 1 if k % 5 else 2
        cv2.circle(img, (x, int(round(y))), r if size >= 192 else max(0, r - 1), grey, -1, cv2.LINE_AA)
        y += step
        k += 1
    cv2.ellipse(img, (int(round(geo.apex[0])), int(round(geo.apex[1]))), (int(geo.r0), int(geo.r0)),
                90, -math.degrees(geo.half_angle), math.degrees(geo.half_angle), (225, 225, 225),
                max(1, size // 170), cv2.LINE_AA)
