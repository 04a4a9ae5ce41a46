"""Scenario banks: a generator's paths simulated ahead of time, in large batches (and in
parallel as Ray tasks), saved as Parquet shards with the spec that regenerates them exactly,
and replayed by :class:`factorgym.envs.markets.bank.BankMarket` as fast as real history.

``spec``    contexts, per-path seeds (the environments' seeding rule), :class:`BankSpec`
``shards``  one shard: simulated in one batch, encoded as Parquet (the file layout)
``write``   :func:`simulate_bank`, :func:`regenerate_bank` (staged, swapped in whole)
``read``    :func:`read_bank` -> :class:`Bank`
"""

from factorgym.generators.banks.read import Bank, is_bank, read_bank
from factorgym.generators.banks.spec import BankSpec, episode_seeds, path_streams
from factorgym.generators.banks.write import regenerate_bank, simulate_bank

__all__ = ["Bank", "BankSpec", "episode_seeds", "is_bank", "path_streams", "read_bank", "regenerate_bank", "simulate_bank"]
