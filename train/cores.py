"""CPU threads for training that follow the machine's load (Linux ``/proc/stat``).

On a small machine PyTorch's intra-op threads and another process fight for the cores: every
parallel region waits for its slowest thread, and a thread whose core another process holds is
slow. On 2 cores (bench/TRAINING.md, section 6) a grouped dg4-light step runs at 13-18 img/s on
2 threads when the machine is quiet, 3-4 img/s on 2 threads when one core is busy, and 10 img/s
on 1 thread either way. :class:`CoreShare` looks every few seconds at how many cores the rest of
the machine kept busy and gives torch the others (at least one thread, at most ``limit``).
"""

from __future__ import annotations

import logging
import os
import time

import torch

log = logging.getLogger(__name__)

INTERVAL_S = 5.0  # how often the share is re-checked (reading /proc/stat costs microseconds)


def _busy_core_seconds() -> float | None:
    """CPU seconds all cores spent busy since boot, or None where /proc/stat is missing."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def machine_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def thread_limit() -> int:
    """The most threads training uses: ``OMP_NUM_THREADS`` where set, else every core."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return machine_cores()


class CoreShare:
    """Sets torch's intra-op threads to the cores other processes leave free.

    ``update()`` is cheap and meant to be called every iteration; it re-checks once per
    ``interval`` seconds. Inactive (a no-op) where the load cannot be read, where this process
    may use only some of the machine's cores, or when ``limit`` is 1.
    """

    def __init__(self, limit: int, interval: float = INTERVAL_S) -> None:
        self.limit, self.interval = limit, interval
        self.cores = machine_cores()
        busy = _busy_core_seconds()
        self.active = limit > 1 and busy is not None and self.cores == (os.cpu_count() or 1)
        self._last = (time.perf_counter(), busy or 0.0, time.process_time())
        self.threads = torch.get_num_threads()

    def others(self) -> float:
        """Cores the rest of the machine kept busy since the last look (resets the window)."""
        now, busy, own = time.perf_counter(), _busy_core_seconds() or 0.0, time.process_time()
        wall = max(now - self._last[0], 1e-6)
        used = (busy - self._last[1] - (own - self._last[2])) / wall
        self._last = (now, busy, own)
        return max(0.0, used)

    def update(self, force: bool = False) -> int:
        """Re-check the load if ``interval`` has passed (or ``force``); returns the threads."""
        if not self.active or (not force and time.perf_counter() - self._last[0] < self.interval):
            return self.threads
        others = self.others()
        threads = max(1, min(self.limit, round(self.cores - others)))
        if threads != self.threads:
            log.info("other processes keep %.1f of %d cores busy: training on %d thread%s",
                     others, self.cores, threads, "" if threads == 1 else "s")  # fmt: skip
            torch.set_num_threads(threads)
            self.threads = threads
        return threads

    def sample(self, seconds: float = 0.2) -> int:
        """Measure the load over ``seconds`` now (before the first step) and apply it."""
        if self.active:
            self.others()
            time.sleep(seconds)
            self.update(force=True)
        return self.threads
