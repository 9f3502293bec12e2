"""How many torch threads a worker uses under ``execution.threads: auto``: all of its share of the
cores while the machine is otherwise idle, one while something else runs.

Why measure instead of trusting a fixed number: on a small shared machine two torch threads on two
cores are the fastest setting when nobody else computes, and collapse (10-20x slower steps, measured
on the 2-core box: OpenMP threads wait on a core another process holds) as soon as one other process
runs. The load average reacts in minutes; this measures the last second instead: the CPU time the
whole machine spent (``/proc/stat``) minus this process's own (``os.times``) is what the others
used. A governor re-measures every ``INTERVAL_S`` while a group trains (from its progress callback),
so a job that starts beside us costs at most a second of slow steps.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

INTERVAL_S = 1.0     # how often a running group re-measures the machine
FIRST_SAMPLE_S = 0.1  # the first measurement, before the group starts
_PROC_STAT = Path("/proc/stat")


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _machine_busy_seconds() -> float | None:
    """CPU seconds all cores spent not idle since boot (None where /proc/stat is missing)."""
    try:
        fields = _PROC_STAT.read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields[:8]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


def threads_for(share: int, others: float | None) -> int:
    """Threads for a worker entitled to ``share`` cores when other processes keep ``others`` cores
    busy: the share while at most half a core is taken, else what is left of it (at least 1)."""
    if others is None or others <= 0.5:
        return share
    return max(1, min(share, int(cores() - others + 0.5)))


class ThreadGovernor:
    """Sets torch's thread count for one worker and keeps it right while the worker runs.

    ``setting``: an int (used as is) or "auto"; ``workers``: workers of the run on this machine
    (each gets ``cores // workers``).
    """

    def __init__(self, setting: int | str | None, workers: int) -> None:
        self.fixed = setting if isinstance(setting, int) else None
        self.share = max(1, cores() // max(1, workers))
        self._sample = (time.monotonic(), _machine_busy_seconds(), _own_seconds())
        self.current = 0

    def start(self) -> int:
        """Sets and returns the first thread count (auto: after a short measurement)."""
        if self.fixed is None and self.share > 1:
            time.sleep(FIRST_SAMPLE_S)
        self._apply(self._decide())
        return self.current

    def tick(self) -> None:
        """Called often while the group runs: re-decides once per ``INTERVAL_S``."""
        if self.fixed is None and self.share > 1 and time.monotonic() - self._sample[0] >= INTERVAL_S:
            self._apply(self._decide())

    def _decide(self) -> int:
        if self.fixed is not None:
            return self.fixed
        then, busy_then, own_then = self._sample
        self._sample = now, busy, own = time.monotonic(), _machine_busy_seconds(), _own_seconds()
        if busy is None or busy_then is None or now <= then:
            return self.share
        others = max(0.0, (busy - busy_then) - (own - own_then)) / (now - then)
        return threads_for(self.share, others)

    def _apply(self, threads: int) -> None:
        if threads != self.current:
            import torch

            torch.set_num_threads(threads)
            self.current = threads
