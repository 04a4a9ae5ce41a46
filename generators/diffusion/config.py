"""Configuration of the factor-conditioned diffusion generator.

Two dataclasses, both saved inside every checkpoint:

* :class:`DiTConfig` - the network alone (what :class:`~factorgym.generators.diffusion.model.FactorDiT`
  needs to be rebuilt);
* :class:`DiffusionConfig` - everything: factor construction, return scaling, the network,
  the diffusion process, training and sampling.

Defaults and why
----------------
The defaults target the embedded 20-stock sp500 panel on a shared 2-core CPU (figures in
``benchmarks/results/diffusion.md``):

* network: 3 adaLN-Zero blocks, width 32, 2 heads, MLP ratio 2 (~50 k parameters). The
  sampling budget decides the size: one network call on 500 scenarios x 20 assets is
  10 000 tokens, and a day of 500 scenarios must take at most a second with 20 calls;
  wider/deeper variants tried on the design split (train <= 2008, evaluation 2014-2018)
  did not score better.
* process: cosine schedule, 1000 steps, eps prediction with a built-in skip and the
  truncated-SNR weighting (both explained in ``diffusion.py``; without them the few-step
  samplers are badly off).
* sampler: second-order multistep DPM-Solver (``"dpm2m"``) with 20 steps: with the exact
  denoiser of unit-Gaussian data its std error is +1% against -5% for deterministic DDIM and
  -10% for ancestral DDIM (``eta = 1``) at the same cost.
* training: 3000 AdamW steps of 128 days at lr 1e-3 with EMA 0.999 and validation selection
  (a few minutes on 2 idle cores; validation loss flattens after ~2500 steps on sp500).
* factors: the shared default features (vol 21/63, momentum 21/126/252, market), plus the
  last return and a 63-day beta, cross-sectionally z-scored and winsorised at 3, and the
  day's market context; returns in units of their trailing 63-day volatility.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from factorgym.errors import DataValidationError
from factorgym.features import FeatureConfig
from factorgym.generators.diffusion.device import check_device

__all__ = ["DiTConfig", "DiffusionConfig"]

_SCHEDULES = ("linear", "cosine")
_SAMPLERS = ("dpm2m", "ddim", "ddpm")
_SCALES = ("trailing", "train_std")
_SELECTIONS = ("energy", "crps_ew", "loss")


@dataclass(frozen=True)
class DiTConfig:
    """Shape of the factor-conditioned diffusion transformer.

    Parameters
    ----------
    n_factors : int
        Length ``K`` of each token's factor vector.
    d_model : int
        Width of the token stream and of the conditioning vectors.
    n_layers : int
        Number of adaLN-Zero transformer blocks.
    n_heads : int
        Attention heads (``d_model`` must be divisible by it).
    mlp_ratio : float
        Hidden width of each block's MLP as a multiple of ``d_model``.
    t_freq_dim : int
        Size of the sinusoidal diffusion-step features fed to the step-embedding MLP.
    """

    n_factors: int
    d_model: int = 32
    n_layers: int = 3
    n_heads: int = 2
    mlp_ratio: float = 2.0
    t_freq_dim: int = 64

    def __post_init__(self) -> None:
        if self.n_factors < 1:
            raise DataValidationError(f"n_factors must be >= 1, got {self.n_factors}")
        if self.d_model < 1 or self.n_layers < 1 or self.n_heads < 1:
            raise DataValidationError("d_model, n_layers and n_heads must be positive")
        if self.d_model % self.n_heads:
            raise DataValidationError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.t_freq_dim < 2 or self.t_freq_dim % 2:
            raise DataValidationError(f"t_freq_dim must be an even number >= 2, got {self.t_freq_dim}")
        if self.mlp_ratio <= 0:
            raise DataValidationError(f"mlp_ratio must be positive, got {self.mlp_ratio}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DiTConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**d)


def _default_features() -> FeatureConfig:
    return FeatureConfig()


@dataclass(frozen=True)
class DiffusionConfig:
    """Every setting of :class:`~factorgym.generators.diffusion.DiffusionGenerator`.

    Factors (per asset ``i`` on day ``t``, from returns up to ``t`` only)
    ----------------------------------------------------------------------
    features : FeatureConfig
        The shared point-in-time features (:mod:`factorgym.features`); exogenous series are
        not allowed because simulated paths cannot produce them. Volatilities enter as logs.
    stat_window : int
        Window of the appended return-window statistics: the asset's beta to the
        equal-weight market (``beta``) and, with ``n_pc > 0``, its loadings on the top
        principal components of the trailing correlation matrix.
    n_pc : int
        Number of principal-component loadings appended to each factor vector (0 = none).
        Their signs are arbitrary, so training flips each component's sign at random per
        day (augmentation that teaches the network the sign symmetry).
    winsor : float
        Cross-sectional z-scores of the asset factors are clipped at ``+-winsor`` (3, as the
        paper).
    market_context : bool
        Append the day's cross-sectional means of the (log-vol, momentum, last-return)
        factors and the equal-weight market return, standardised over time with the train
        split's mean and std and clipped at ``+-context_clip``, to every token. Cross-
        sectional standardisation removes the *level* of every factor (e.g. the
        market-wide volatility regime); these shared columns give it back without breaking
        permutation equivariance. ``False`` is the paper's pure cross-sectional variant.
    context_clip : float
        Clip of the time-series-standardised context columns.

    Returns
    -------
    scale : {"trailing", "train_std"}
        The model learns standardised **log** returns ``y = log(1 + r) / s``; ``"trailing"``
        uses each asset's trailing std of log returns over ``scale_window`` days (so the
        network learns returns in units of recent volatility, as risk models do);
        ``"train_std"`` uses each asset's std over the train split (a constant per asset).
        Samples are mapped back with ``r = expm1(s * y)`` (simple returns, always > -100%).
    scale_window : int
    scale_floor : float
        Lower bound of the trailing scale (daily log-return std).
    target_clip : float
        Training targets are winsorised at ``+-target_clip`` scale units; the sampler clips
        its ``x0`` prediction to the same support.

    Network
    -------
    d_model, n_layers, n_heads, mlp_ratio, t_freq_dim : see :class:`DiTConfig`.

    Process
    -------
    schedule : {"linear", "cosine"}
    n_diffusion_steps : int
        Length ``T`` of the discrete forward process.
    skip : bool
        Read the network output ``F`` as ``eps_hat = sigma_n y_n + alpha_n F`` (a built-in skip;
        the loss is still the noise-prediction MSE). Without it, few-step samplers divide
        the network's error by ``alpha_n`` near pure noise and blow up (see ``diffusion.py``).
    loss_weight : {"trunc_snr", "eps"}
        Per-step weight of the noise-prediction MSE: ``"eps"`` is DDPM's simple loss;
        ``"trunc_snr"`` multiplies it by ``max(1, 1/SNR_n)``, which makes it the ``x0`` MSE at
        the high-noise steps. Under the simple loss those steps carry almost no weight, the
        high-noise ``x0`` predictions stay poor (too correlated, mean shrunk to 0) and the
        deterministic samplers carry that error to the samples.
    weight_cap : float or None
        Upper bound of the ``trunc_snr`` weights (None: no bound).

    Training
    --------
    batch_days : int
        Days (cross-sections) per optimisation step.
    max_steps : int
    lr, weight_decay, warmup_steps, grad_clip : float / int
        AdamW; linear warm-up then cosine decay to ``lr / 10``.
    ema_decay : float
        Exponential moving average of the weights; the EMA weights are evaluated, selected
        and saved.
    eval_every : int
        The EMA weights are evaluated on the validation split every this many steps (and at
        the last step); the best ones under ``selection`` are kept.
    val_repeats : int
        Stratified diffusion steps per validation day in the validation diffusion loss
        (recorded at every evaluation whatever ``selection`` is).
    selection : {"energy", "crps_ew", "loss"}
        What picks the kept weights. ``"energy"`` (default): the mean energy score of the
        model's **samples** against the realised cross-section on ``select_days`` validation
        days, in units of each asset's trailing volatility (the network's space, so calm and
        turbulent days count alike; absent assets left out). ``"crps_ew"``: the mean CRPS of
        the equal-weight portfolio's simple return. Both are proper scoring rules of what the
        model is used for (scenarios), computed with fixed noise so that successive
        evaluations differ only through the weights (:mod:`~factorgym.generators.diffusion.selection`).
        ``"loss"``: the validation diffusion loss (the denoising objective, which rewards a
        good denoiser at every noise level rather than good samples). The default's extra
        cost is measured in ``benchmarks/results/diffusion_selection.md``.
    select_days : int
        Validation days scored (evenly spaced over the split; all of them when fewer).
    select_samples : int
        Scenarios per scored day (>= 2).
    patience : int or None
        Stop after this many evaluations without improvement (None: run ``max_steps``).
    checkpoint_every : int
        Train-state file written to ``out_dir`` every this many steps.

    Sampling
    --------
    sampler : {"dpm2m", "ddim", "ddpm"}
        ``"ddpm"`` is the ancestral sampler over all ``n_diffusion_steps``; ``"ddim"`` uses
        ``sample_steps`` evenly spaced steps with stochasticity ``eta`` (``eta = 1`` is the
        ancestral sampler on the respaced chain, ``eta = 0`` the deterministic one);
        ``"dpm2m"`` is the second-order multistep DPM-Solver of the deterministic DDIM ODE on
        the same steps (one network call per step, see ``diffusion.py``).
    sample_steps : int
        Network calls per scenario for ``ddim`` / ``dpm2m``.
    eta : float
        DDIM stochasticity (``ddim`` only).
    n_moment_samples : int
        Draws behind a predictive distribution's mean, covariance and quantiles.
    sample_batch : int
        Largest number of scenarios pushed through the network at once (memory bound).

    Misc
    ----
    num_threads : int or None
        ``torch.set_num_threads`` during fit and sampling (restored afterwards; ``None`` keeps
        the current setting). 1 by default, as for NeuralFactors: on the idle 2-core machine a
        second thread made a 150-step fit 11% faster, while with one other busy process it made
        it 2.9 times slower and the sampling in the evaluation 3.4 times slower
        (``benchmarks/results/load.md``). The trained weights do not depend on it.
    device : {"auto", "cpu", "cuda"} or "cuda:K"
        Where training, prediction and simulation run (:mod:`~factorgym.generators.diffusion.device`):
        ``"auto"`` is CUDA when torch sees a GPU, else the CPU. Not a training setting: a fit
        may be resumed on another device (its weights then differ by float round-off), and a
        checkpoint saved with ``"cuda"`` loads on a CPU-only machine.
    seed : int
        Seed of training when :meth:`fit` gets no ``rng``.
    """

    # factors
    features: FeatureConfig = field(default_factory=_default_features)
    stat_window: int = 63
    n_pc: int = 0
    winsor: float = 3.0
    market_context: bool = True
    context_clip: float = 5.0
    # returns
    scale: str = "trailing"
    scale_window: int = 63
    scale_floor: float = 1e-3
    target_clip: float = 10.0
    # network
    d_model: int = 32
    n_layers: int = 3
    n_heads: int = 2
    mlp_ratio: float = 2.0
    t_freq_dim: int = 64
    # process
    schedule: str = "cosine"
    n_diffusion_steps: int = 1000
    skip: bool = True
    loss_weight: str = "trunc_snr"
    weight_cap: float | None = None
    # training
    batch_days: int = 128
    max_steps: int = 3000
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 200
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    eval_every: int = 250
    val_repeats: int = 4
    selection: str = "energy"
    select_days: int = 128
    select_samples: int = 16
    patience: int | None = None
    checkpoint_every: int = 250
    # sampling
    sampler: str = "dpm2m"
    sample_steps: int = 20
    eta: float = 0.0
    n_moment_samples: int = 1000
    sample_batch: int = 8192
    # misc
    num_threads: int | None = 1
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.features, FeatureConfig):
            raise DataValidationError("features must be a FeatureConfig")
        if self.features.exog:
            raise DataValidationError(
                "the diffusion generator recomputes factors from simulated returns; exogenous "
                f"features {self.features.exog} cannot be simulated (use FeatureConfig(exog=()))"
            )
        if not self.features.vol_windows:
            raise DataValidationError("the diffusion generator needs at least one volatility window")
        if self.stat_window < 3 or self.scale_window < 3:
            raise DataValidationError("stat_window and scale_window must be >= 3 days")
        if self.n_pc < 0:
            raise DataValidationError(f"n_pc must be >= 0, got {self.n_pc}")
        if self.scale not in _SCALES:
            raise DataValidationError(f"scale must be one of {_SCALES}, got {self.scale!r}")
        if self.schedule not in _SCHEDULES:
            raise DataValidationError(f"schedule must be one of {_SCHEDULES}, got {self.schedule!r}")
        if self.loss_weight not in ("trunc_snr", "eps"):
            raise DataValidationError(f"loss_weight must be 'trunc_snr' or 'eps', got {self.loss_weight!r}")
        if self.sampler not in _SAMPLERS:
            raise DataValidationError(f"sampler must be one of {_SAMPLERS}, got {self.sampler!r}")
        if self.n_diffusion_steps < 2:
            raise DataValidationError("n_diffusion_steps must be >= 2")
        if not 1 <= self.sample_steps <= self.n_diffusion_steps:
            raise DataValidationError(
                f"sample_steps must lie in [1, n_diffusion_steps={self.n_diffusion_steps}], got {self.sample_steps}"
            )
        if self.selection not in _SELECTIONS:
            raise DataValidationError(f"selection must be one of {_SELECTIONS}, got {self.selection!r}")
        if isinstance(self.select_days, bool) or int(self.select_days) < 1:
            raise DataValidationError(f"select_days must be >= 1, got {self.select_days}")
        if isinstance(self.select_samples, bool) or int(self.select_samples) < 2:
            raise DataValidationError(f"select_samples must be >= 2 (a fair score needs two samples), got {self.select_samples}")
        check_device(self.device)
        if self.eta < 0:
            raise DataValidationError(f"eta must be >= 0, got {self.eta}")
        for name in ("winsor", "context_clip", "target_clip", "scale_floor", "lr"):
            if not getattr(self, name) > 0:
                raise DataValidationError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise DataValidationError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")
        for name in ("batch_days", "max_steps", "eval_every", "val_repeats", "checkpoint_every",
                     "n_moment_samples", "sample_batch"):
            if int(getattr(self, name)) < 1:
                raise DataValidationError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.patience is not None and self.patience < 1:
            raise DataValidationError(f"patience must be >= 1 or None, got {self.patience}")
        if self.num_threads is not None and self.num_threads < 1:
            raise DataValidationError(f"num_threads must be >= 1 or None, got {self.num_threads}")
        # the network config validates widths/heads
        self.dit(1)

    # ------------------------------------------------------------------ derived
    @property
    def min_history(self) -> int:
        """Rows of history a factor vector needs (the longest trailing window)."""
        return max(self.features.warmup, self.stat_window, self.scale_window)

    def dit(self, n_factors: int) -> DiTConfig:
        """The network config for factor vectors of length ``n_factors``."""
        return DiTConfig(
            n_factors=n_factors,
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            mlp_ratio=self.mlp_ratio,
            t_freq_dim=self.t_freq_dim,
        )

    def replace(self, **changes: Any) -> DiffusionConfig:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (saved in checkpoints and train states)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["features"] = self.features.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DiffusionConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DataValidationError(f"unknown DiffusionConfig fields: {', '.join(unknown)}")
        if "features" in d and isinstance(d["features"], dict):
            d["features"] = FeatureConfig.from_dict(d["features"])
        return cls(**d)
