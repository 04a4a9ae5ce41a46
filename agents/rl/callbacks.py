"""stable-baselines3 callbacks of RL training: periodic validation on real held-out
episodes with model selection (:class:`ValidationCallback`) and the progress bar
(:class:`TrainingProgress`)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from factorgym.agents.rl.diagnose import decompose, reference_run
from factorgym.agents.rl.evaluate import score_run
from factorgym.agents.rl.normalize import BEST_NORMALIZER_NAME, NormalizedPolicy, ObsNormalizer
from factorgym.agents.rl.persistence import BEST_NAME, EVALS_NAME, save_model
from factorgym.artifacts import atomic_write_text
from factorgym.envs.rollout import rollout
from factorgym.envs.vec_env import VecPortfolioEnv
from factorgym.errors import FactorGymError
from factorgym.jsonable import jsonable
from factorgym.progress import Progress

if TYPE_CHECKING:
    pass

__all__ = ["TrainingProgress", "ValidationCallback"]


class ValidationCallback(BaseCallback):
    """SB3 callback: periodic deterministic evaluation on real validation episodes.

    At the first rollout boundary after every ``eval_freq`` environment steps, and at the
    end of training, the policy is run over one episode per start in ``starts`` of ``env`` (a :class:`VecPortfolioEnv` over the
    validation market). It records ``eval/mean_log_wealth``, ``eval/std_log_wealth`` and
    ``eval/mean_sharpe`` in SB3's logger (TensorBoard), appends the evaluation to
    ``out_dir/evaluations.json`` and saves ``out_dir/best_model.zip`` when the mean
    log-wealth improves. Evaluating at rollout boundaries means the evaluated parameters
    are exactly those trained on the recorded number of steps (the last evaluation is of the
    final model). Evaluation draws no random numbers, so it does not change training.
    It also records ``market/episode_log_wealth``, the log-wealth of finished *training*
    episodes.

    Each evaluation also holds ``diagnosis``: the decomposition of the validation return
    against ``1/N`` on the same episodes into allocation, costs and concentration
    (:func:`~factorgym.agents.rl.diagnose.decompose`). When the training env is SB3's
    ``VecNormalize``, the policy is evaluated on observations normalised with the statistics
    of that moment (frozen), and ``best_normalizer.json`` is saved with ``best_model.zip``.

    Parameters
    ----------
    env : VecPortfolioEnv
        One path per validation episode.
    starts : sequence of int
        Start rows, one per path.
    eval_freq : int
        Environment steps between evaluations (0: only the training-market logging).
    out_dir : path
    seed : int
        Environment seed (irrelevant on fixed historical starts; recorded).
    log : callable, optional
        Called with one line per evaluation (progress output).
    """

    def __init__(
        self,
        env: VecPortfolioEnv,
        starts: Sequence[int],
        eval_freq: int,
        out_dir: str | Path,
        seed: int = 0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(verbose=0)
        if len(starts) != env.num_envs:
            raise FactorGymError(f"{len(starts)} validation starts for {env.num_envs} paths")
        self.eval_env = env
        self.starts = [int(s) for s in starts]
        self.eval_freq = int(eval_freq)
        self.out_dir = Path(out_dir)
        self.seed = int(seed)
        self._log = log
        self.evaluations: list[dict[str, Any]] = []
        self.best_mean_log_wealth = -math.inf
        self.best_timestep: int | None = None
        self.best_sha256: str | None = None
        self.eval_seconds = 0.0
        self._next_eval = self.eval_freq
        self._last_eval_step = -1
        self._reference: Any = None
        self.best_normalizer_sha256: str | None = None

    def _on_step(self) -> bool:
        dones = self.locals.get("dones")
        infos = self.locals.get("infos")
        if dones is not None and infos is not None and np.any(dones):
            for d, info in zip(dones, infos, strict=True):
                if d:
                    self.logger.record_mean("market/episode_log_wealth", math.log(max(info["wealth"], 1e-12)))
        return True

    def _on_rollout_start(self) -> None:
        # Between rollouts the parameters are those trained on every step collected so far
        # (on ``_on_step`` an on-policy model has not yet been updated on its current rollout).
        if self.eval_freq > 0 and self.num_timesteps >= self._next_eval:
            self.evaluate()
            while self._next_eval <= self.num_timesteps:
                self._next_eval += self.eval_freq

    def _on_training_end(self) -> None:
        if self.eval_freq > 0 and self._last_eval_step != self.num_timesteps:
            self.evaluate()

    def evaluate(self) -> dict[str, Any]:
        """Evaluate now; returns the record appended to :attr:`evaluations`."""
        t0 = time.perf_counter()
        norm = self.normalizer()
        policy = self.model if norm is None else NormalizedPolicy(self.model, norm)
        run = rollout(policy, self.eval_env, options=[{"start": s} for s in self.starts], seed=self.seed,
                      deterministic=True, record_weights=True, label="validation")  # fmt: skip
        res = score_run(run, self.eval_env)
        s = res.summary()
        rec = {
            "timesteps": int(self.num_timesteps),
            "mean_log_wealth": s["mean_log_wealth"],
            "std_log_wealth": s["std_log_wealth"],
            "mean_sharpe": s["mean_sharpe"],
            "log_wealth": res.log_wealth.tolist(),
            "sharpe": res.sharpe.tolist(),
            "start_dates": [str(d) for d in res.episodes["start_date"]],
            "diagnosis": self._diagnosis(run),
        }
        self.evaluations.append(rec)
        self._last_eval_step = self.num_timesteps
        self.logger.record("eval/mean_log_wealth", s["mean_log_wealth"])
        self.logger.record("eval/std_log_wealth", s["std_log_wealth"])
        self.logger.record("eval/mean_sharpe", s["mean_sharpe"])
        for k in ("excess_log_wealth", "allocation", "costs", "effective_n"):
            if rec["diagnosis"] is not None:
                self.logger.record(f"diagnosis/{k}", rec["diagnosis"][k])
        improved = s["mean_log_wealth"] > self.best_mean_log_wealth
        if improved:
            self.best_mean_log_wealth = s["mean_log_wealth"]
            self.best_timestep = int(self.num_timesteps)
            self.best_sha256 = save_model(self.model, self.out_dir / BEST_NAME)
            if norm is not None:
                text = json.dumps(jsonable(norm.to_dict()))
                atomic_write_text(self.out_dir / BEST_NORMALIZER_NAME, text)
                self.best_normalizer_sha256 = _sha(text)
        self.logger.record("eval/best_mean_log_wealth", self.best_mean_log_wealth)
        self.logger.dump(self.num_timesteps)
        atomic_write_text(self.out_dir / EVALS_NAME, json.dumps(jsonable(self.evaluations), indent=1))
        self.eval_seconds += time.perf_counter() - t0
        if self._log is not None:
            self._log(
                f"step {self.num_timesteps:>9,}  validation: mean log-wealth {s['mean_log_wealth']:+.4f}, "
                f"mean Sharpe {s['mean_sharpe']:+.2f}{'  (best)' if improved else ''}"
            )
        return rec


    def _diagnosis(self, run: Any) -> dict[str, float] | None:
        """The decomposition against 1/N on the same episodes (``None`` where 1/N cannot run
        in this environment, e.g. under a turnover cap it would break, or episodes differ)."""
        if self._reference is None:
            try:
                self._reference = reference_run(self.eval_env, self.starts, self.seed)
            except FactorGymError:
                self._reference = False
        if self._reference is False:
            return None
        try:
            return decompose(run, self._reference)
        except FactorGymError:
            return None

    def normalizer(self) -> ObsNormalizer | None:
        """The training env's current observation statistics (``None`` without ``VecNormalize``)."""
        from stable_baselines3.common.vec_env import VecNormalize

        env = getattr(self, "training_env", None)
        return ObsNormalizer.from_vecnormalize(env) if isinstance(env, VecNormalize) and env.norm_obs else None


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


class TrainingProgress(BaseCallback):
    """SB3 callback: advances a :class:`factorgym.progress.Progress` bar to the trained steps.

    SB3's own bar needs tqdm, which factorgym does not depend on. The caller opens and
    closes ``bar`` (a context manager) around ``model.learn``.
    """

    def __init__(self, bar: Progress) -> None:
        super().__init__(verbose=0)
        self.bar = bar

    def _on_step(self) -> bool:
        self.bar.update(min(self.num_timesteps, self.bar.total))
        return True

    def _on_training_end(self) -> None:
        self.bar.update(min(self.num_timesteps, self.bar.total))
