"""Percentiles, shared by the pgbench figures and the replication figures."""


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, int(round(p / 100 * len(sorted_values))))
    return sorted_values[min(rank, len(sorted_values)) - 1]
