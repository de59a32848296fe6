"""Split a portfolio among workers by customer: every invoice in exactly one shard.

A customer's invoices always land in the same shard, on every machine and every run (the
hash is pandas' fixed-key SipHash, not Python's per-process `hash`), so N workers running
shards 0..N-1 together cover the portfolio once: no invoice twice, none left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def shard_of(invoices: pd.DataFrame, shards: int) -> np.ndarray:
    """The shard (0..shards-1) of each invoice: by customer, or by invoice when the
    customer is unknown."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    who = invoices["customer_id"].astype(str)
    who = who.where(who != "", "invoice:" + invoices["invoice_number"].astype(str))
    return pd.util.hash_pandas_object(who, index=False).to_numpy() % np.uint64(shards)


def in_shard(invoices: pd.DataFrame, shards: int, shard: int) -> pd.DataFrame:
    """The invoices of one shard (all of them when `shards` is 1)."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard must be between 0 and {shards - 1}, got {shard}")
    if shards == 1:
        return invoices
    return invoices[shard_of(invoices, shards) == shard]
