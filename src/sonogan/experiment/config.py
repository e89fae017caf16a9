"""``ExperimentConfig``: the whole protocol in one YAML file (see ``configs/*.yaml``).

Example:
    >>> from sonogan.config import load_config
    >>> cfg = load_config(ExperimentConfig, "configs/demo.yaml")      # doctest: +SKIP
    >>> [c.model for c in cfg.classifiers]                            # doctest: +SKIP
    ['frid-adar-cnn']
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from sonogan.audit.config import AuditConfig
from sonogan.config import StrictModel
from sonogan.data.splits import SplitParams
from sonogan.experiment.arms import Arm
from sonogan.models.classifiers import CLASSIFIERS
from sonogan.phantom import PhantomConfig
from sonogan.preprocess.presets import PRESETS
from sonogan.synth.config import GanConfig
from sonogan.synth.diffusion_config import DiffusionConfig
from sonogan.synth.nets import GAN_FAMILIES
from sonogan.train.config import AugmentConfig, ClassifierTrainConfig


class PretrainFinetune(StrictModel):
    """The 'synthetic-pretrain' arm: the classifier first learns from the synthetic images (standing
    in for the real images of the classes they cover), then is fine-tuned on real images only, so
    its final decision cannot lean on a 'looks synthetic' cue."""

    epochs: int | None = Field(None, ge=1, description="pre-training epochs; null = the classifier's epochs")
    finetune_epochs: int = Field(6, ge=1, description="epochs of fine-tuning on the real training images")
    finetune_lr_factor: float = Field(0.3, gt=0.0, le=1.0, description="fine-tuning lr = classifier lr x this")


class SyntheticConfig(StrictModel):
    """How many synthetic images each rare class gets in the augmented arm."""

    n_per_class: int = Field(2000, ge=1, description="synthetic images sampled per rare class and, in mode "
                             "'count', added to the augmented arm (flagship: 2000)")
    mode: Literal["count", "ratio", "balance"] = Field(
        "count", description="augmented arm adds n_per_class ('count'), ratio x the class's real count ('ratio'), "
                             "or enough to match the largest class ('balance'); never more than were sampled")
    ratio: float = Field(1.0, gt=0, description="used by mode 'ratio'")
    sample_factor: float = Field(1.0, ge=1.0, description="sample this many times n_per_class, keep n_per_class")
    sweep: list[int] = Field(default_factory=list,
                             description="extra augmented arms with these counts (Frid-Adar Fig. 8); each <= n_per_class")
    checkpoint: Literal["best", "last"] = "best"
    classes: Literal["rare", "all"] = Field(
        "rare", description="which classes get synthetic images: the rare ones (one generator per class), or "
                            "every class from one class-conditional generator (cgan/acgan), so that 'looks "
                            "synthetic' is no shortcut to 'rare class'")
    matched_control: bool = Field(False, description="add the count-matched control arm 'classic-<n_per_class>': "
                                  "as many re-drawn real rare-class images as the augmented arm adds synthetic ones")
    curate: float | None = Field(None, gt=0.0, le=1.0, description="keep this fraction of each class's samples, "
                                 "those the fold's baseline classifier (trained on real training images only) "
                                 "finds most confidently of their class; sample_factor should be >= 1 / curate")
    pretrain_finetune: PretrainFinetune | None = Field(
        None, description="add the 'synthetic-pretrain' arm: pre-train on the synthetic images, fine-tune on real")


class EvaluationConfig(StrictModel):
    n_resamples: int = Field(1000, ge=10, description="bootstrap resamples (flagship: 1000, percentile)")
    ci: float = Field(0.95, gt=0.5, lt=1.0)
    tsne: bool = True
    tsne_max_real: int = Field(600, ge=10)
    tsne_max_synthetic: int = Field(300, ge=10)


class ExperimentConfig(StrictModel):
    name: str = "experiment"
    dataset: str | None = Field(None, description="dataset folder; null = generate the phantom into the run")
    phantom: PhantomConfig | None = Field(None, description="phantom settings when dataset is null")
    splits: str | None = Field(None, description="splits.json (default DATASET/splits.json, made once if absent)")
    split: SplitParams = Field(default_factory=SplitParams)
    folds: list[int] | None = Field(None, description="folds to run (null = all)")
    seed: int = 0
    classifier_seeds: list[int] | None = Field(
        None, description="train every arm's classifiers once per seed (e.g. [0, 1, 2]); the arm's predictions are "
                          "the seed-averaged probabilities, and metrics.json adds the seed spread. The generators are "
                          "trained once per fold. null = [seed] (one classifier per arm, as before)")
    preset: str = Field("flagship-64", description="preprocessing preset shared by GAN and classifiers")
    rare_classes: list[str] | None = Field(None, description="null = dataset.yaml's rare_classes")
    generator: Literal["gan", "diffusion"] = Field("gan", description="which generator family makes the "
                                                   "synthetic images: gan (settings in gan:) or diffusion (diffusion:)")
    gan: GanConfig = Field(default_factory=GanConfig)
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig)
    gan_pretrain: int = Field(0, ge=0, description="iterations of one GAN trained on every class of the fold's "
                              "training images, from which each rare-class GAN starts instead of noise; 0 = off")
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    all_classes_gan: GanConfig | None = Field(
        None, description="add the 'all-classes' arm: one class-conditional GAN (family cgan or acgan) per fold on "
                          "every class of its training images, and n_per_class of its images for EVERY class, beside "
                          "the rare-class augmented arm, so that 'looks synthetic' is no shortcut to 'rare class'")
    audit: AuditConfig = Field(default_factory=AuditConfig, description="per fold and class after sampling: "
                               "fidelity, diversity, quality, memorisation; audit.gate drops flagged near-copies "
                               "of training images before curation and training")
    classifiers: list[ClassifierTrainConfig] = Field(default_factory=lambda: [ClassifierTrainConfig()])
    ensemble: Literal["weighted", "equal"] = Field(
        "weighted", description="fusion of several classifiers: weights fitted on validation log-loss, or equal")
    classic_arm: AugmentConfig | None = Field(
        None, description="add a 'classic' arm: real images + this classic augmentation, no synthetic images")
    classic_sweep: list[int] = Field(
        default_factory=list, description="extra 'classic-N' arms: N augmented copies of real rare-class training "
                                          "images per rare class (Frid-Adar's classic-augmentation sweep); needs classic_arm")
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int = Field(1, ge=1, description="CPU threads for torch. Results on a CPU depend on the thread "
                             "count, so it is part of the config (recorded in run.json): 1 by default, which is "
                             "also fastest when other processes share a small machine")
    gpus_per_task: float = Field(0.0, ge=0.0, le=1.0, description="GPU share each task asks a Ray cluster for "
                                 "(e.g. 0.25: four classifiers train on one GPU at once); 0 = CPU tasks")
    baseline_only: bool = Field(False, description="run only the baseline (and classic) arm: no generator, "
                                "for choosing and benchmarking the classifier recipe")
    allow_no_masks: bool = Field(False, description="let a lesion-ROI preset run on a dataset without any lesion "
                                 "mask (every image falls back to the whole scan area)")

    @model_validator(mode="after")
    def _check(self) -> "ExperimentConfig":
        if self.dataset is None and self.phantom is None:
            self.phantom = PhantomConfig()
        if self.classic_sweep and self.classic_arm is None:
            raise ValueError("classic_sweep needs classic_arm (the augmentation applied to the copies)")
        if any(n > self.synthetic.n_per_class for n in self.synthetic.sweep):
            raise ValueError("synthetic.sweep values must be <= synthetic.n_per_class")
        names = [c.model for c in self.classifiers]
        if len(set(names)) != len(names):
            raise ValueError("each classifier model may appear once")
        if not self.classifiers:
            raise ValueError("give at least one classifier")
        conditional = (self.diffusion.class_conditional if self.generator == "diffusion"
                       else self.gan.family in ("cgan", "acgan"))
        if self.synthetic.classes == "all" and not conditional:
            raise ValueError("synthetic.classes 'all' needs a class-conditional generator (gan.family cgan or "
                             "acgan, or diffusion.class_conditional: true)")
        if self.classifier_seeds is not None and (not self.classifier_seeds
                                                  or len(set(self.classifier_seeds)) != len(self.classifier_seeds)):
            raise ValueError("classifier_seeds: give distinct seeds (or null for [seed])")
        if self.all_classes_gan is not None:
            if self.all_classes_gan.family not in ("cgan", "acgan"):
                raise ValueError("all_classes_gan.family must be class-conditional (cgan or acgan)")
            if self.synthetic.classes == "all":
                raise ValueError("all_classes_gan adds an all-class arm beside the rare-class one: with "
                                 "synthetic.classes 'all' the augmented arm is that arm already; drop one")
        if self.gan_pretrain and (self.generator != "gan" or self.synthetic.classes == "all"):
            raise ValueError("gan_pretrain applies to per-class GANs (generator: gan, synthetic.classes: rare)")
        if self.synthetic.curate is not None and self.synthetic.curate * self.synthetic.sample_factor < 1:
            raise ValueError("synthetic.curate x synthetic.sample_factor must be >= 1: curation keeps "
                             "n_per_class of the n_per_class x sample_factor sampled images")
        _check_registered(self)
        return self

    def seeds(self) -> list[int]:
        """The classifier seeds of every arm: ``classifier_seeds``, or ``[seed]``."""
        return list(self.classifier_seeds) if self.classifier_seeds is not None else [self.seed]

    def arms(self) -> list[Arm]:
        """The typed arms (see :mod:`sonogan.experiment.arms`) in report order: baseline,
        [classic], augmented, synthetic-N sweep, [all-classes], [synthetic-pretrain], classic-N sweep.

        Example:
            >>> cfg = ExperimentConfig.model_validate({"dataset": "d", "classic_arm": {"hflip": True},
            ...     "synthetic": {"n_per_class": 20, "sweep": [5]}, "classic_sweep": [7]})
            >>> [(a.name, a.n_synthetic, a.n_classic) for a in cfg.arms()]
            [('baseline', 0, 0), ('augmented', 20, 0), ('synthetic-5', 5, 0), ('classic-7', 0, 7)]
        """
        arms = [Arm(name="baseline", kind="baseline")]
        if self.classic_arm is not None and not self.classic_sweep:  # with a sweep, classic-N arms stand for it
            arms.append(Arm(name="classic", kind="classic", classic_augment=True))
        if self.baseline_only:  # the classifier recipe alone: no generator is trained
            return arms
        arms.append(Arm(name="augmented", kind="synthetic", n_synthetic=self.synthetic.n_per_class,
                        mix_mode=self.synthetic.mode))
        arms += [Arm(name=f"synthetic-{n}", kind="synthetic", n_synthetic=n)
                 for n in sorted(set(self.synthetic.sweep)) if n > 0]
        if self.all_classes_gan is not None:
            arms.append(Arm(name="all-classes", kind="synthetic", n_synthetic=self.synthetic.n_per_class,
                            synthetic_set="all"))
        if self.synthetic.pretrain_finetune is not None:
            arms.append(Arm(name="synthetic-pretrain", kind="pretrain", n_synthetic=self.synthetic.n_per_class))
        counts = set(self.classic_sweep) | ({self.synthetic.n_per_class} if self.synthetic.matched_control else set())
        # without a classic_arm the copies get the classifier's own augmentation, as the augmented arm's images do
        arms += [Arm(name=f"classic-{n}", kind="oversample", n_classic=n, classic_augment=self.classic_arm is not None)
                 for n in sorted(counts) if n > 0]
        return arms

    def arm_names(self) -> list[str]:
        return [a.name for a in self.arms()]

    def resolve_paths(self, base: Path) -> "ExperimentConfig":
        """A copy whose relative ``dataset`` / ``splits`` paths are taken from ``base`` (the config
        file's folder), as most tools do, instead of from wherever the command was started."""
        update = {k: str((base / v).resolve()) for k in ("dataset", "splits")
                  if (v := getattr(self, k)) is not None and not Path(v).is_absolute()}
        return self.model_copy(update=update)


def _check_registered(cfg: ExperimentConfig) -> None:
    """Every named part exists and fits, so a typo fails when the config is read, not after a
    GAN has trained."""
    checks = [("gan.family", cfg.gan.family, GAN_FAMILIES), ("preset", cfg.preset, PRESETS)]
    checks += [(f"classifiers.{i}.model", c.model, CLASSIFIERS) for i, c in enumerate(cfg.classifiers)]
    for key, name, registry in checks:
        if name not in registry:
            raise ValueError(f"{key}: unknown {registry.kind} '{name}' (known: {', '.join(registry.names())})")
