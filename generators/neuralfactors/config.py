"""The NeuralFactors configuration: one frozen dataclass, saved inside every checkpoint.

The paper (Gopal 2024, section 3.5) trains a 256-wide model for 100,000 single-day steps on
a GPU. The defaults here are sized for the embedded 20-stock S&P 500 panel and a budget of
about 15 minutes on two CPU cores; the rationale for each departure is given next to the
field and in ``benchmarks/results/neuralfactors.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar

from factorgym.errors import DataValidationError
from factorgym.features import FeatureConfig, MarketStateConfig

if TYPE_CHECKING:
    import torch

__all__ = ["NeuralFactorsConfig", "resolve_device"]

_SEQUENCE_MODELS = ("attention", "lstm", "gru")
_DISTRIBUTIONS = ("student_t", "gaussian")
_DEVICES = ("auto", "cpu", "cuda")

#: Values of fields added after the first release, as the models saved before them behaved:
#: a checkpoint whose config lacks one of these loads with this value (the saved config
#: decides, never today's default). ``asset_embedding_dim`` was always saved; it is listed
#: for configs written by hand.
LEGACY_FIELD_VALUES: dict[str, Any] = {
    "asset_embedding_dim": 4,
    "market_state": None,
    "alpha_penalty": 0.0,
    "nu_min": 4.0,
    "device": "cpu",
    "asset_risk_embedding_dim": 0,
}


@dataclass(frozen=True)
class NeuralFactorsConfig:
    """Hyper-parameters of the NeuralFactors model and of its training.

    Inputs
    ------
    lookback : int
        ``l``. For attention, the sliding window (in days) of each causal attention layer;
        the last hidden state then depends on ``n_layers * (lookback - 1) + 1`` days (the
        receptive field). For the recurrent ablations, the number of days the recurrence
        is run over (from a zero state) before a prediction; note that training runs it
        over a whole block (``lookback`` to ``lookback + days_per_block - 1`` days) and
        the simulator carries the state on indefinitely, so for LSTM/GRU the three see
        slightly different state ages (attention has no such mismatch).
    features : FeatureConfig
        The shared point-in-time features ``X_{i,u}`` fed with each day's return. Exogenous
        series are not allowed: simulated paths feed their own returns back in and cannot
        produce them.
    use_features : bool
        ``False`` feeds returns only (the paper's "Stock Returns" feature ablation).
    market_state : MarketStateConfig or None
        Point-in-time market-state inputs (equal-weight realised volatility over several
        windows, drawdown from the running peak, cross-sectional dispersion;
        :func:`factorgym.features.market_state_features`), appended to every asset's input
        of each day so the embedder sees the regime; simulated paths recompute them from
        their own returns. ``None`` disables them.
    sector_embedding_dim, asset_embedding_dim : int
        Sizes of the static embeddings concatenated to the last hidden state (0 disables).
        The paper uses industry only; a per-asset embedding lets the model memorise each
        stock's training-period drift (simulated per-asset means then correlate with the
        training means), so it is off by default.
    asset_risk_embedding_dim : int
        Size of a per-asset embedding that feeds the risk outputs only (``beta``, ``sigma``,
        ``nu``), never ``alpha`` (computed in a second pass of the heads without it): the
        asset's identity can set its loadings and idiosyncratic scale, which the embedder
        otherwise has to re-estimate from a few weeks of its own returns, but cannot carry its
        training-period drift. 0 disables.

    Network
    -------
    sequence_model : {"attention", "lstm", "gru"}
        The two-layer sequence model of the stock embedder (attention in the paper's final
        model; LSTM is its ablation).
    hidden : int
        Width of every layer (paper: 256).
    n_layers : int
        Layers of the sequence model (paper: 2).
    n_heads, n_kv_heads : int
        Query heads and key/value heads (grouped-query attention; ``n_kv_heads == 1`` is
        multi-query attention, which keeps the streaming cache small).
    mlp_ratio : int
        Width multiplier of the attention blocks' feed-forward layers.
    dropout : float
        Dropout on residual branches and MLPs during training (paper: 0.25). Drawn from an
        explicit ``torch.Generator``, never the global RNG.

    Factor model
    ------------
    n_factors : int
        ``F`` (paper: 64 for ~500 stocks; tuned on validation).
    prior, decoder : {"student_t", "gaussian"}
        Distribution of the factor returns ``z`` and of ``r_i | z`` (ablations: Gaussian).
    learn_alpha : bool
        ``False`` fixes ``alpha_i = 0`` (ablation).
    alpha_penalty : float
        Shrinkage of alpha toward zero: ``alpha_penalty * mean(alpha~^2)`` (alpha in units of
        each asset's train std, averaged over available asset-days) is added to the training
        loss (not to the validation bound). 0 disables.
    nu_min : float
        Lower bound of every degrees-of-freedom parameter (decoder and prior), ``nu =
        softplus(.) + nu_min`` (paper: 4, finite kurtosis). Must exceed 2 (finite variance,
        needed by the moment-matched posterior).

    Training
    --------
    k : int
        Importance samples of the CIWAE bound (paper: 20; ``k = 1`` is the VAE ablation).
    max_steps : int
        Gradient steps (paper: 100,000).
    blocks_per_batch, days_per_block : int
        A batch is ``blocks_per_batch`` random runs of ``days_per_block`` consecutive
        training days; every day is its own cross-section (paper: one day per batch).
        Consecutive days share most of their lookback, so a run is computed in one pass.
    lr, warmup_steps, lr_schedule, min_lr_ratio :
        Adam learning rate (paper: 1e-4 constant), linear warm-up, then ``"constant"`` or
        ``"cosine"`` decay to ``lr * min_lr_ratio``.
    weight_decay : float
        L2 penalty of Adam (paper: 1e-6).
    grad_clip : float
        Gradient-norm clip (0 disables).
    polyak_start : float
        Fraction of ``max_steps`` after which iterates are uniformly averaged (Polyak &
        Juditsky; paper: 0.5).
    val_every : int
        Validation period in steps; the best (averaged) weights are kept.
    val_k : int
        Importance samples of the validation bound.
    checkpoint_every : int
        Period in steps of the resumable train-state file written under ``out_dir``.
    num_threads : int or None
        Torch intra-op threads during :meth:`fit` (restored afterwards; ``None`` keeps the
        current setting). 1 by default: at this model size a second thread gains little on an
        idle machine, and on a busy one every small op waits for a free core (measured up to
        50x slower on the shared 2-core development machine).
    inference_threads : int or None
        The same for prediction, log densities and simulation (set and restored around each
        call): the per-day batches there are small.
    seed : int
        Seed used when ``fit`` is given no ``rng``.
    device : {"auto", "cpu", "cuda"} (or "cuda:K")
        Where the network trains, predicts and simulates; ``"auto"`` is CUDA when available,
        else the CPU. Noise of simulated paths is always drawn on the CPU from the paths'
        numpy generators, so paths depend on the device only through rounding. Checkpoints
        are always written from (and load onto) the CPU.
    """

    # Defaults: chosen on the sp500 *validation* split under a ~15 min / 2-CPU budget (see
    # benchmarks/results/neuralfactors.md). Paper values in brackets.
    # inputs
    lookback: int = 32  # [256] l=64 gained 0.002 nats on val at twice the cost
    features: FeatureConfig = field(default_factory=FeatureConfig)  # vol 21/63, mom 21/126/252, market
    use_features: bool = True
    # issue 13 (benchmarks/results/nf_ablation.md; validation NLL_joint pooled, 600-step fits):
    # market state on 0.5789 vs 0.5898 without; no asset embedding 0.5807 vs 0.5898 with one
    market_state: MarketStateConfig | None = field(default_factory=MarketStateConfig)
    sector_embedding_dim: int = 4
    asset_embedding_dim: int = 0  # [industry only] 4 before issue 13
    # [none] issue 13: 4 (with dropout 0.25) took the synthetic GARCH panels' test gap to the true NLL
    # from 0.033-0.054 to 0.019-0.039 and sp500 val NLL_joint 0.5745 -> 0.5704 (paired -0.004, s.e.
    # 0.002), but lost on the validation rollouts by the rule fixed for it (H = 21 calibration error
    # 0.171 vs 0.121); off by default, an option. benchmarks/results/nf_ablation.md
    asset_risk_embedding_dim: int = 0
    # network
    sequence_model: str = "attention"
    hidden: int = 64  # [256] 32 lost 0.02 nats on val
    n_layers: int = 2  # [2]
    n_heads: int = 4
    n_kv_heads: int = 1  # multi-query: a 4x smaller streaming cache
    mlp_ratio: int = 2
    # [0.25] 0.1 was 0.008 nats worse on val at 800 steps; 0.25 stops the overfitting on synthetic
    # GARCH panels (gap 0.033 -> 0.026) and comes with the risk embedding above: see its comment
    dropout: float = 0.0
    # factor model
    n_factors: int = 8  # [64 for ~500 stocks] 4/8/16 within 0.01 on val for 20 stocks
    prior: str = "student_t"
    decoder: str = "student_t"
    learn_alpha: bool = True
    alpha_penalty: float = 0.0  # 1.0: 0.5889 vs 0.5898 alone, no gain with the two above (val)
    nu_min: float = 4.0  # [4] 2.5: 0.5901 vs 0.5898 on val; val 99% VaR calibrated either way
    # training
    k: int = 20  # [20]
    max_steps: int = 1200  # [100,000] val stops improving near 1,000-1,500 steps, then overfits
    blocks_per_batch: int = 4  # 4 runs x 32 days = 128 days per step [1 day]
    days_per_block: int = 32
    lr: float = 1e-3  # [1e-4 constant] short budget: higher, cosine-decayed
    warmup_steps: int = 100
    lr_schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    weight_decay: float = 1e-6  # [1e-6]
    grad_clip: float = 5.0
    polyak_start: float = 0.5  # [0.5]
    val_every: int = 200  # [1,000]
    val_k: int = 20
    checkpoint_every: int = 100
    num_threads: int | None = 1
    inference_threads: int | None = 1
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if isinstance(self.features, dict):  # e.g. from JSON / CLI key=value parameters
            object.__setattr__(self, "features", FeatureConfig.from_dict(self.features))
        if isinstance(self.market_state, dict):
            object.__setattr__(self, "market_state", MarketStateConfig.from_dict(self.market_state))
        elif self.market_state is False:
            object.__setattr__(self, "market_state", None)
        elif self.market_state is True:
            object.__setattr__(self, "market_state", MarketStateConfig())

        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise DataValidationError(f"NeuralFactorsConfig: {msg}")

        need(self.sequence_model in _SEQUENCE_MODELS, f"sequence_model must be one of {_SEQUENCE_MODELS}, got {self.sequence_model!r}")
        need(self.prior in _DISTRIBUTIONS, f"prior must be one of {_DISTRIBUTIONS}, got {self.prior!r}")
        need(self.decoder in _DISTRIBUTIONS, f"decoder must be one of {_DISTRIBUTIONS}, got {self.decoder!r}")
        need(self.lookback >= 2, f"lookback must be >= 2 days, got {self.lookback}")
        need(self.hidden >= 4, f"hidden must be >= 4, got {self.hidden}")
        need(self.n_layers >= 1, f"n_layers must be >= 1, got {self.n_layers}")
        need(self.n_heads >= 1 and self.hidden % self.n_heads == 0, f"hidden ({self.hidden}) must be a multiple of n_heads ({self.n_heads})")
        need(self.n_kv_heads >= 1 and self.n_heads % self.n_kv_heads == 0, f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})")
        need(self.mlp_ratio >= 1, f"mlp_ratio must be >= 1, got {self.mlp_ratio}")
        need(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        need(self.n_factors >= 1, f"n_factors must be >= 1, got {self.n_factors}")
        need(
            self.sector_embedding_dim >= 0 and self.asset_embedding_dim >= 0 and self.asset_risk_embedding_dim >= 0,
            "embedding sizes must be >= 0",
        )
        need(self.k >= 1 and self.val_k >= 1, "k and val_k must be >= 1")
        need(self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}")
        need(self.blocks_per_batch >= 1 and self.days_per_block >= 1, "blocks_per_batch and days_per_block must be >= 1")
        need(self.lr > 0, f"lr must be > 0, got {self.lr}")
        need(self.warmup_steps >= 0, "warmup_steps must be >= 0")
        need(self.lr_schedule in ("constant", "cosine"), f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        need(0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio must be in [0, 1]")
        need(self.weight_decay >= 0 and self.grad_clip >= 0, "weight_decay and grad_clip must be >= 0")
        need(0.0 <= self.polyak_start <= 1.0, f"polyak_start must be in [0, 1], got {self.polyak_start}")
        need(self.val_every >= 1 and self.checkpoint_every >= 1, "val_every and checkpoint_every must be >= 1")
        need(self.alpha_penalty >= 0, f"alpha_penalty must be >= 0, got {self.alpha_penalty}")
        need(self.nu_min > 2.0, f"nu_min must be > 2 (finite variance), got {self.nu_min}")
        need(
            self.market_state is None or isinstance(self.market_state, MarketStateConfig),
            f"market_state must be a MarketStateConfig, a dict or None, got {self.market_state!r}",
        )
        need(
            isinstance(self.device, str) and (self.device in _DEVICES or (self.device.startswith("cuda:") and self.device[5:].isdigit())),
            f"device must be one of {_DEVICES} (or 'cuda:K'), got {self.device!r}",
        )
        need(self.num_threads is None or self.num_threads >= 1, "num_threads must be None or >= 1")
        need(self.inference_threads is None or self.inference_threads >= 1, "inference_threads must be None or >= 1")
        need(
            not self.features.exog,
            "exogenous features cannot be used: simulated paths feed their own returns back into "
            "the model and cannot produce exogenous series",
        )

    # ------------------------------------------------------------------ derived sizes
    @property
    def n_inputs(self) -> int:
        """Width of one day's input ``{r_{i,u} || X_{i,u} || M_u}`` plus availability flags."""
        n = 2 + (self.features.n_features + 1 if self.use_features else 0)
        return n + (self.market_state.n_features + 1 if self.market_state is not None else 0)

    @property
    def receptive_field(self) -> int:
        """Days of inputs the last hidden state depends on (``R``)."""
        if self.sequence_model == "attention":
            return self.n_layers * (self.lookback - 1) + 1
        return self.lookback

    @property
    def feature_warmup(self) -> int:
        """Days of history one day's features and market state need (1 without either)."""
        w = self.features.warmup if self.use_features else 1
        return max(w, self.market_state.warmup) if self.market_state is not None else w

    @property
    def min_history(self) -> int:
        """Rows of history a prediction needs: the receptive field plus the feature warm-up."""
        return self.receptive_field + self.feature_warmup - 1

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (saved in checkpoints)."""
        d = asdict(self)
        d["features"] = self.features.to_dict()
        d["market_state"] = self.market_state.to_dict() if self.market_state is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NeuralFactorsConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (an incompatible checkpoint).

        A field missing from ``d`` that was added after the first release takes its
        :data:`LEGACY_FIELD_VALUES` value, so a checkpoint written before it was added
        behaves as it did; other missing fields take today's default.
        """
        d = {**{k: v for k, v in LEGACY_FIELD_VALUES.items() if k not in d}, **d}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DataValidationError(f"unknown NeuralFactorsConfig fields: {', '.join(unknown)}")
        return cls(**d)

    def replace(self, **changes: Any) -> NeuralFactorsConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    #: Fields that change neither the model nor the optimisation trajectory (a train state
    #: written under one value resumes under another).
    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = ("num_threads", "inference_threads", "checkpoint_every", "device")

    def training_signature(self) -> dict[str, Any]:
        """The fields that define a training run (everything but :attr:`RUNTIME_FIELDS`)."""
        d = self.to_dict()
        for k in self.RUNTIME_FIELDS:
            d.pop(k, None)
        return d


def resolve_device(name: str) -> torch.device:
    """The torch device of a ``device`` setting: ``"auto"`` (CUDA when available, else the CPU),
    ``"cpu"``, ``"cuda"`` or ``"cuda:K"``.

    Raises
    ------
    DataValidationError
        An unknown name, or CUDA asked for where it is not available (the message names it).
    """
    import torch  # noqa: PLC0415 - keeps the config importable without loading torch

    if not isinstance(name, str):
        raise DataValidationError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:K', got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise DataValidationError(f"device {name!r} asked for, but CUDA is not available here; use 'auto' or 'cpu'")
        if name != "cuda" and int(name[5:]) >= torch.cuda.device_count():
            raise DataValidationError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) here")
        return torch.device(name)
    raise DataValidationError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:K', got {name!r}")
