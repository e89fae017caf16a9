"""ONNX export of a :class:`~sonogan.infer.predictor.Predictor` and an ONNX Runtime twin of it.

:func:`export_onnx` writes one ``.onnx`` graph per member. Each graph takes the preset's pixels
as float32 ``(N, C, S, S)`` with uint8 values (0..255) and returns the member's probabilities
``(N, K)``: the member's train-only normaliser (:meth:`Normaliser.tensor`, channels and size
included) and, for a member trained with ``tta: hflip``, the mirror averaging
(:func:`~sonogan.train.recipe.tta_logits`) are inside the graph, so a deployment needs no
PyTorch and cannot forget a step. The batch axis is dynamic. Beside the graphs,
``onnx_model.json`` records the class names, the preprocessing preset (a ``PreprocessConfig``
dump), the member files (relative to the folder, so it can be moved) and the fusion weights.
A lesion arm that classifies the whole scan is such a member (:meth:`LesionClassifier.as_predictor
<sonogan.infer.resolve.LesionClassifier.as_predictor>`). :func:`export_remover_onnx` writes an
annotation remover the same way: its detector and remover as graphs checked against PyTorch.

:class:`OnnxPredictor` reads that folder and offers the Predictor's API (``prepare``,
``predict_pixels``, ``predict_images``): the same preset (:func:`apply_preset`) in numpy, the
graphs on ONNX Runtime's CPU provider, the same weighted fusion (:func:`fuse`).

Example:
    >>> import numpy as np, torch, tempfile
    >>> from sonogan.models.checkpoint import save_classifier
    >>> from sonogan.models.classifiers import create_classifier
    >>> from sonogan.preprocess.fold import Normaliser
    >>> from sonogan.preprocess.presets import get_preset
    >>> _ = torch.manual_seed(0)
    >>> tmp = Path(tempfile.mkdtemp())
    >>> model = create_classifier("frid-adar-cnn", num_classes=2, widths=(4, 4, 4)).eval()
    >>> ckpt = save_classifier(tmp / "m" / "best.pt", model, "frid-adar-cnn", 2, 1, ["benign", "malignant"],
    ...                        preprocess=get_preset("full-64").model_dump(mode="json"),
    ...                        normaliser=Normaliser((100.0,), (50.0,)), image_size=64, tta="hflip")
    >>> out = export_onnx(ckpt, tmp / "onnx")
    >>> sorted(p.name for p in out.iterdir())
    ['member0-m.onnx', 'onnx_model.json']
    >>> onnx_predictor = OnnxPredictor.load(out, intra_op_threads=1)
    >>> pixels = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 1), dtype=np.uint8)
    >>> torch_probs = Predictor.load(ckpt).predict_pixels(pixels)
    >>> bool(np.abs(onnx_predictor.predict_pixels(pixels) - torch_probs).max() < 1e-5)
    True
"""

from __future__ import annotations

import copy
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import sonogan
from sonogan.errors import SonoganInputError
from sonogan.infer.calibration import apply_temperature
from sonogan.infer.predictor import ImageInput, Member, Predictor
from sonogan.lesion.locator import Locator, MaskFinder, SegmenterProbs
from sonogan.models.ensemble import fuse, simplex_weights
from sonogan.models.remover import load_remover
from sonogan.preprocess.presets import PreprocessConfig
from sonogan.runs import read_format_json, write_json
from sonogan.train.recipe import tta_logits

ONNX_FORMAT = "sonogan-onnx"
ONNX_FORMAT_VERSION = 1
META_NAME = "onnx_model.json"
SEGMENTER_OUTPUT = "mask_prob"
REMOVER_FORMAT = "sonogan-onnx-remover"
REMOVER_META_NAME = "onnx_remover.json"
INPUT_NAME = "pixels"
OUTPUT_NAME = "probs"
# 17 is read by every ONNX Runtime release of the last years; nothing in the graphs needs newer
OPSET = 17
# an exported graph further from its PyTorch member than this is an exporter bug, not a rounding
VERIFY_TOLERANCE = 1e-4


def resize_matrix(n_in: int, n_out: int, antialias: bool) -> torch.Tensor:
    """(n_out, n_in) float32 matrix ``A`` with ``A @ v`` = PyTorch's 1-D bilinear resize of ``v``.

    Bilinear resizing (antialiased or not) is separable and linear, so resizing an (H, W)
    image is ``A_h @ x @ A_w.T``. The matrix is read off ``F.interpolate`` applied to the unit
    vectors, so it is the Normaliser's own resize, and the graph needs only a MatMul: the
    legacy ONNX exporter has no antialiased resize, and ONNX's ``Resize(antialias=1)`` weighs
    pixels differently from PyTorch (several grey levels apart).

    >>> a = resize_matrix(4, 2, antialias=True)
    >>> a.shape, [round(float(s), 6) for s in a.sum(1)]
    (torch.Size([2, 4]), [1.0, 1.0])
    """
    basis = torch.eye(n_in, dtype=torch.float64).view(n_in, 1, 1, n_in)
    out = F.interpolate(basis, size=(1, n_out), mode="bilinear", align_corners=False, antialias=antialias)
    return out.view(n_in, n_out).T.float().contiguous()


class ExportedMember(nn.Module):
    """uint8-valued float (N, C, S, S) pixels -> one member's probabilities (N, K), in torch ops only.

    Resize first (as constant matrices), then :meth:`Normaliser.tensor` at the model's size:
    the resize rows sum to 1, so it commutes with the per-channel affine normalisation and the
    channel mean, and this equals the Normaliser's normalise-then-resize up to float rounding.
    """

    def __init__(self, member: Member, pixel_size: int) -> None:
        super().__init__()
        self.model = member.model
        self.normaliser = member.normaliser
        self.in_chans = member.in_chans
        self.image_size = member.image_size
        self.tta = member.tta
        self.resize = pixel_size != member.image_size
        if self.resize:
            shrink = member.image_size < pixel_size  # the Normaliser's rule for antialiasing
            self.register_buffer("resize_h", resize_matrix(pixel_size, member.image_size, shrink))
            self.register_buffer("resize_w_t", resize_matrix(pixel_size, member.image_size, shrink).T.contiguous())

    def model_input(self, pixels: torch.Tensor) -> torch.Tensor:
        """The pixels as the Normaliser gives them to the model: resized, then normalised."""
        x = torch.matmul(torch.matmul(self.resize_h, pixels), self.resize_w_t) if self.resize else pixels
        return self.normaliser.tensor(x, self.in_chans, self.image_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.softmax(tta_logits(self.model, self.model_input(pixels), self.tta).float(), dim=1)


class ExportedSegmenter(ExportedMember):
    """uint8-valued float (N, C, S, S) whole-scan pixels -> lesion probabilities (N, 1, S, S) at the
    pixels' size: a :class:`~sonogan.lesion.locator.Locator`'s normaliser and net
    (:class:`~sonogan.lesion.locator.SegmenterProbs`), the input resized as a member's is."""

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(self.model_input(pixels))


def _file_name(index: int, name: str) -> str:
    # member names come from ensemble files and folder names: keep them readable but path-safe
    return f"member{index}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.onnx"


def _export_graph(module: nn.Module, example: torch.Tensor, path: Path, outputs: list[str]) -> float:
    """Trace ``module`` to ``path`` with a dynamic batch axis, run the graph on ONNX Runtime and
    return its largest difference from PyTorch on ``example`` (an exporter bug beyond
    :data:`VERIFY_TOLERANCE` is raised, not written off)."""
    with warnings.catch_warnings():
        # expected and harmless here: the legacy exporter's deprecation note and the tracer's
        # notes on shape checks (the size guard), which are constants for a fixed input size
        warnings.simplefilter("ignore")
        # dynamo=False: the torch.export-based exporter needs onnxscript, one more dependency
        torch.onnx.export(module, (example[:1],), str(path), dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=outputs,
                          dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *outputs)})
    with torch.no_grad():
        expected = module(example)
    expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    got = _session(path, intra_op_threads=1).run(None, {INPUT_NAME: example.numpy()})
    diff = max(float(np.abs(g - e.double().numpy()).max()) for g, e in zip(got, expected))
    if not diff <= VERIFY_TOLERANCE:
        raise RuntimeError(f"{path}: ONNX output differs from PyTorch by {diff:.3g} (> {VERIFY_TOLERANCE}); "
                           "this is an export bug, please report it with the checkpoint")
    return diff


def _example_pixels(preset: PreprocessConfig, n: int = 2) -> torch.Tensor:
    """Deterministic uint8-valued float pixels (n, C, S, S) for tracing and verification."""
    rng = np.random.default_rng(0)
    shape = (n, preset.channels, preset.size, preset.size)
    return torch.from_numpy(rng.integers(0, 256, shape).astype(np.float32))


def export_onnx(predictor_or_path: Predictor | str | Path, out_dir: str | Path) -> Path:
    """Write one ``.onnx`` per member and ``onnx_model.json`` to ``out_dir``; returns ``out_dir``.

    ``predictor_or_path``: a :class:`Predictor` or the ``best.pt`` / ``ensemble.json`` it loads
    from. Every graph is checked against its PyTorch member on a fixed random batch; the
    largest difference is recorded as ``max_abs_diff_vs_torch``. The metadata is written last,
    so a folder without it is an unfinished export.
    """
    predictor = predictor_or_path if isinstance(predictor_or_path, Predictor) else Predictor.load(predictor_or_path)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SonoganInputError(out, "exists and is not a folder", "choose another --out folder")
    out.mkdir(parents=True, exist_ok=True)
    example = _example_pixels(predictor.preset)
    members, max_diff = [], 0.0
    for i, member in enumerate(predictor.members):
        model = member.model
        if model.training or next(model.parameters()).device.type != "cpu":
            model = copy.deepcopy(model).cpu().eval()  # export on CPU in eval mode; the caller's model stays put
        wrapper = ExportedMember(Member(member.name, model, member.normaliser, member.in_chans,
                                        member.image_size, member.tta), predictor.preset.size).eval()
        path = out / _file_name(i, member.name)
        max_diff = max(max_diff, _export_graph(wrapper, example, path, [OUTPUT_NAME]))
        members.append({"name": member.name, "file": path.name, "tta": member.tta, "in_chans": member.in_chans,
                        "image_size": member.image_size, "normaliser": member.normaliser.to_dict()})
    preset = predictor.preset
    write_json(out / META_NAME, {
        "format": ONNX_FORMAT, "version": ONNX_FORMAT_VERSION, "sonogan_version": sonogan.__version__,
        "class_names": list(predictor.class_names),
        "preprocess": preset.model_dump(mode="json"),
        "input": {"name": INPUT_NAME, "shape": ["batch", preset.channels, preset.size, preset.size],
                  "dtype": "float32", "values": "uint8 pixels 0..255 after the preset, NCHW"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", len(predictor.class_names)], "values": "probabilities"},
        "members": members,
        "weights": [float(w) for w in predictor.weights],
        # a Predictor that carries a fitted temperature (see sonogan.infer.calibration) passes it on
        "temperature": float(getattr(predictor, "temperature", 1.0)),
        "opset": OPSET,
        "max_abs_diff_vs_torch": max_diff,
    })
    return out


class ExportedRemover(nn.Module):
    """(N, C, S, S) image in [0, 1] -> the remover's restored image clamped to [0, 1] and, for a
    gated remover, its gate probabilities (N, 1, S, S): what ``clean_image`` pastes back."""

    def __init__(self, remover: nn.Module) -> None:
        super().__init__()
        self.remover = remover

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        out, gate = self.remover.restore(x)
        return out.clamp(0, 1) if gate is None else (out.clamp(0, 1), torch.sigmoid(gate))


class ExportedDetector(nn.Module):
    """(N, C, S, S) image in [0, 1] -> the detector's probability (N,) that it carries annotations."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.detector(x).float(), dim=1)[:, 1]


def export_remover_onnx(checkpoint: str | Path, out_dir: str | Path) -> Path:
    """Write the annotation remover of ``checkpoint`` (a ``remover.pt``) as ``detector.onnx``
    and ``remover.onnx`` with ``onnx_remover.json`` to ``out_dir``; returns ``out_dir``.

    Both graphs take the image as :func:`~sonogan.preprocess.remove_annotations.to_model_input`
    makes it (float32 ``(N, C, S, S)`` in [0, 1]) and are checked against PyTorch on a fixed
    random batch, as :func:`export_onnx` checks a classifier; the metadata is written last."""
    remover, detector, cfg, _ = load_remover(checkpoint)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SonoganInputError(out, "exists and is not a folder", "choose another --out folder")
    out.mkdir(parents=True, exist_ok=True)
    example = torch.from_numpy(np.random.default_rng(0).random((2, cfg.channels, cfg.size, cfg.size),
                                                               dtype=np.float32))
    outputs = ["restored", "gate"] if cfg.gated else ["restored"]
    max_diff = max(_export_graph(ExportedDetector(detector).eval(), example, out / "detector.onnx", ["annotated_p"]),
                   _export_graph(ExportedRemover(remover).eval(), example, out / "remover.onnx", outputs))
    write_json(out / REMOVER_META_NAME, {
        "format": REMOVER_FORMAT, "version": ONNX_FORMAT_VERSION, "sonogan_version": sonogan.__version__,
        "remover_config": cfg.model_dump(mode="json"),
        "input": {"name": INPUT_NAME, "shape": ["batch", cfg.channels, cfg.size, cfg.size], "dtype": "float32",
                  "values": f"the image in {cfg.channels} channel(s), resized to {cfg.size} x {cfg.size} "
                            "(cv2.INTER_AREA), divided by 255"},
        "graphs": {"detector": {"file": "detector.onnx", "outputs": ["annotated_p"]},
                   "remover": {"file": "remover.onnx", "outputs": outputs}},
        "opset": OPSET,
        "max_abs_diff_vs_torch": max_diff,
    })
    return out


def _session(path: Path, intra_op_threads: int = 0) -> Any:
    """An ONNX Runtime CPU session of ``path`` (``intra_op_threads`` 0 = ONNX Runtime's default)."""
    import onnxruntime as ort  # only to run an exported model: importing it costs every other command time

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(intra_op_threads)
    options.log_severity_level = 3  # errors only: ORT's warnings about unused initialisers are noise here
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail / InvalidGraph / NoSuchFile types
        raise SonoganInputError(path, f"ONNX Runtime cannot load the graph ({type(exc).__name__})",
                                "export the model again with 'sonogan export MODEL --onnx'") from None


def read_onnx_meta(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(folder, checked ``onnx_model.json`` contents) of an export folder or its json file."""
    path = Path(path)
    meta_path = path / META_NAME if path.is_dir() else path
    meta = read_format_json(meta_path, ONNX_FORMAT, "ONNX export",
                            "pass a folder written by 'sonogan export MODEL --onnx'", ONNX_FORMAT_VERSION,
                            article="the ")
    simplex_weights(meta["weights"], len(meta["members"]), meta_path)
    return meta_path.parent, meta


@dataclass
class OnnxPredictor(ImageInput):
    """ONNX Runtime members sharing one preset, fused with simplex weights: the Predictor's API."""

    sessions: list[Any]
    names: list[str]
    weights: np.ndarray
    class_names: list[str]
    preset: PreprocessConfig
    temperature: float = 1.0

    @classmethod
    def load(cls, path: str | Path, intra_op_threads: int = 0) -> "OnnxPredictor":
        """From an export folder (or its ``onnx_model.json``); ``intra_op_threads`` 0 = ORT's default."""
        folder, meta = read_onnx_meta(path)
        sessions = []
        for member in meta["members"]:
            file = folder / member["file"]
            if not file.is_file():
                raise SonoganInputError(file, "member graph not found", "keep the .onnx files beside onnx_model.json")
            sessions.append(_session(file, intra_op_threads))
        preset = PreprocessConfig.model_validate(meta["preprocess"])
        return cls(sessions, [m["name"] for m in meta["members"]], np.asarray(meta["weights"], dtype=np.float64),
                   list(meta["class_names"]), preset, float(meta.get("temperature", 1.0)))

    def predict_pixels(self, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Probabilities (N, K) float64 of already preprocessed uint8 (N, S, S, C) pixels."""
        want = (self.preset.size, self.preset.size, self.preset.channels)
        pixels = np.asarray(pixels)
        if pixels.ndim != 4 or pixels.shape[1:] != want:
            raise SonoganInputError("predict", f"pixels have shape {pixels.shape}",
                                    f"pass (N, {want[0]}, {want[1]}, {want[2]}) images prepared by the preset")
        x = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32)
        probs = [self._run(session, x, batch_size) for session in self.sessions]
        fused = fuse(probs, self.weights)
        return fused if self.temperature == 1.0 else apply_temperature(fused, self.temperature)

    def _run(self, session: Any, x: np.ndarray, batch_size: int) -> np.ndarray:
        outs = [session.run(None, {INPUT_NAME: x[i:i + batch_size]})[0] for i in range(0, len(x), batch_size)]
        return np.concatenate(outs).astype(np.float64) if outs else np.zeros((0, len(self.class_names)))



def export_segmenter_onnx(locator: Locator, path: str | Path) -> float:
    """Write ``locator``'s segmenter as one graph at ``path`` (the preset's uint8-valued float
    (N, C, S, S) pixels in, :data:`SEGMENTER_OUTPUT` (N, 1, S, S) probabilities out; normaliser
    inside), checked against PyTorch; returns the largest difference."""
    model = SegmenterProbs(locator.model, locator.preset.size)
    member = Member("segmenter", copy.deepcopy(model).cpu().eval(), locator.normaliser, locator.in_chans,
                    locator.image_size)
    wrapper = ExportedSegmenter(member, locator.preset.size).eval()
    return _export_graph(wrapper, _example_pixels(locator.preset), Path(path), [SEGMENTER_OUTPUT])


@dataclass
class OnnxLocator(MaskFinder):
    """The ONNX Runtime twin of a :class:`~sonogan.lesion.locator.Locator`: same preset and mask
    mapping (:meth:`MaskFinder.predict_masks`), the graph of :func:`export_segmenter_onnx`."""

    session: Any
    preset: PreprocessConfig
    postprocess: bool
    threshold: float = 0.5

    @classmethod
    def load(cls, path: str | Path, preset: PreprocessConfig, postprocess: bool, threshold: float = 0.5,
             intra_op_threads: int = 0) -> "OnnxLocator":
        if not Path(path).is_file():
            raise SonoganInputError(path, "segmenter graph not found", "keep segmenter.onnx beside pipeline.json")
        return cls(_session(Path(path), intra_op_threads), preset, postprocess, threshold)

    def square_probs(self, pixels: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(pixels[None].transpose(0, 3, 1, 2), dtype=np.float32)
        return self.session.run(None, {INPUT_NAME: x})[0][0, 0]
