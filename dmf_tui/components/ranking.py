"""The ranking metrics of a run (its best epoch's model) and of the epochs its --rank-every ranked, as
Run detail, the epoch table and History show them: the top 10 of every test user against the test
ratings of 4 and above (engine/ranking.py). Unlike RMSE, higher is better."""

from __future__ import annotations

# (RunRecord and EpochRecord field, heading), in the order `dmf-tui show` names them.
METRICS = (("precision_at_10", "P@10"), ("recall_at_10", "R@10"), ("ndcg_at_10", "NDCG@10"))
KEYS = frozenset(key for key, _ in METRICS)


def value(metric: float | None) -> str:
    """Four decimals as the RMSEs have; "-" where the run or epoch was not ranked."""
    return "-" if metric is None else f"{metric:.4f}"
