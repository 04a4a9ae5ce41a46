"""The NeuralFactors network: the stock embedder and the factor prior (paper section 3.5).

Only the network lives here; the probabilistic machinery (posterior, CIWAE loss) and the
training loop are in :mod:`factorgym.generators.neuralfactors.training`.

Stock embedder (Figure 2 of the paper), per asset ``i`` and day ``t``::

    {r_{i,u} || X_{i,u}}_{u <= t}  --one-layer MLP-->  h1      (B, S, H)
    h1  --two sequence-model layers-->  h2 (last state)        (B, H)
    [h2 || sector emb || asset emb || risk emb]  --two-layer MLP-->  h3    (B, H)
    alpha = w_a'h3,  beta = W_b h3,  sigma = softplus(w_s'h3),  nu = softplus(w_v'h3) + nu_min

The *risk* embedding (``asset_risk_embedding_dim``) is a per-asset embedding that informs the
risk outputs only: ``beta``, ``sigma`` and ``nu`` come from ``h3`` above, ``alpha`` from a
second pass of the same MLP with the risk embedding left out (``h3'``), so an asset's
identity can set its loadings and scale but never its expected return.

Sequence model. Attention layers are causal with a *sliding window* of ``l`` positions
per layer and a learned relative-position bias (one scalar per head and lag, initialised
like ALiBi). Nothing depends on absolute positions, so the keys/values of past days stay
valid as the window slides: :meth:`NeuralFactorsNet.prefill` fills a per-layer rolling
cache from a history and :meth:`NeuralFactorsNet.step` advances it by one day in
``O(n_layers * l)`` per asset, giving exactly the state a full recomputation would give.
Keys/values use grouped-query attention (``n_kv_heads <= n_heads``) to keep that cache small.
The LSTM/GRU ablation carries its recurrent state instead.

Dropout uses an explicit ``torch.Generator`` passed to ``forward`` (training only), never
torch's global RNG.

Shapes: ``B`` sequences (assets x days or paths), ``S`` sequence length, ``H`` hidden,
``D`` inputs per day, ``F`` factors, ``l`` attention window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as fn
from torch import Tensor, nn

from factorgym.generators.neuralfactors.config import NeuralFactorsConfig

__all__ = ["FactorParams", "NeuralFactorsNet", "StreamState", "dropout"]

#: Lower bound of sigma (in units of each asset's train-period std) for numerical safety.
SIGMA_FLOOR = 1e-4
#: The paper's lower bound of the degrees of freedom (finite kurtosis); the default of
#: ``NeuralFactorsConfig.nu_min``, which the network uses.
NU_MIN = 4.0
#: Most sequences (paths x assets) in one full encoder pass of :meth:`NeuralFactorsNet.prefill`
#: (and of the generator's window predictions). Attention over the receptive field ``R``
#: holds ``B * n_heads * R^2`` scores at once: 64 paths x 500 assets at R = 63 were 2 GB a
#: layer; in passes of 4,096 sequences the peak is bounded (about 0.26 GB) whatever P x N is.
MAX_SEQUENCES = 4096


def dropout(x: Tensor, p: float, generator: torch.Generator | None) -> Tensor:
    """Inverted dropout with an explicit generator; identity when ``generator`` is None."""
    if generator is None or p <= 0.0:
        return x
    keep = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device) >= p
    return x * keep / (1.0 - p)


class FactorParams(NamedTuple):
    """Conditional factor-model parameters of the next day (in scaled return units).

    ``alpha`` ``(..., N)``, ``beta`` ``(..., N, F)``, ``sigma`` ``(..., N)``, ``nu``
    ``(..., N)`` (ignored by a Gaussian decoder).
    """

    alpha: Tensor
    beta: Tensor
    sigma: Tensor
    nu: Tensor


# ---------------------------------------------------------------------- attention
@dataclass
class KVCache:
    """Rolling keys/values of one attention layer for ``B`` sequences.

    ``kt``: keys stored transposed, ``(B, n_kv, dh, l)``; ``v``: ``(B, n_kv, l, dh)``.
    Slot ``s`` holds the day ``(newest - s) mod l`` days before the newest one.
    """

    kt: Tensor
    v: Tensor


class SlidingWindowAttention(nn.Module):
    """Causal multi-head attention over the last ``window`` positions with relative bias.

    Parameters
    ----------
    hidden, n_heads, n_kv_heads, window : int
    """

    def __init__(self, hidden: int, n_heads: int, n_kv_heads: int, window: int) -> None:
        super().__init__()
        self.n_heads, self.n_kv, self.window = n_heads, n_kv_heads, window
        self.dh = hidden // n_heads
        self.group = n_heads // n_kv_heads
        self.qkv = nn.Linear(hidden, (n_heads + 2 * n_kv_heads) * self.dh)
        self.proj = nn.Linear(hidden, hidden)
        # relative bias per head and lag; initialised ALiBi-style (NeuralFactorsNet.init_weights)
        self.rel_bias = nn.Parameter(torch.zeros(n_heads, window))  # (n_heads, l)

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Split projections of ``x`` ``(..., H)`` into q ``(..., n_kv, g, dh)`` (scaled by
        ``1/sqrt(dh)``), k, v ``(..., n_kv, dh)``."""
        q, k, v = self.qkv(x).split([self.n_heads * self.dh, self.n_kv * self.dh, self.n_kv * self.dh], -1)
        q = (q * (1.0 / math.sqrt(self.dh))).unflatten(-1, (self.n_kv, self.group, self.dh))  # pre-scaled
        return q, k.unflatten(-1, (self.n_kv, self.dh)), v.unflatten(-1, (self.n_kv, self.dh))

    def _band_bias(self, S: int, device: torch.device) -> Tensor:  # noqa: N803
        """Additive bias ``(n_kv, g, S, S)``: ``rel_bias[h, i-j]`` inside the causal band, else -inf."""
        i = torch.arange(S, device=device)
        lag = i[:, None] - i[None, :]  # (S, S)
        inside = (lag >= 0) & (lag < self.window)
        b = self.rel_bias[:, lag.clamp(0, self.window - 1)]  # (n_heads, S, S)
        b = b.masked_fill(~inside, float("-inf"))
        return b.view(self.n_kv, self.group, S, S)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Full causal pass. ``x`` ``(B, S, H)`` -> output ``(B, S, H)``, keys, values ``(B, S, n_kv, dh)``."""
        B, S, H = x.shape  # noqa: N806
        q, k, v = self._qkv(x)  # (B,S,n_kv,g,dh), (B,S,n_kv,dh), (B,S,n_kv,dh)
        qh = q.permute(0, 2, 3, 1, 4)  # (B, n_kv, g, S, dh)
        kh = k.permute(0, 2, 3, 1).unsqueeze(2)  # (B, n_kv, 1, dh, S)
        vh = v.permute(0, 2, 1, 3).unsqueeze(2)  # (B, n_kv, 1, S, dh)
        scores = torch.matmul(qh, kh)  # (B, n_kv, g, S, S)
        att = torch.softmax(scores + self._band_bias(S, x.device), dim=-1)
        out = torch.matmul(att, vh)  # (B, n_kv, g, S, dh)
        out = out.permute(0, 3, 1, 2, 4).reshape(B, S, H)
        return self.proj(out), k, v

    def make_cache(self, k: Tensor, v: Tensor) -> KVCache:
        """Cache from the keys/values ``(B, S, n_kv, dh)`` of a full pass (``S >= window``).

        The newest position goes to slot ``window - 1`` (see :meth:`step` for the layout).
        """
        kl, vl = k[:, -self.window :], v[:, -self.window :]  # (B, l, n_kv, dh)
        return KVCache(kt=kl.permute(0, 2, 3, 1).contiguous(), v=vl.permute(0, 2, 1, 3).contiguous())

    def slot_bias(self, slot: int) -> Tensor:
        """Relative bias of each cache slot when the newest day sits in ``slot``: ``(n_kv, g, l)``."""
        lag = (slot - torch.arange(self.window, device=self.rel_bias.device)) % self.window  # (l,) lag of each slot
        return self.rel_bias[:, lag].view(self.n_kv, self.group, self.window)

    def slot_bias_table(self) -> Tensor:
        """:meth:`slot_bias` of every slot, stacked: ``(l, n_kv, g, l)`` (a copy, for streaming)."""
        return torch.stack([self.slot_bias(s) for s in range(self.window)]).contiguous()

    def step(self, x: Tensor, cache: KVCache, slot: int, bias: Tensor | None = None) -> Tensor:
        """One new position per sequence. ``x`` ``(B, H)`` -> ``(B, H)``; writes ``slot`` of ``cache``.

        ``bias``: ``slot_bias(slot)`` ``(n_kv, g, l)`` if precomputed (see :meth:`slot_bias_table`).
        Functional calls only (no module dispatch): this runs once per simulated day for
        every path and asset, where per-op overhead dominates. With one key/value head (the
        default) the scores are a single ``baddbmm`` with the bias and the query scale
        ``1/sqrt(dh)`` fused in (the same numbers as pre-scaled queries when ``dh`` is a
        power of 4, else within one rounding).
        """
        B = x.shape[0]  # noqa: N806
        nq, nk, dh = self.n_heads * self.dh, self.n_kv * self.dh, self.dh
        qkv = fn.linear(x, self.qkv.weight, self.qkv.bias)  # (B, (n_heads + 2 n_kv) dh)
        cache.kt[:, :, :, slot] = qkv[:, nq : nq + nk].view(B, self.n_kv, dh)
        cache.v[:, :, slot, :] = qkv[:, nq + nk :].view(B, self.n_kv, dh)
        if bias is None:
            bias = self.slot_bias(slot)
        if self.n_kv == 1:
            q = qkv[:, :nq].view(B, self.group, dh)  # strided view, no copy
            scores = torch.baddbmm(bias[0], q, cache.kt[:, 0], alpha=1.0 / math.sqrt(dh))  # (B, g, l)
            out = torch.bmm(torch.softmax(scores, dim=-1), cache.v[:, 0])  # (B, g, dh)
        else:
            q = (qkv[:, :nq] * (1.0 / math.sqrt(dh))).view(B, self.n_kv, self.group, dh)
            att = torch.softmax(torch.matmul(q, cache.kt) + bias, dim=-1)  # (B, n_kv, g, l)
            out = torch.matmul(att, cache.v)  # (B, n_kv, g, dh)
        return fn.linear(out.reshape(B, nq), self.proj.weight, self.proj.bias)


class AttentionBlock(nn.Module):
    """Pre-LayerNorm transformer block: sliding-window attention then a GELU MLP."""

    def __init__(self, cfg: NeuralFactorsConfig) -> None:
        super().__init__()
        H = cfg.hidden  # noqa: N806
        self.p = cfg.dropout
        self.ln1 = nn.LayerNorm(H)
        self.attn = SlidingWindowAttention(H, cfg.n_heads, cfg.n_kv_heads, cfg.lookback)
        self.ln2 = nn.LayerNorm(H)
        self.fc1 = nn.Linear(H, cfg.mlp_ratio * H)
        self.fc2 = nn.Linear(cfg.mlp_ratio * H, H)

    def _mlp(self, x: Tensor, gen: torch.Generator | None) -> Tensor:
        return dropout(self.fc2(fn.gelu(self.fc1(self.ln2(x)))), self.p, gen)

    def forward(self, x: Tensor, gen: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``x`` ``(B, S, H)`` -> ``(B, S, H)`` and this layer's keys/values ``(B, S, n_kv, dh)``."""
        a, k, v = self.attn(self.ln1(x))
        x = x + dropout(a, self.p, gen)
        return x + self._mlp(x, gen), k, v

    def step(self, x: Tensor, cache: KVCache, slot: int, bias: Tensor | None = None) -> Tensor:
        """``x`` ``(B, H)`` -> ``(B, H)`` (inference; functional calls, residuals added in place)."""
        ln1, ln2 = self.ln1, self.ln2
        a = self.attn.step(fn.layer_norm(x, ln1.normalized_shape, ln1.weight, ln1.bias, ln1.eps), cache, slot, bias)
        x = a.add_(x)  # x + attn(ln1(x)): `a` is a fresh tensor
        y = fn.layer_norm(x, ln2.normalized_shape, ln2.weight, ln2.bias, ln2.eps)
        m = fn.linear(fn.gelu(fn.linear(y, self.fc1.weight, self.fc1.bias)), self.fc2.weight, self.fc2.bias)
        return m.add_(x)


# ---------------------------------------------------------------------- recurrence
class RecurrentBlock(nn.Module):
    """Pre-LayerNorm residual LSTM/GRU layer (the paper's LSTM ablation)."""

    def __init__(self, cfg: NeuralFactorsConfig) -> None:
        super().__init__()
        H = cfg.hidden  # noqa: N806
        self.p = cfg.dropout
        self.ln = nn.LayerNorm(H)
        cls = nn.LSTM if cfg.sequence_model == "lstm" else nn.GRU
        self.rnn = cls(H, H, num_layers=1, batch_first=True)

    def forward(self, x: Tensor, gen: torch.Generator | None = None, state: object = None) -> tuple[Tensor, object]:
        """``x`` ``(B, S, H)`` -> ``(B, S, H)`` and the final recurrent state."""
        h, state = self.rnn(self.ln(x), state)
        return x + dropout(h, self.p, gen), state


# ---------------------------------------------------------------------- streaming state
@dataclass
class StreamState:
    """Per-sequence state of the sequence model for streaming one day at a time.

    ``caches``: one :class:`KVCache` per attention layer (``slot`` is the slot of the
    newest day), or ``states``: one recurrent state per recurrent layer. ``bias``: per
    attention layer, the relative bias of every slot (:meth:`SlidingWindowAttention.slot_bias_table`),
    derived from the weights once at :meth:`NeuralFactorsNet.prefill` (like the caches, a
    state is only valid for the weights it was built with).
    """

    caches: list[KVCache] | None = None
    slot: int = 0
    states: list[object] | None = None
    bias: list[Tensor] | None = None

    @staticmethod
    def concat(parts: list[StreamState]) -> StreamState:
        """The states of ``parts`` (same weights and slot) stacked along the batch, in order."""
        first = parts[0]
        if first.caches is not None:
            caches = [
                KVCache(torch.cat([p.caches[i].kt for p in parts]), torch.cat([p.caches[i].v for p in parts]))  # type: ignore[index]
                for i in range(len(first.caches))
            ]
            return StreamState(caches, first.slot, bias=first.bias)
        states: list[object] = []
        for i, s in enumerate(first.states or []):
            if isinstance(s, tuple):
                states.append(tuple(torch.cat([p.states[i][j] for p in parts], dim=1) for j in range(len(s))))  # type: ignore[index]
            else:
                states.append(torch.cat([p.states[i] for p in parts], dim=1))  # type: ignore[index]
        return StreamState(states=states)

    def select(self, idx: Tensor) -> StreamState:
        """The state of sequences ``idx`` (a copy)."""
        if self.caches is not None:
            return StreamState([KVCache(c.kt[idx].clone(), c.v[idx].clone()) for c in self.caches], self.slot, bias=self.bias)
        return StreamState(states=[_map_state(s, lambda t: t[:, idx].clone()) for s in self.states or []])

    def expand(self, n: int) -> StreamState:
        """Repeat a single-sequence-group state ``n`` times along the batch (copies)."""
        if self.caches is not None:
            return StreamState(
                [KVCache(c.kt.repeat(n, 1, 1, 1), c.v.repeat(n, 1, 1, 1)) for c in self.caches], self.slot, bias=self.bias
            )
        return StreamState(states=[_map_state(s, lambda t: t.repeat(1, n, 1)) for s in self.states or []])

    def assign(self, idx: Tensor, other: StreamState) -> None:
        """Overwrite sequences ``idx`` with ``other`` (realigning cache slots to ``self.slot``)."""
        if self.caches is not None:
            assert other.caches is not None
            shift = (self.slot - other.slot) % self.caches[0].v.shape[2]
            for c, o in zip(self.caches, other.caches, strict=True):
                c.kt[idx] = torch.roll(o.kt, shifts=shift, dims=3)
                c.v[idx] = torch.roll(o.v, shifts=shift, dims=2)
            return
        assert self.states is not None and other.states is not None
        for s, o in zip(self.states, other.states, strict=True):
            if isinstance(s, tuple):
                for a, b in zip(s, o, strict=True):  # type: ignore[arg-type]
                    a[:, idx] = b
            else:
                s[:, idx] = o  # type: ignore[index]


def _map_state(s: object, f: object) -> object:
    if isinstance(s, tuple):
        return tuple(f(t) for t in s)  # type: ignore[operator]
    return f(s)  # type: ignore[operator]


# ---------------------------------------------------------------------- the network
class NeuralFactorsNet(nn.Module):
    """Stock embedder plus the time-homogeneous factor prior.

    Parameters
    ----------
    cfg : NeuralFactorsConfig
    n_assets, n_sectors : int
        Vocabulary sizes of the static embeddings.
    """

    def __init__(self, cfg: NeuralFactorsConfig, n_assets: int, n_sectors: int) -> None:
        super().__init__()
        self.cfg = cfg
        H, F = cfg.hidden, cfg.n_factors  # noqa: N806
        self.inp = nn.Linear(cfg.n_inputs, H)  # one-layer MLP (with GELU) -> h1
        block = AttentionBlock if cfg.sequence_model == "attention" else RecurrentBlock
        self.blocks = nn.ModuleList([block(cfg) for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(H)
        # static embeddings (initialised in init_weights)
        self.asset_emb = nn.Parameter(torch.zeros(n_assets, cfg.asset_embedding_dim)) if cfg.asset_embedding_dim else None
        self.sector_emb = nn.Parameter(torch.zeros(n_sectors, cfg.sector_embedding_dim)) if cfg.sector_embedding_dim else None
        d_risk = cfg.asset_risk_embedding_dim
        self.risk_emb = nn.Parameter(torch.zeros(n_assets, d_risk)) if d_risk else None
        n_static = cfg.asset_embedding_dim + cfg.sector_embedding_dim + d_risk
        self.fc1 = nn.Linear(H + n_static, H)  # two-layer MLP -> h3
        self.fc2 = nn.Linear(H, H)
        self.out = nn.Linear(H, 3 + F)  # [alpha, sigma, nu, beta_1..F]
        # the prior's scale and degrees of freedom (time-homogeneous, mu_z = 0)
        self.prior_scale_raw = nn.Parameter(torch.zeros(F))
        self.prior_dof_raw = nn.Parameter(torch.zeros(F))

    @classmethod
    def build(
        cls, cfg: NeuralFactorsConfig, n_assets: int, n_sectors: int, generator: torch.Generator | None = None
    ) -> NeuralFactorsNet:
        """Construct without changing torch's global RNG.

        PyTorch's module constructors draw default initialisations from the global RNG; they
        run inside ``torch.random.fork_rng`` (the global state is restored afterwards) and
        are then overwritten from ``generator`` by :meth:`init_weights` (without a generator
        the weights are arbitrary, for loading a state dict).
        """
        with torch.random.fork_rng(devices=[]):
            net = cls(cfg, n_assets, n_sectors)
        if generator is not None:
            net.init_weights(generator)
        return net

    @torch.no_grad()
    def init_weights(self, gen: torch.Generator) -> None:
        """PyTorch's default initialisations, drawn from ``gen``, plus a sane starting model."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.in_features)
                m.weight.uniform_(-bound, bound, generator=gen)
                m.bias.uniform_(-bound, bound, generator=gen)
            elif isinstance(m, nn.LayerNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()
            elif isinstance(m, nn.LSTM | nn.GRU):
                bound = 1.0 / math.sqrt(m.hidden_size)
                for p in m.parameters():
                    p.uniform_(-bound, bound, generator=gen)
            elif isinstance(m, SlidingWindowAttention):
                slopes = torch.tensor([2.0 ** (-8.0 * (h + 1) / m.n_heads) for h in range(m.n_heads)])
                m.rel_bias.copy_(-slopes[:, None] * torch.arange(m.window, dtype=torch.float32)[None, :])
        # start near a factor model of standardised returns: small betas, alpha = 0,
        # sigma = softplus(0) ~ 0.69, nu ~ 8, prior scale 1 and dof ~ 8
        self.out.weight.mul_(0.3)
        self.out.bias.zero_()
        self.out.weight[0].zero_()
        self.out.bias[2] = 4.0
        for table in (self.asset_emb, self.sector_emb, self.risk_emb):
            if table is not None:
                table.normal_(0.0, 1.0, generator=gen)
        self.prior_scale_raw.fill_(math.log(math.e - 1.0))
        self.prior_dof_raw.fill_(4.0)

    # ---------------------------------------------------------------- priors
    def prior(self) -> tuple[Tensor, Tensor]:
        """Prior scale ``(F,)`` and degrees of freedom ``(F,)`` (``inf`` for a Gaussian prior)."""
        scale = fn.softplus(self.prior_scale_raw) + 1e-4
        if self.cfg.prior == "gaussian":
            return scale, torch.full_like(scale, math.inf)
        return scale, fn.softplus(self.prior_dof_raw) + self.cfg.nu_min

    # ---------------------------------------------------------------- sequence model
    def embed_inputs(self, x: Tensor) -> Tensor:
        """One-layer MLP on each day's inputs: ``(..., D)`` -> ``(..., H)``."""
        return fn.gelu(self.inp(x))

    def encode(self, x: Tensor, gen: torch.Generator | None = None) -> Tensor:
        """Run the sequence model over full sequences.

        Parameters
        ----------
        x : Tensor of shape (B, S, D)
            Inputs, oldest first.
        gen : torch.Generator, optional
            Dropout generator (training); ``None`` disables dropout.

        Returns
        -------
        Tensor of shape (B, S, H)
            ``h2`` at every position. Position ``s`` is exact (equal to the streaming state)
            once ``s >= receptive_field - 1``.
        """
        h = dropout(self.embed_inputs(x), self.cfg.dropout, gen)  # (B, S, H)
        for blk in self.blocks:
            h = blk(h, gen)[0]  # (B, S, H)
        return self.ln_f(h)

    def prefill(self, x: Tensor) -> tuple[Tensor, StreamState]:
        """Full pass over histories ``x`` ``(B, S, D)`` keeping the streaming state.

        ``S`` must be at least the receptive field. Returns the last ``h2`` ``(B, H)``.
        """
        R = self.cfg.receptive_field  # noqa: N806
        if x.shape[1] < R:
            raise ValueError(f"prefill needs at least {R} days of inputs, got {x.shape[1]}")
        if x.shape[0] > MAX_SEQUENCES:  # bound the attention's memory: passes of MAX_SEQUENCES
            parts = [self.prefill(x[a : a + MAX_SEQUENCES]) for a in range(0, x.shape[0], MAX_SEQUENCES)]
            return torch.cat([h for h, _ in parts]), StreamState.concat([s for _, s in parts])
        h = self.embed_inputs(x)  # (B, S, H)
        if self.cfg.sequence_model == "attention":
            caches = []
            for blk in self.blocks:
                h, k, v = blk(h)
                caches.append(blk.attn.make_cache(k, v))
            bias = [blk.attn.slot_bias_table() for blk in self.blocks]
            return self.ln_f(h[:, -1]), StreamState(caches=caches, slot=self.cfg.lookback - 1, bias=bias)
        states = []
        for blk in self.blocks:
            h, st = blk(h)
            states.append(st)
        return self.ln_f(h[:, -1]), StreamState(states=states)

    def step(self, x: Tensor, state: StreamState) -> Tensor:
        """Advance every sequence by one day. ``x`` ``(B, D)`` -> ``h2`` ``(B, H)``; updates ``state``.

        The same arithmetic as :meth:`encode` on the last ``receptive_field`` days (tested),
        written with functional calls: at simulation sizes (a few thousand sequences of one
        new token through a 64-wide network) per-op overhead matters.
        """
        h = fn.gelu(fn.linear(x, self.inp.weight, self.inp.bias))  # (B, H)
        if state.caches is not None:
            slot = state.slot = (state.slot + 1) % self.cfg.lookback
            if state.bias is None:
                state.bias = [blk.attn.slot_bias_table() for blk in self.blocks]
            for blk, cache, bias in zip(self.blocks, state.caches, state.bias, strict=True):
                h = blk.step(h, cache, slot, bias[slot])
            ln = self.ln_f
            return fn.layer_norm(h, ln.normalized_shape, ln.weight, ln.bias, ln.eps)
        assert state.states is not None
        hs = h.unsqueeze(1)  # (B, 1, H)
        for j, blk in enumerate(self.blocks):
            hs, state.states[j] = blk(hs, None, state.states[j])
        return self.ln_f(hs[:, 0])

    # ---------------------------------------------------------------- heads
    def head_weights(self, asset_ids: Tensor, sector_ids: Tensor) -> tuple[Tensor, Tensor]:
        """Inference form of the heads' first layer for assets ``ids`` ``(N,)``.

        Returns the ``h2`` block of ``fc1``'s weight ``(H, H)`` (contiguous) and the per-asset
        bias ``fc1.bias + W_e [sector emb || asset emb]`` ``(N, H)``, as :meth:`heads` computes
        them on every call; :meth:`heads_raw` takes them precomputed (see
        :class:`~factorgym.generators.neuralfactors.generator.NeuralFactorsSimulator`).
        """
        H = self.cfg.hidden  # noqa: N806
        bias = self._static_bias(asset_ids, sector_ids)
        if bias.dim() == 1:
            bias = bias.expand(len(asset_ids), H)
        return self.fc1.weight[:, :H].contiguous(), bias.contiguous()

    def _static_bias(self, asset_ids: Tensor, sector_ids: Tensor) -> Tensor:
        """``fc1.bias + W_e [asset emb || sector emb || risk emb]`` per asset: ``(N, H)``, or
        ``(H,)`` without static inputs. With a risk embedding: ``(N, 2H)``, the bias of the
        risk outputs beside the bias of alpha (the same with the risk embedding left out)."""
        H = self.cfg.hidden  # noqa: N806
        static = [t[ids] for t, ids in ((self.asset_emb, asset_ids), (self.sector_emb, sector_ids)) if t is not None]
        bias = self.fc1.bias
        if self.risk_emb is None:
            return bias + fn.linear(torch.cat(static, dim=-1), self.fc1.weight[:, H:]) if static else bias
        d_risk = self.risk_emb.shape[1]
        n_other = self.fc1.in_features - H - d_risk
        alpha_bias = bias + fn.linear(torch.cat(static, dim=-1), self.fc1.weight[:, H : H + n_other]) if static else bias
        alpha_bias = alpha_bias.expand(len(asset_ids), H)
        risk_bias = alpha_bias + fn.linear(self.risk_emb[asset_ids], self.fc1.weight[:, H + n_other :])
        return torch.cat([risk_bias, alpha_bias], dim=-1)  # (N, 2H)

    def heads_raw(self, h2: Tensor, w_h: Tensor, bias: Tensor) -> Tensor:
        """Raw head outputs ``[alpha~, sigma_raw, nu_raw, beta_1..F]`` ``(B, 3 + F)`` (inference).

        ``h2`` ``(B, H)``; ``w_h``, ``bias`` from :meth:`head_weights`, the bias repeated to
        ``(B, H)`` (rows in the order of ``h2``). The same arithmetic as :meth:`heads` without
        dropout, before the output transforms (softplus, floors).
        """
        H = w_h.shape[0]  # noqa: N806
        if bias.shape[-1] == H:
            h = fn.gelu(torch.addmm(bias, h2, w_h.t()))
            return fn.linear(fn.gelu(fn.linear(h, self.fc2.weight, self.fc2.bias)), self.out.weight, self.out.bias)
        pre = h2 @ w_h.t()  # risk embedding: risk outputs from the full bias, alpha without it
        o = fn.linear(fn.gelu(fn.linear(fn.gelu(pre + bias[:, :H]), self.fc2.weight, self.fc2.bias)), self.out.weight, self.out.bias)
        h3a = fn.gelu(fn.linear(fn.gelu(pre + bias[:, H:]), self.fc2.weight, self.fc2.bias))
        return torch.cat([fn.linear(h3a, self.out.weight[:1], self.out.bias[:1]), o[:, 1:]], dim=-1)

    def heads(
        self,
        h2: Tensor,
        asset_ids: Tensor,
        sector_ids: Tensor,
        gen: torch.Generator | None = None,
    ) -> FactorParams:
        """Static concat + two-layer MLP + output heads.

        Parameters
        ----------
        h2 : Tensor of shape (..., N, H)
        asset_ids, sector_ids : LongTensor of shape (N,)
        gen : dropout generator or None

        Returns
        -------
        FactorParams with ``alpha, sigma, nu`` ``(..., N)`` and ``beta`` ``(..., N, F)``.
        """
        H = h2.shape[-1]  # noqa: N806
        # fc1([h2 || e]) = W_h h2 + (W_e e + b): the static part is computed once per asset
        bias = self._static_bias(asset_ids, sector_ids)  # (N, H), (H,) or (N, 2H) with a risk embedding
        pre = fn.linear(h2, self.fc1.weight[:, :H])
        h = dropout(fn.gelu(pre + bias[..., :H]), self.cfg.dropout, gen)  # (..., N, H)
        h3 = fn.gelu(self.fc2(h))  # (..., N, H)
        o = self.out(h3)  # (..., N, 3 + F)
        if self.risk_emb is not None and self.cfg.learn_alpha:  # alpha from the pass without the risk embedding
            ha = dropout(fn.gelu(pre + bias[..., H:]), self.cfg.dropout, gen)
            o = torch.cat([fn.linear(fn.gelu(self.fc2(ha)), self.out.weight[:1], self.out.bias[:1]), o[..., 1:]], dim=-1)
        alpha = o[..., 0] if self.cfg.learn_alpha else torch.zeros_like(o[..., 0])
        sigma = fn.softplus(o[..., 1]) + SIGMA_FLOOR
        if self.cfg.decoder == "gaussian":
            nu = torch.full_like(sigma, math.inf)
        else:
            nu = fn.softplus(o[..., 2]) + self.cfg.nu_min
        return FactorParams(alpha=alpha, beta=o[..., 3:], sigma=sigma, nu=nu)
