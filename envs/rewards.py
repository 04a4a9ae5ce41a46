"""Reward functions, batched over paths and stateful per path.

Every reward maps the day's net simple return ``R`` (after costs, see
:mod:`factorgym.envs.accounting`) and the new wealth to a per-path reward. Stateful rewards
(running moments, peaks, VaR estimates) keep one state entry per path, reset at the start of
each episode of that path.

``"log"`` (default)
    ``log(1 + R)``: an episode's rewards sum to ``log(W_T / W_0)``.
``"differential_sharpe"`` (alias ``"dsr"``)
    Moody & Saffell's differential Sharpe ratio ``D_t`` of exponential moving moments ``A``
    (mean) and ``B`` (second moment) with rate ``eta``, warm-started at ``A_0 = init_mean``,
    ``B_0 = init_mean**2 + init_std**2`` so that the first steps are well defined.
``"mean_variance"``
    ``R - risk_aversion / 2 * (R - m)**2`` with ``m`` the running mean of the episode's
    earlier net returns (``init_mean`` before any): sums to about
    ``T * (mean - risk_aversion / 2 * variance)``.
``"drawdown"``
    ``log(1 + R) - penalty * DD_t`` with ``DD_t = 1 - W_t / max_{s <= t} W_s``.
``"cvar"``
    ``log(1 + R) - penalty * (v + max(L - v, 0) / (1 - alpha))`` with loss ``L = -R``: the
    per-step Rockafellar-Uryasev term, whose episode average estimates ``CVaR_alpha`` of the
    daily loss; ``v`` tracks ``VaR_alpha`` online (``v += eta * (alpha - 1{L <= v})``),
    warm-started at ``init_var``.

``EnvConfig.turnover_penalty`` (default 0) is subtracted from any of these by the engine:
``reward - turnover_penalty * sum|w - w_d|``, a shaping term that leaves the accounting alone;
``EnvConfig.reward_benchmark="equal_weight"`` subtracts 1/N's log growth of the same day, a
term no action changes (a control variate for the policy gradient).

On a day that wipes the account out (``1 + R <= 0``) ``log(1 + R)`` is replaced by
``log(1e-12)`` (about -27.6), the only clamp; the environment terminates that episode.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from factorgym.errors import FactorGymError

__all__ = [
    "REWARDS",
    "CVaRPenalty",
    "DifferentialSharpe",
    "DrawdownPenalty",
    "LogReturn",
    "MeanVariance",
    "Reward",
    "log_growth",
    "make_reward",
]

#: Growth factor used in place of ``1 + R`` when the account is wiped out.
MIN_GROWTH = 1e-12


def log_growth(net_return: np.ndarray) -> np.ndarray:
    """``log(1 + R)`` with ``1 + R`` floored at :data:`MIN_GROWTH` (ruinous days only)."""
    return np.log(np.maximum(1.0 + net_return, MIN_GROWTH))


class Reward(ABC):
    """A per-path reward. Subclasses keep their state in arrays of shape ``(P,)``.

    The environment deep-copies the instance it is given and calls :meth:`bind` once, then
    :meth:`reset` for the paths that start an episode and :meth:`__call__` every step.
    """

    #: Registry name (``make_reward``).
    name: ClassVar[str] = "base"

    def bind(self, n_paths: int) -> None:
        """Allocate state for ``n_paths`` paths."""
        self.n_paths = int(n_paths)

    def reset(self, idx: np.ndarray, wealth: np.ndarray) -> None:  # noqa: B027 - stateless default
        """Start episodes of paths ``idx`` (``(k,)`` ints) at initial ``wealth`` ``(k,)``."""

    @abstractmethod
    def __call__(self, net_return: np.ndarray, wealth: np.ndarray) -> np.ndarray:
        """Rewards ``(P,)`` of the day's net returns ``(P,)`` and new wealth ``(P,)``."""


class LogReturn(Reward):
    """``log(1 + R)``: the log growth of wealth."""

    name = "log"

    def __call__(self, net_return: np.ndarray, wealth: np.ndarray) -> np.ndarray:
        return log_growth(net_return)


class DifferentialSharpe(Reward):
    """Differential Sharpe ratio (Moody & Saffell, 1998, 2001).

    With ``dA = R - A``, ``dB = R**2 - B``::

        D = (B * dA - A * dB / 2) / (B - A**2) ** 1.5,    A += eta * dA,   B += eta * dB

    (``A``, ``B`` before the update in ``D``). ``B - A**2`` stays positive under the update
    but is floored at ``var_floor`` against underflow after very long runs of equal returns.

    Parameters
    ----------
    eta : float
        Adaptation rate (about 1 / effective window in days).
    init_mean, init_std : float
        Warm start of the moving mean and standard deviation of daily net returns.
    var_floor : float
    """

    name = "differential_sharpe"

    def __init__(self, eta: float = 0.01, init_mean: float = 0.0, init_std: float = 0.01, var_floor: float = 1e-12) -> None:
        if not 0 < eta <= 1:
            raise FactorGymError(f"differential Sharpe eta must be in (0, 1], got {eta}")
        if not init_std > 0:
            raise FactorGymError(f"differential Sharpe init_std must be positive, got {init_std}")
        self.eta, self.init_mean, self.init_std, self.var_floor = float(eta), float(init_mean), float(init_std), float(var_floor)

    def bind(self, n_paths: int) -> None:
        super().bind(n_paths)
        self.A = np.full(n_paths, self.init_mean)
        self.B = np.full(n_paths, self.init_mean**2 + self.init_std**2)

    def reset(self, idx: np.ndarray, wealth: np.ndarray) -> None:
        self.A[idx] = self.init_mean
        self.B[idx] = self.init_mean**2 + self.init_std**2

    def __call__(self, net_return: np.ndarray, wealth: np.ndarray) -> np.ndarray:
        A, B = self.A, self.B
        dA = net_return - A
        dB = net_return * net_return - B
        var = np.maximum(B - A * A, self.var_floor)
        d = (B * dA - 0.5 * A * dB) / (var * np.sqrt(var))
        self.A = A + self.eta * dA
        self.B = B + self.eta * dB
        return d


class MeanVariance(Reward):
    """``R - risk_aversion / 2 * (R - m)**2``, ``m`` the running mean of earlier net returns."""

    name = "mean_variance"

    def __init__(self, risk_aversion: float = 10.0, init_mean: float = 0.0) -> None:
        if not risk_aversion >= 0:
            raise FactorGymError(f"risk_aversion must be non-negative, got {risk_aversion}")
        self.risk_aversion, self.init_mean = float(risk_aversion), float(init_mean)

    def bind(self, n_paths: int) -> None:
        super().bind(n_paths)
        self.mean = np.full(n_paths, self.init_mean)
        self.count = np.zeros(n_paths)

    def reset(self, idx: np.ndarray, wealth: np.ndarray) -> None:
        self.mean[idx] = self.init_mean
        self.count[idx] = 0.0

    def __call__(self, net_return: np.ndarray, wealth: np.ndarray) -> np.ndarray:
        dev = net_return - self.mean
        out = net_return - 0.5 * self.risk_aversion * dev * dev
        self.count = self.count + 1.0
        self.mean = self.mean + dev / self.count
        return out


class DrawdownPenalty(Reward):
    """``log(1 + R) - penalty * (1 - W_t / peak_t)``."""

    name = "drawdown"

    def __init__(self, penalty: float = 1.0) -> None:
        if not penalty >= 0:
            raise FactorGymError(f"drawdown penalty must be non-negative, got {penalty}")
        self.penalty = float(penalty)

    def bind(self, n_paths: int) -> None:
        super().bind(n_paths)
        self.peak = np.ones(n_paths)

    def reset(self, idx: np.ndarray, wealth: np.ndarray) -> None:
        self.peak[idx] = wealth

    def __call__(self, net_return: np.ndarray, wealth: np.ndarray) -> np.ndarray:
        self.peak = np.maximum(self.peak, wealth)
        dd = 1.0 - wealth / self.peak
        return log_growth(net_return) - self.penalty * dd


class CVaRPenalty(Reward):
    """``log(1 + R) - penalty * (v + max(-R - v, 0) / (1 - alpha))`` with online VaR ``v``."""

    name = "cvar"

    def __init__(self, penalty: float = 1.0, alpha: float = 0.95, eta: float = 0.001, init_var: float = 0.02) -> None:
        if not 0 < alpha < 1:
            raise FactorGymError(f"CVaR level alpha must be in (0, 1), got {alpha}")
        if not penalty >= 0 or not eta > 0:
            raise FactorGymError("CVaR penalty must be non-negative and eta positive")
        self.penalty, self.alpha, self.eta, self.init_var = float(penalty), float(alpha), float(eta), float(init_var)

    def bind(self, n_paths: int) -> None:
        super().bind(n_paths)
        self.var = np.full(n_paths, self.init_var)

    def reset(self, idx: np.ndarray, wealth: np.ndarray) -> None:
        self.var[idx] = self.init_var

    def __call__(self, net_return: np.ndarray, wealth: np.ndarray) -> np.ndarray:
        loss = -net_return
        v = self.var
        ru = v + np.maximum(loss - v, 0.0) / (1.0 - self.alpha)
        self.var = v + self.eta * (self.alpha - (loss <= v))
        return log_growth(net_return) - self.penalty * ru


#: Reward classes by name (``"dsr"`` is an alias of ``"differential_sharpe"``).
REWARDS: dict[str, type[Reward]] = {
    "log": LogReturn,
    "differential_sharpe": DifferentialSharpe,
    "dsr": DifferentialSharpe,
    "mean_variance": MeanVariance,
    "drawdown": DrawdownPenalty,
    "cvar": CVaRPenalty,
}


def make_reward(spec: str | Reward, n_paths: int, **kwargs: Any) -> Reward:
    """A bound reward for ``n_paths`` paths from a name (+ constructor kwargs) or an instance.

    An instance is deep-copied, so one template can configure many environments.
    """
    if isinstance(spec, Reward):
        if kwargs:
            raise FactorGymError("reward_kwargs are only accepted with a reward name")
        reward = copy.deepcopy(spec)
    elif isinstance(spec, str):
        try:
            cls = REWARDS[spec]
        except KeyError:
            raise FactorGymError(f"unknown reward {spec!r}; expected one of {', '.join(REWARDS)}") from None
        try:
            reward = cls(**kwargs)
        except TypeError as exc:
            raise FactorGymError(f"bad reward_kwargs for {spec!r}: {exc}") from None
    else:
        raise FactorGymError(f"reward must be a name or a Reward instance, got {type(spec).__name__}")
    reward.bind(n_paths)
    return reward
