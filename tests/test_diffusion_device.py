"""The diffusion model's ``device`` setting (CPU-only tests: "auto" is the CPU here, "cuda" is refused,
a checkpoint that asks for CUDA loads on the CPU)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from factorgym import Split, synthetic_factor_panel  # noqa: E402
from factorgym.errors import DataValidationError, FactorGymError  # noqa: E402
from factorgym.features import FeatureConfig  # noqa: E402
from factorgym.generators.base import load_generator  # noqa: E402
from factorgym.generators.diffusion import DiffusionConfig, DiffusionGenerator  # noqa: E402
from factorgym.generators.diffusion import generator as generator_mod  # noqa: E402
from factorgym.generators.diffusion.device import resolve_device  # noqa: E402

TINY = {
    "features": FeatureConfig(vol_windows=(5, 10), mom_windows=(5,)), "stat_window": 10, "scale_window": 10,
    "d_model": 16, "n_layers": 2, "n_heads": 2, "t_freq_dim": 16, "n_diffusion_steps": 50, "sample_steps": 8,
    "batch_days": 32, "warmup_steps": 5, "checkpoint_every": 10, "n_moment_samples": 64, "num_threads": 1,
}  # fmt: skip

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour of a CPU-only machine")


@pytest.fixture(scope="module")
def synth():
    return synthetic_factor_panel(T=400, N=5, F=2, seed=4, n_is_samples=8).panel


@pytest.fixture(scope="module")
def fitted(synth):
    cfg = DiffusionConfig(**{**TINY, "max_steps": 20, "eval_every": 10, "select_days": 16, "select_samples": 4})
    return DiffusionGenerator(cfg).fit(synth, Split.by_fraction(synth.dates), progress=False, rng=np.random.default_rng(0))


@pytest.mark.parametrize("bad", ["gpu", "tpu", "cuda:x", "CPU", "", 0, None])
def test_invalid_device_is_refused_naming_it(bad):
    with pytest.raises(FactorGymError, match="device") as err:
        DiffusionConfig(device=bad)
    assert repr(bad) in str(err.value)
    with pytest.raises(FactorGymError, match="device"):
        DiffusionGenerator(device=bad)
    with pytest.raises(FactorGymError, match="device"):
        resolve_device(bad)


def test_default_device_is_auto():
    assert DiffusionConfig().device == "auto"
    assert DiffusionConfig.from_dict({k: v for k, v in DiffusionConfig().to_dict().items() if k != "device"}).device == "auto"


@NO_GPU
def test_cuda_without_a_gpu_is_refused_before_any_work(synth, monkeypatch):
    called = []
    monkeypatch.setattr(generator_mod, "panel_factors", lambda *a, **k: called.append(1))
    with pytest.raises(DataValidationError, match="'cuda'"):
        DiffusionGenerator(**TINY, device="cuda").fit(synth, Split.by_fraction(synth.dates), progress=False)
    assert not called
    with pytest.raises(DataValidationError, match="'cuda:1'"):
        resolve_device("cuda:1")


@NO_GPU
def test_auto_and_cpu_compute_on_the_cpu_with_generators_there(fitted, synth):
    assert fitted.device_ == torch.device("cpu") and fitted.fit_info_["device"] == "cpu"
    g = fitted.torch_generator(np.random.default_rng(0))
    assert g.device == fitted.device_
    noise = fitted.torch_noise(3, g)
    assert noise.device == fitted.device_
    # the predictive's torch.Generator is made on the model's device
    seen = []
    real = generator_mod.torch_generator

    def spy(rng, device="cpu"):
        seen.append(device)
        return real(rng, device=device)

    mp = pytest.MonkeyPatch()
    mp.setattr(generator_mod, "torch_generator", spy)
    try:
        s = fitted.predict(synth, 300).sample(5, np.random.default_rng(1))
    finally:
        mp.undo()
    assert seen == ["cpu"] and s.shape == (5, synth.N) and np.isfinite(s).all()
    # an explicit "cpu" fit gives the same weights as "auto" on this machine
    cpu = DiffusionGenerator(fitted.config.replace(device="cpu")).fit(
        synth, Split.by_fraction(synth.dates), progress=False, rng=np.random.default_rng(0)
    )
    for (k, a), (_, b) in zip(fitted.model_.state_dict().items(), cpu.model_.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


@NO_GPU
def test_checkpoint_that_asks_for_cuda_loads_on_a_cpu_only_machine(fitted, synth, tmp_path):
    gpu_made = copy.copy(fitted)  # whose config says it was trained on CUDA
    gpu_made.config = fitted.config.replace(device="cuda")
    path = tmp_path / "gpu.zip"
    gpu_made.save(path)
    back = load_generator(path)
    assert back.config.device == "auto" and back.device_ == torch.device("cpu")
    a = fitted.predict(synth, 320).sample(20, np.random.default_rng(3))
    b = back.predict(synth, 320).sample(20, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert DiffusionGenerator.load(path, device="cpu").config.device == "cpu"
    with pytest.raises(DataValidationError, match="'cuda'"):
        DiffusionGenerator.load(path, device="cuda")
    with pytest.raises(FactorGymError, match="'gpu'"):
        DiffusionGenerator.load(path, device="gpu")


def test_to_moves_and_records_the_device(fitted, synth):
    g = copy.deepcopy(fitted)
    assert g.to("cpu") is g and g.config.device == "cpu" and g.device_ == torch.device("cpu")
    with pytest.raises(FactorGymError, match="'mps'"):
        g.to("mps")
