"""Scenario sets replayed to agents through an environment (:class:`ScenarioReplay`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from factorgym.errors import DataValidationError
from factorgym.generators.stress.io import ScenarioSet

__all__ = ["ScenarioReplay"]


class ScenarioReplay:
    """A scenario set dressed as a generator, so an environment can replay it to an agent.

    ``simulator_window`` returns a simulator whose path ``p`` steps through scenario ``p``
    day by day (the windows and random streams it is given are ignored: the paths are
    fixed). Used by :func:`factorgym.app.stress.stress_agents` to run saved agents
    through stress paths with the environment's accounting and costs.
    """

    kind = "scenario_replay"

    def __init__(self, scenarios: ScenarioSet) -> None:
        self.scenarios = scenarios
        self.assets_ = tuple(scenarios.assets)

    @property
    def min_history(self) -> int:
        return 1

    def simulator_window(self, window: np.ndarray, rngs: Any) -> _ReplaySimulator:
        if len(rngs) != self.scenarios.paths.shape[0]:
            raise DataValidationError(
                f"replaying {self.scenarios.paths.shape[0]} scenarios needs as many paths, got {len(rngs)}"
            )
        return _ReplaySimulator(self.scenarios.paths)


class _ReplaySimulator:
    def __init__(self, paths: np.ndarray) -> None:
        self.paths = np.asarray(paths, dtype=np.float64)
        self.day = np.zeros(self.paths.shape[0], dtype=np.int64)

    @property
    def n_paths(self) -> int:
        return int(self.paths.shape[0])

    @property
    def n_assets(self) -> int:
        return int(self.paths.shape[2])

    def step(self) -> np.ndarray:
        H = self.paths.shape[1]  # noqa: N806
        if (self.day >= H).any():
            raise DataValidationError(f"scenario paths have {H} days; the episode asked for more")
        r = self.paths[np.arange(self.n_paths), self.day]
        self.day += 1
        return r

    def reset_paths(self, idx: np.ndarray, windows: np.ndarray, rngs: Any) -> None:
        self.day[np.asarray(idx, dtype=np.int64)] = 0

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError("replayed scenarios have no predicted moments")
