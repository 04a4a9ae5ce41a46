"""One agent interface for stable-baselines3 models, optimizer agents and baselines.

Every agent exposes stable-baselines3's policy signature::

    action, state = agent.predict(obs, state=None, episode_start=None, deterministic=True)

so one evaluation loop runs a trained SB3 model and an optimizer alike. ``obs`` is the
environment's observation dict (float64):

``"returns"``  ``(window, N)`` last daily simple returns, oldest first, ending at day ``t``;
``"weights"``  ``(N + 1,)`` current *drifted* weights, risky assets then cash last;
``"mask"``     (only for panels with missing cells) ``(window, N)``, 1.0 where the asset
               trades that day, 0.0 where it is absent (not yet listed, delisted, halted).

Absent cells are read as missing (NaN) returns, never as the environment's placeholder
``0.0``: :func:`parse_observation` applies the mask, so a dead stock cannot look riskless to
an estimator, and the agents keep assets absent on the decision day (the last row) at zero
weight.

A vectorised environment adds a leading batch axis to both (``(n_envs, window, N)``,
``(n_envs, N + 1)``); ``predict`` then returns ``(n_envs, N)`` actions. The agents in this
package act in the environment's ``"weights"`` action mode: the action is the vector of
target risky weights ``(N,)`` (cash is ``1 - sum(w)``).

Randomness: an agent that draws (e.g. generator scenarios) owns a seeded
``numpy.random.Generator`` per environment index, ``default_rng(SeedSequence(seed,
spawn_key=(i,)))``, so environment ``i`` of a batch sees the same stream whatever the batch
size, and the same seed reproduces the same actions. No global random state is touched.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from sklearn.base import BaseEstimator

from factorgym.errors import DataValidationError

__all__ = ["Policy", "Agent", "parse_observation"]


@runtime_checkable
class Policy(Protocol):
    """Anything with stable-baselines3's ``predict`` (SB3 models satisfy it structurally)."""

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Action(s) for ``observation`` and the next recurrent state."""
        ...


def parse_observation(observation: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """Split an observation dict into returns, drifted weights and a batch flag.

    Parameters
    ----------
    observation : mapping
        ``{"returns": (W, N) or (B, W, N), "weights": (N + 1,) or (B, N + 1)}``.

    Returns
    -------
    returns : ndarray of shape (B, W, N)
        With NaN where the observation's ``"mask"`` (if any) is 0.
    weights : ndarray of shape (B, N + 1)
    batched : bool
        Whether the observation had a batch axis.

    Raises
    ------
    DataValidationError
        When keys are missing or shapes disagree.
    """
    if not isinstance(observation, Mapping) or "returns" not in observation or "weights" not in observation:
        got = list(observation) if isinstance(observation, Mapping) else type(observation).__name__
        raise DataValidationError(f"expected an observation dict with 'returns' and 'weights', got {got}")
    r = np.asarray(observation["returns"], dtype=np.float64)
    w = np.asarray(observation["weights"], dtype=np.float64)
    batched = w.ndim == 2
    if batched:
        ok = r.ndim == 3 and r.shape[0] == w.shape[0] and w.shape[1] == r.shape[2] + 1
    else:
        ok = r.ndim == 2 and w.ndim == 1 and w.shape[0] == r.shape[1] + 1
    if not ok:
        raise DataValidationError(
            f"observation shapes disagree: returns {r.shape}, weights {w.shape}; expected "
            "(window, N) and (N + 1,), or (B, window, N) and (B, N + 1)"
        )
    if not np.isfinite(w).all():
        raise DataValidationError("observation weights contain NaN or inf")
    if "mask" in observation:
        m = np.asarray(observation["mask"], dtype=np.float64)
        if m.shape != r.shape:
            raise DataValidationError(f"observation 'mask' has shape {m.shape}, expected the returns' shape {r.shape}")
        r = np.where(m > 0.0, r, np.nan)
    if not batched:
        r, w = r[None], w[None]
    return r, w, batched


class Agent(BaseEstimator, ABC):
    """Base class of the optimizer agents and baselines.

    Subclasses implement :meth:`act` for one environment; :meth:`predict` adds the SB3
    signature and batching. Estimator style: ``__init__`` stores its parameters unchanged
    (``get_params``, ``set_params`` and ``sklearn.base.clone`` work); state learned while
    acting ends in ``_``.
    """

    #: The environment action mode the actions are meant for.
    action_mode: ClassVar[str] = "weights"

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Target risky weights for an observation (stable-baselines3 signature).

        Parameters
        ----------
        observation : dict
            ``"returns"`` ``(W, N)`` and ``"weights"`` ``(N + 1,)``, or batched with a
            leading ``n_envs`` axis.
        state : any
            Passed through unchanged (these agents are not recurrent).
        episode_start : any
            Ignored (accepted for the SB3 signature).
        deterministic : bool
            Ignored: an agent's randomness (scenario draws) comes from its seeded streams.

        Returns
        -------
        action : ndarray of shape (N,) or (n_envs, N)
        state : any
            ``state`` unchanged.
        """
        returns, weights, batched = parse_observation(observation)
        if returns.shape[0] > 1:
            self._prefetch(returns)
        actions = np.stack([self.act(returns[i], weights[i], env_index=i) for i in range(returns.shape[0])])
        return (actions if batched else actions[0]), state

    def validate(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Raise :class:`~factorgym.errors.DataValidationError` on a bad parameter (agents with
        parameters override it)."""

    def _prefetch(self, returns: np.ndarray) -> None:
        """Hook called with the whole batch ``(n_envs, W, N)`` before :meth:`act` runs per
        environment (optimizers batch their generator's predictions here)."""

    @abstractmethod
    def act(self, returns: np.ndarray, weights: np.ndarray, env_index: int = 0) -> np.ndarray:
        """Target risky weights ``(N,)`` for one environment.

        Parameters
        ----------
        returns : ndarray of shape (W, N)
            Observed simple returns, oldest first, ending at day ``t``.
        weights : ndarray of shape (N + 1,)
            Current drifted weights, cash last.
        env_index : int
            Index of the environment in a batch (selects the random stream).
        """

    def reset(self, seed: int | None = None) -> None:
        """Start afresh: restart random streams (from ``seed`` when given) and zero counters."""
        self._streams: dict[int, np.random.Generator] = {}
        if seed is not None:
            self._seed_override: int | None = int(seed)

    # ------------------------------------------------------------------ random streams
    def _rng(self, env_index: int) -> np.random.Generator:
        """The random stream of environment ``env_index`` (created on first use)."""
        streams: dict[int, np.random.Generator] | None = getattr(self, "_streams", None)
        if streams is None:
            streams = self._streams = {}
        rng = streams.get(env_index)
        if rng is None:
            entropy = getattr(self, "_seed_override", None)
            if entropy is None:
                entropy = getattr(self, "seed", None)
            if entropy is None:
                # fixed per agent object once drawn, so each environment keeps one stream
                entropy = getattr(self, "_entropy", None)
                if entropy is None:
                    entropy = self._entropy = np.random.SeedSequence().entropy
            rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(int(env_index),)))
            streams[env_index] = rng
        return rng
