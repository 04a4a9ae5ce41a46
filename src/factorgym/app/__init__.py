"""The application floor: command line, demo, backtest and experiment orchestration, specs.

The only floor that may import every other one (``core <- generators <- envs <- agents <-
app``; see ``docs/architecture.md``). Library code below never imports from here.

``specs``          the one spec grammar (agents, ``key=value`` params, markets, weights,
                   datasets, units): text -> typed values
``agent_factory``  :func:`~factorgym.app.agent_factory.agent_from_spec`: agents from specs
``backtest/``      agents x markets under identical accounting (agent, config, run,
                   statistics, tables, result, report, experiment)
``stress``         agents through stress scenario sets, after costs
``demo``           the end-to-end main job
``cli/``           the ``factorgym`` command line, one module per command group
"""
