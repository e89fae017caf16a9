"""The diffusion family ("ddpm"): run folder, exact resume, seeded sampling into a synthetic
dataset with provenance, leakage (training ids), class-conditional sampling, CLI round trip."""

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from sonogan.data.manifest import PROVENANCE_COLUMNS, load_dataset
from sonogan.data.splits import Splits
from sonogan.errors import SonoganInputError
from sonogan.synth.diffusion import fit_diffusion, sample_diffusion, train_diffusion
from sonogan.synth.diffusion_config import DiffusionConfig
from sonogan.synth.trainer import hashed_ids

TINY = dict(widths=(8, 16), norm_groups=8, batch_size=2, iterations=4, checkpoint_every=2, sample_every=2,
            log_every=1, sample_steps=2, train_timesteps=50, warmup=2, ema_decay=0.9, device="cpu")


def tiny(**kw) -> DiffusionConfig:
    return DiffusionConfig(**{**TINY, **kw})


def last(run) -> dict:
    # weights_only=True: the checkpoint holds tensors and plain values, never pickled code
    return torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)


def assert_same_state(a: dict, b: dict) -> None:
    for key in ("unet", "unet_ema"):
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key}.{k} differs"
    for k, v in a["opt"]["state"].items():
        assert torch.equal(v["exp_avg"], b["opt"]["state"][k]["exp_avg"]), f"opt.{k} differs"
    assert a["history"] == b["history"] and a["lr_sched"] == b["lr_sched"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


def test_run_folder_checkpoint_and_metrics(tmp_path, tiny_real):
    before = torch.random.get_rng_state()
    run = fit_diffusion(tiny_real, tiny(), tmp_path / "run", meta={"fold": 0, "class_name": "borderline"})
    assert torch.equal(torch.random.get_rng_state(), before)  # the run's own generator only
    for name in ("config.yaml", "run.json", "log.txt", "metrics.json", "losses.json", "loss_curves.png",
                 "final_vs_real.png", "checkpoints/last.pt", "grids/iter_000002.png", "grids/iter_000004.png"):
        assert (run / name).is_file(), name
    info = json.loads((run / "run.json").read_text())
    assert info["training_ids"] == hashed_ids(tiny_real.ids) and info["status"] == "completed"
    assert info["kind"] == "diffusion" and info["family"] == "ddpm"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["iterations"] == 4 and metrics["final_loss"] > 0 and metrics["ms_per_iteration"] > 0
    ckpt = last(run)
    assert ckpt["iteration"] == 4 and ckpt["training_ids"] == hashed_ids(tiny_real.ids)
    assert [h["iteration"] for h in ckpt["history"]] == [1, 2, 3, 4]
    assert DiffusionConfig.model_validate(ckpt["config"]) == tiny()
    assert not any(torch.equal(ckpt["unet"][k], ckpt["unet_ema"][k]) for k in ("conv_in.weight", "conv_out.weight"))


@pytest.mark.parametrize("conditional", [False, True])
def test_resume_gives_identical_continuation(tmp_path, tiny_real, conditional):
    full = fit_diffusion(tiny_real, tiny(class_conditional=conditional), tmp_path / "full")
    part = fit_diffusion(tiny_real, tiny(iterations=2, class_conditional=conditional), tmp_path / "part")
    assert last(part)["iteration"] == 2
    fit_diffusion(tiny_real, tiny(iterations=4, class_conditional=conditional), part, resume=True)
    a, b = last(full), last(part)
    assert b["iteration"] == 4
    assert_same_state(a, b)
    assert json.loads((part / "run.json").read_text())["resumed"]


def test_resume_after_a_kill_before_the_first_checkpoint_starts_over(tmp_path, tiny_real):
    full = fit_diffusion(tiny_real, tiny(), tmp_path / "full")
    killed = tmp_path / "killed"  # as left by a kill -9 during the first iterations: run.json, no checkpoint
    fit_diffusion(tiny_real, tiny(), killed)
    for leftover in ("checkpoints", "grids"):
        shutil.rmtree(killed / leftover)
    (killed / "metrics.json").unlink()
    fit_diffusion(tiny_real, tiny(), killed, resume=True)
    assert_same_state(last(full), last(killed))


def test_other_seed_differs_and_resume_refuses_other_images(tmp_path, tiny_real):
    a = fit_diffusion(tiny_real, tiny(iterations=2), tmp_path / "a")
    b = fit_diffusion(tiny_real, tiny(iterations=2, seed=1), tmp_path / "b")
    assert not torch.equal(last(a)["unet"]["conv_in.weight"], last(b)["unet"]["conv_in.weight"])
    tiny_real.ids[0] = "someone-else"
    with pytest.raises(SonoganInputError, match="training images differ"):
        fit_diffusion(tiny_real, tiny(), a, resume=True)
    with pytest.raises(SonoganInputError, match="already exists"):
        fit_diffusion(tiny_real, tiny(), tmp_path / "b")


def test_config_errors():
    with pytest.raises(ValueError, match="must divide every UNet width"):
        DiffusionConfig(widths=(12, 24), norm_groups=8)
    with pytest.raises(ValueError, match="exceeds train_timesteps"):
        DiffusionConfig(train_timesteps=10, sample_steps=50)
    with pytest.raises(ValueError, match="Extra inputs"):
        DiffusionConfig(ngf=4)


@pytest.mark.parametrize("kw", [dict(resolution=128, channels=3, attention=True),
                                dict(class_conditional=True, widths=(8, 16, 16))])
def test_unet_variants_predict_noise_of_the_image_shape(kw):
    from sonogan.synth.diffusion_state import build_unet

    cfg = tiny(**kw)
    unet = build_unet(cfg, num_classes=3)
    x = torch.zeros(2, cfg.channels, cfg.resolution, cfg.resolution)
    y = torch.tensor([0, 2]) if cfg.class_conditional else None
    assert unet(x, torch.tensor([1, 40]), class_labels=y).sample.shape == x.shape
    assert any("attentions" in k for k in unet.state_dict()) == cfg.attention


@pytest.fixture(scope="module")
def ddpm_run(phantom, tmp_path_factory):
    ds, splits = phantom
    return train_diffusion(ds, splits, 1, "borderline", tiny(iterations=2),
                           tmp_path_factory.mktemp("ddpm") / "run", progress=False)


def test_diffusion_sees_only_its_folds_training_images(phantom, ddpm_run):
    ds, splits_path = phantom
    splits = Splits.load(splits_path, ds)
    ids = json.loads((ddpm_run / "run.json").read_text())["training_ids"]
    labels = dict(zip(ds.manifest["image_id"], ds.manifest["label"]))
    expected = sorted(i for i in splits.partition(1, "train") if labels[i] == "borderline")
    assert sorted(ids) == sorted(hashed_ids(expected)) and len(ids) >= 2
    assert not set(ids) & set(hashed_ids(splits.partition(1, "val") + splits.partition(1, "test")))
    assert last(ddpm_run)["training_ids"] == ids


def test_sampled_dataset_has_provenance_and_is_seeded(phantom, ddpm_run, tmp_path):
    ds, _ = phantom
    syn = sample_diffusion(ddpm_run, 3, tmp_path / "syn", seed=3)
    m = load_dataset(tmp_path / "syn").manifest
    assert len(m) == 3 and set(m["source"]) == {"synthetic"} and set(m["label"]) == {"borderline"}
    assert all(c in m.columns for c in PROVENANCE_COLUMNS)
    assert set(m["generator"]) == {"ddpm"} and set(m["synth_fold"]) == {"1"} and set(m["synth_seed"]) == {"3"}
    assert set(m["synth_run"]) == {ddpm_run.name} and (m["patient_id"] == m["image_id"]).all()
    assert all(len(s) == 64 for s in m["checkpoint_sha256"])
    assert syn.spec.classes == ds.spec.classes and syn.spec.masks == "none"
    assert syn.spec.name == f"{ds.spec.name}-synthetic" and "diffusion run" in syn.spec.description
    read = lambda root, d: [(root / p).read_bytes() for p in d.manifest["image"]]  # noqa: E731
    again = sample_diffusion(ddpm_run, 3, tmp_path / "again", seed=3)
    other = sample_diffusion(ddpm_run, 3, tmp_path / "other", seed=4, steps=1)
    assert read(tmp_path / "syn", syn) == read(tmp_path / "again", again)
    assert read(tmp_path / "syn", syn) != read(tmp_path / "other", other)
    with pytest.raises(SonoganInputError, match="already exists"):
        sample_diffusion(ddpm_run, 3, tmp_path / "syn", seed=3)
    with pytest.raises(SonoganInputError, match="DDIM steps"):
        sample_diffusion(ddpm_run, 3, tmp_path / "bad", steps=51)


def test_class_conditional_model_samples_the_requested_classes(phantom, tmp_path):
    ds, splits = phantom
    with pytest.raises(SonoganInputError, match="one class at a time"):
        train_diffusion(ds, splits, 0, None, tiny(iterations=1), tmp_path / "x", progress=False)
    run = train_diffusion(ds, splits, 0, None, tiny(iterations=2, class_conditional=True), tmp_path / "c",
                          progress=False)
    ckpt = last(run)
    assert ckpt["num_classes"] == len(ds.spec.classes) and "class_embedding.weight" in ckpt["unet_ema"]
    syn = sample_diffusion(run, 2, tmp_path / "syn", classes=["borderline", "malignant"])
    assert syn.manifest["label"].tolist() == ["borderline"] * 2 + ["malignant"] * 2
    default = sample_diffusion(run, 1, tmp_path / "rare")
    assert sorted(default.manifest["label"]) == sorted(ds.spec.rare_classes)
    with pytest.raises(SonoganInputError, match="unknown to this diffusion"):
        sample_diffusion(run, 1, tmp_path / "nope", classes=["teratoma"])


def test_cli_train_resume_sample_round_trip(phantom, tmp_path, monkeypatch, capsys):
    from sonogan.cli.main import main
    from sonogan.cli.synth import synth_app

    ds, splits = phantom
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("".join(f"{k}: {list(v) if isinstance(v, tuple) else v}\n" for k, v in TINY.items()))
    run = tmp_path / "run"
    train = ["train", str(ds.root), "--splits", str(splits), "--fold", "all", "--class", "borderline",
             "--out", str(run)]
    res = CliRunner().invoke(synth_app, [*train, "--model", "ddpm", "--config", str(cfg), "--iterations", "1"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(synth_app, ["train", "--resume", str(run), "--iterations", "2"])  # the run's config
    assert res.exit_code == 0, res.output
    assert json.loads((run / "metrics.json").read_text())["iterations"] == 2
    res = CliRunner().invoke(synth_app, ["sample", str(run), "--n", "2", "--steps", "1", "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    m = load_dataset(tmp_path / "s").manifest
    assert len(m) == 2 and set(m["generator"]) == {"ddpm"} and set(m["synth_fold"]) == {"all"}
    ckpt = run / "checkpoints" / "last.pt"
    damages = [(lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "empty, truncated or corrupt"),
               (lambda p: torch.save({"weights": 1}, p), "not a sonogan diffusion checkpoint (missing")]
    for damage, match in damages:
        damage(ckpt)
        argv = ["sonogan", "synth", "sample", str(run), "--n", "2", "--out", str(tmp_path / "x")]
        monkeypatch.setattr("sys.argv", argv)
        with pytest.raises(SystemExit) as exit_:
            main()
        lines = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 2 and len(lines) == 1 and match in lines[0], lines
        assert "last.pt" in lines[0] and "ddpm" in lines[0] and not (tmp_path / "x").exists()


def test_cli_sample_of_a_gan_run_still_samples_the_gan_and_refuses_steps(tmp_path):
    from sonogan.cli.synth import synth_app
    from sonogan.synth.config import GanConfig
    from sonogan.synth.state import build_state
    from sonogan.torch_utils import atomic_torch_save

    st = build_state(GanConfig(ngf=4, ndf=4, z_dim=8), num_classes=1, device=torch.device("cpu"))
    meta = {"classes": ["benign", "borderline"], "class_name": "borderline", "fold": 0, "training_ids": ["a"]}
    atomic_torch_save(st.to_checkpoint(meta=meta), tmp_path / "gan" / "checkpoints" / "last.pt")
    res = CliRunner().invoke(synth_app, ["sample", str(tmp_path / "gan"), "--n", "2", "--steps", "5",
                                         "--out", str(tmp_path / "s")])
    assert isinstance(res.exception, SonoganInputError) and "diffusion runs only" in str(res.exception)
    res = CliRunner().invoke(synth_app, ["sample", str(tmp_path / "gan"), "--n", "2", "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert set(load_dataset(tmp_path / "s").manifest["generator"]) == {"dcgan"}
