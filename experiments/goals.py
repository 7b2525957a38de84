"""goals.py - the goals nemo is judged by against straightforward co-location (issue 14), for
bench_harvest.py's figure 3 and make experiment's Dominance section alike.

nemo dominates each baseline on both axes at once, function completion and the NF. Against
co-location with a FIFO NF (the NF is safe, the functions starve): completion mean and p50
>= 25x better, and nemo's NF loses nothing. Against co-location at default priority (the
functions take the NF's cycles): the NF's p99.9 >= 5x better, nemo's NF loses nothing, and
the functions take at most 1.5x the baseline's mean.
"""

GOAL_FIFO_SPEEDUP = 25.0
GOAL_DEFAULT_P999 = 5.0
GOAL_DEFAULT_COMPL = 1.5


def ratio(a, b):
    """a / b, or None without both figures (or with b not positive): no figure to judge."""
    return a / b if a is not None and b is not None and b > 0 else None
