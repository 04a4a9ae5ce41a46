"""Portfolio agents: cvxpy optimizers, simple baselines and stable-baselines3 adapters."""
