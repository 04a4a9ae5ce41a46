"""Checkpoint selection of the diffusion model by a proper score of its samples on the validation split."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from factorgym import ReturnPanel, Split, synthetic_factor_panel  # noqa: E402
from factorgym.artifacts import read_artifact  # noqa: E402
from factorgym.errors import FactorGymError  # noqa: E402
from factorgym.features import FeatureConfig  # noqa: E402
from factorgym.generators.diffusion import DiffusionConfig, DiffusionGenerator, FactorDiT  # noqa: E402
from factorgym.generators.diffusion import training as training_mod  # noqa: E402
from factorgym.generators.diffusion.selection import ValidationScorer, selection_days  # noqa: E402

SMALL = {
    "features": FeatureConfig(vol_windows=(5, 10), mom_windows=(5,)), "stat_window": 10, "scale_window": 10,
    "d_model": 16, "n_layers": 2, "n_heads": 2, "t_freq_dim": 16, "n_diffusion_steps": 50, "sample_steps": 8,
    "batch_days": 32, "warmup_steps": 5, "checkpoint_every": 10, "n_moment_samples": 64, "num_threads": 1,
    "max_steps": 30, "eval_every": 10, "select_days": 24, "select_samples": 8,
}  # fmt: skip


@pytest.fixture(scope="module")
def synth() -> ReturnPanel:
    return synthetic_factor_panel(T=400, N=5, F=2, seed=5, n_is_samples=8).panel


@pytest.fixture(scope="module")
def split(synth: ReturnPanel) -> Split:
    return Split.by_fraction(synth.dates)


def _fit(panel: ReturnPanel, split: Split, **changes) -> DiffusionGenerator:
    cfg = DiffusionConfig(**{**SMALL, **changes})
    return DiffusionGenerator(cfg).fit(panel, split, progress=False, rng=np.random.default_rng(0))


@pytest.fixture(scope="module")
def fitted(synth, split) -> DiffusionGenerator:
    return _fit(synth, split)


def test_selection_keeps_the_checkpoint_with_the_best_validation_score(synth, split, monkeypatch, tmp_path):
    """A scripted scorer (3, 1, 2 at steps 10, 20, 30): the weights kept are the EMA weights of step 20,
    although the validation loss keeps falling (a loss-selected fit would keep step 30)."""
    script = iter([3.0, 1.0, 2.0])
    seen: dict[int, dict[str, torch.Tensor]] = {}

    def scripted(self: training_mod.Trainer) -> float:
        seen[self.step] = {k: v.detach().clone() for k, v in self.ema.state_dict().items()}
        return next(script)

    monkeypatch.setattr(training_mod.Trainer, "validation_score", scripted)
    gen = DiffusionGenerator(DiffusionConfig(**SMALL)).fit(
        synth, split, out_dir=tmp_path, progress=False, rng=np.random.default_rng(0)
    )
    info = gen.fit_info_
    assert sorted(seen) == [10, 20, 30]
    assert info["selection"] == "energy" and info["best_step"] == 20 and info["best_score"] == 1.0
    assert [h["val_score"] for h in info["history"]] == [3.0, 1.0, 2.0]
    assert info["best_val_loss"] == info["history"][1]["val_loss"]
    for k, v in gen.model_.state_dict().items():
        assert torch.equal(v, seen[20][k]), k
    assert not torch.equal(seen[20]["final.linear.weight"], seen[30]["final.linear.weight"])
    # the criterion and its history are recorded in the saved model's metadata
    meta, _, _ = read_artifact(tmp_path / "diffusion.zip", expect_kind="diffusion")
    assert meta["config"]["selection"] == "energy" and meta["fit"]["selection"] == "energy"
    assert meta["fit"]["best_step"] == 20 and [h["val_score"] for h in meta["fit"]["history"]] == [3.0, 1.0, 2.0]


def test_default_selection_is_the_energy_score_of_samples(fitted):
    assert DiffusionConfig().selection == "energy"
    hist = fitted.fit_info_["history"]
    scores = [h["val_score"] for h in hist]
    assert len(hist) == 3 and all(np.isfinite(scores))
    best = int(np.argmin(scores))
    assert fitted.fit_info_["best_step"] == int(hist[best]["step"]) and fitted.fit_info_["best_score"] == scores[best]


def test_loss_selection_still_available(synth, split):
    gen = _fit(synth, split, selection="loss")
    hist = gen.fit_info_["history"]
    assert all("val_score" not in h for h in hist)
    best = int(np.argmin([h["val_loss"] for h in hist]))
    assert gen.fit_info_["best_step"] == int(hist[best]["step"])
    assert gen.fit_info_["best_score"] == gen.fit_info_["best_val_loss"] == hist[best]["val_loss"]


@pytest.mark.parametrize("selection", ["energy", "crps_ew"])
def test_score_is_fixed_noise_and_punishes_a_broken_model(fitted, val, selection):
    """Same weights -> same score (common random numbers); random weights score far worse."""
    cfg = fitted.config.replace(selection=selection)
    scorer = ValidationScorer(fitted.diffusion_, cfg, val, torch.device("cpu"))
    a, b = scorer.score(fitted.model_), scorer.score(fitted.model_)
    assert a == b and np.isfinite(a)
    broken = FactorDiT(fitted.model_.config)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in broken.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    assert scorer.score(broken.eval()) > 1.5 * a


@pytest.fixture(scope="module")
def val(fitted, synth, split) -> training_mod.TrainingSet:
    """The fit's validation set, captured by running a 1-step fit with a spy on the Trainer."""
    return _val_set(fitted, synth, split)


def _val_set(gen: DiffusionGenerator, panel: ReturnPanel, split: Split) -> training_mod.TrainingSet:
    captured = {}
    real_init = training_mod.Trainer.__init__

    def spy(self, model, diffusion, config, train, val, **kw):
        captured["val"] = val
        real_init(self, model, diffusion, config, train, val, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(training_mod.Trainer, "__init__", spy)
    try:
        DiffusionGenerator(gen.config.replace(max_steps=1, eval_every=1, selection="loss")).fit(panel, split, progress=False)
    finally:
        mp.undo()
    return captured["val"]


def test_selection_never_reads_test_rows(synth, split, fitted, val):
    """Test rows replaced by wild returns: the same scores, the same kept weights."""
    _, (v0, v1), (t0, t1) = split.bounds(synth.dates).values()
    assert t1 > t0
    r = np.array(synth.returns)
    r[t0:] = np.random.default_rng(1).uniform(-0.5, 0.9, size=r[t0:].shape)
    poisoned = ReturnPanel(synth.dates, synth.assets, r, np.asarray(synth.mask))
    other = _fit(poisoned, split)
    assert other.fit_info_["history"] == fitted.fit_info_["history"]
    for (k, a), (_, b) in zip(fitted.model_.state_dict().items(), other.model_.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    # the scored days are validation days only (all of them when the split has fewer than asked)
    assert 0 < val.n_days <= v1 - v0
    assert list(selection_days(val.n_days, 10**6)) == list(range(val.n_days))
    days = selection_days(val.n_days, 5)
    assert len(days) == 5 and days[0] == 0 and days[-1] == val.n_days - 1


def test_sample_settings_become_training_settings_under_a_sample_score():
    """With a sample score the sampler picks the kept weights, so a resume may not change it."""
    a = training_mod._training_fields(DiffusionConfig(sample_steps=20))
    b = training_mod._training_fields(DiffusionConfig(sample_steps=10))
    assert a != b
    la = training_mod._training_fields(DiffusionConfig(sample_steps=20, selection="loss"))
    lb = training_mod._training_fields(DiffusionConfig(sample_steps=10, selection="loss"))
    assert la == lb
    assert training_mod._training_fields(DiffusionConfig(device="cpu")) == training_mod._training_fields(DiffusionConfig())


@pytest.mark.parametrize(("field", "value"), [("selection", "nll"), ("select_days", 0), ("select_samples", 1)])
def test_bad_selection_settings_are_named(field, value):
    with pytest.raises(FactorGymError, match=field):
        DiffusionConfig(**{field: value})
