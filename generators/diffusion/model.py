"""The factor-conditioned diffusion transformer (network only; the process is in ``diffusion.py``).

One token per asset. Token ``i`` carries asset ``i``'s noisy standardised next-day return;
its conditioning vector is ``c_i = MLP(x_i) + e(n)`` where ``x_i`` is the asset's own factor
vector and ``e(n)`` the diffusion-step embedding. Every block modulates **each token with its
own** adaLN-Zero shift / scale / gate computed from ``c_i`` (DiT, Peebles & Xie 2023, with the
single global condition replaced by token-wise ones, as Gao, He & He 2025). Multi-head self
attention across the tokens models cross-asset dependence.

There is no positional encoding over assets, so the network is permutation-equivariant:
permuting the assets (their returns, factors and mask) permutes the output. Absent assets
(``mask == False``) are removed from attention as keys, and their inputs are zeroed, so they
cannot influence the present ones.

Shapes: ``B`` cross-sections (days), ``S`` scenarios per cross-section (they share the
conditioning, so the modulations are computed once per token, not per scenario), ``N``
assets (tokens), ``K`` factors, ``D`` width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812 - conventional
from torch import nn

from factorgym.generators.diffusion.config import DiTConfig

__all__ = ["FactorDiT", "AdaLNZeroBlock", "FinalLayer", "TimestepEmbedder", "modulate"]


def modulate(h: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Token-wise affine modulation ``h * (1 + scale) + shift``.

    ``h`` ``(B, S, N, D)``; ``shift`` and ``scale`` ``(B, 1, N, D)``: one per token, shared by
    the ``S`` scenarios of a cross-section.
    """
    return h * (1.0 + scale) + shift


class TimestepEmbedder(nn.Module):
    """Diffusion step ``n`` -> vector: sinusoidal features followed by a 2-layer MLP."""

    def __init__(self, d_model: int, freq_dim: int, max_period: float = 10_000.0) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        half = freq_dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(freq_dim, d_model), nn.SiLU(), nn.Linear(d_model, d_model))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` ``(B,)`` integer steps -> ``(B, D)``."""
        args = t.to(torch.float32)[:, None] * self.freqs[None, :]  # (B, freq_dim/2)
        feats = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, freq_dim)
        return self.mlp(feats)  # (B, D)


class MaskedSelfAttention(nn.Module):
    """Multi-head self-attention over assets; absent assets are never attended to."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, h: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """``h`` ``(B, S, N, D)``, ``key_mask`` ``(B, N)`` bool (True = attendable) -> ``(B, S, N, D)``."""
        B, S, N, D = h.shape
        H = self.n_heads
        q, k, v = self.qkv(h).reshape(B * S, N, 3, H, D // H).permute(2, 0, 3, 1, 4)  # 3 x (BS, H, N, D/H)
        attn_mask = key_mask[:, None, None, None, :].expand(B, S, 1, 1, N).reshape(B * S, 1, 1, N)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (BS, H, N, D/H)
        y = y.transpose(1, 2).reshape(B, S, N, D)  # (B, S, N, D)
        return self.proj(y)


class AdaLNZeroBlock(nn.Module):
    """Transformer block with token-wise adaLN-Zero conditioning.

    ``h <- h + gate_a * Attn(modulate(LN(h), shift_a, scale_a))`` then the same with the
    MLP; the six modulation tensors come from a zero-initialised linear map of each token's
    own conditioning vector, so the block is the identity at initialisation.
    """

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(round(d_model * mlp_ratio))
        self.norm1 = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.attn = MaskedSelfAttention(d_model, n_heads)
        self.norm2 = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d_model, 6 * d_model))

    def forward(self, h: torch.Tensor, c: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """One block.

        ``h`` ``(B, S, N, D)`` is the token stream of ``S`` scenarios that share the
        conditioning ``c`` ``(B, 1, N, D)`` (so the modulations are computed once per
        cross-section, not per scenario); ``key_mask`` ``(B, N)``. Returns ``(B, S, N, D)``.
        """
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.ada(c).chunk(6, dim=-1)  # 6 x (B, 1, N, D)
        h = h + gate_a * self.attn(modulate(self.norm1(h), shift_a, scale_a), key_mask)  # (B, S, N, D)
        h = h + gate_m * self.mlp(modulate(self.norm2(h), shift_m, scale_m))  # (B, S, N, D)
        return h


class FinalLayer(nn.Module):
    """Token-wise adaLN (zero-initialised) followed by a zero-initialised linear read-out."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d_model, 2 * d_model))
        self.linear = nn.Linear(d_model, 1)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``h`` ``(B, S, N, D)``, ``c`` ``(B, 1, N, D)`` -> ``(B, S, N)``."""
        shift, scale = self.ada(c).chunk(2, dim=-1)  # 2 x (B, 1, N, D)
        return self.linear(modulate(self.norm(h), shift, scale)).squeeze(-1)  # (B, S, N)


class FactorDiT(nn.Module):
    """Noise predictor ``eps(y_n, n, x, mask)`` for a cross-section of assets.

    Parameters
    ----------
    config : DiTConfig
    generator : torch.Generator, optional
        Source of the initial weights. Construction happens under
        :func:`torch.random.fork_rng`, so the global torch RNG is left exactly as it was.
    """

    def __init__(self, config: DiTConfig, generator: torch.Generator | None = None) -> None:
        with torch.random.fork_rng(devices=[]):
            super().__init__()
            self.config = config
            d = config.d_model
            # a scalar per token: a 2-layer MLP gives LayerNorm a vector whose channel ratios
            # encode the value (a rank-1 linear embedding would be normalised to +-1)
            self.y_embed = nn.Sequential(nn.Linear(1, d), nn.SiLU(), nn.Linear(d, d))
            self.x_embed = nn.Sequential(nn.Linear(config.n_factors, d), nn.SiLU(), nn.Linear(d, d))
            self.t_embed = TimestepEmbedder(d, config.t_freq_dim)
            self.blocks = nn.ModuleList(
                [AdaLNZeroBlock(d, config.n_heads, config.mlp_ratio) for _ in range(config.n_layers)]
            )
            self.final = FinalLayer(d)
        self.initialize_weights(generator)

    @torch.no_grad()
    def initialize_weights(self, generator: torch.Generator | None = None) -> None:
        """DiT initialisation from an explicit generator (default: a fixed seed 0).

        Xavier-uniform linears with zero biases; N(0, 0.02) step-embedding MLP; every adaLN
        modulation and the read-out set to zero (adaLN-Zero).
        """
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, generator=generator)
                nn.init.zeros_(m.bias)
        for lin in (self.t_embed.mlp[0], self.t_embed.mlp[2]):
            nn.init.normal_(lin.weight, std=0.02, generator=generator)
        for block in self.blocks:
            nn.init.zeros_(block.ada[-1].weight)
            nn.init.zeros_(block.ada[-1].bias)
        nn.init.zeros_(self.final.ada[-1].weight)
        nn.init.zeros_(self.final.ada[-1].bias)
        nn.init.zeros_(self.final.linear.weight)
        nn.init.zeros_(self.final.linear.bias)

    @property
    def n_params(self) -> int:
        """Number of parameters."""
        return sum(p.numel() for p in self.parameters())

    def embed_factors(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Factor part of the conditioning: ``x`` ``(B, N, K)`` -> ``(B, N, D)``.

        Absent tokens' factors (possibly NaN) are zeroed first. Samplers compute this once
        and reuse it at every diffusion step.
        """
        x = torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype))  # (B, N, K)
        return self.x_embed(x)  # (B, N, D)

    def denoise(
        self, y: torch.Tensor, t: torch.Tensor, fx: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Noise prediction for ``S`` scenarios per cross-section (the sampling path).

        Parameters
        ----------
        y : Tensor of shape (B, S, N)
            Noisy standardised returns; the ``S`` scenarios of a row share its conditioning.
        t : Tensor of shape (B,), int64
        fx : Tensor of shape (B, N, D)
            :meth:`embed_factors` output.
        mask : Tensor of shape (B, N), bool

        Returns
        -------
        Tensor of shape (B, S, N)
        """
        y = torch.where(mask[:, None, :], y, torch.zeros((), dtype=y.dtype))  # (B, S, N)
        # a cross-section with no present asset: let its (discarded) queries see every key
        # instead of none, which would produce NaN
        key_mask = mask | ~mask.any(dim=-1, keepdim=True)  # (B, N)
        c = (fx + self.t_embed(t)[:, None, :])[:, None]  # (B, 1, N, D) token-wise condition
        h = self.y_embed(y[..., None])  # (B, S, N, D)
        for block in self.blocks:
            h = block(h, c, key_mask)  # (B, S, N, D)
        return self.final(h, c)  # (B, S, N)

    def forward(
        self, y: torch.Tensor, t: torch.Tensor, x: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Predicted noise (the training path: one scenario per cross-section).

        Parameters
        ----------
        y : Tensor of shape (B, N)
            Noisy standardised returns at diffusion step ``t``.
        t : Tensor of shape (B,), int64
            Diffusion step of each cross-section.
        x : Tensor of shape (B, N, K)
            Each asset's factor vector.
        mask : Tensor of shape (B, N), bool
            True where the asset is present.

        Returns
        -------
        Tensor of shape (B, N)
            The noise prediction (values at absent assets are meaningless: ignore them).
        """
        return self.denoise(y[:, None, :], t, self.embed_factors(x, mask), mask)[:, 0]  # (B, N)
