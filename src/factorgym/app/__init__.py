"""The application floor: command line, demo, backtest and experiment orchestration, specs.

The only floor that may import every other one (``core <- generators <- envs <- agents <-
app``; see ``docs/architecture.md``). Library code below never imports from here.
"""
