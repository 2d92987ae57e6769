"""CoreShare: torch's threads follow the cores other processes leave free."""

import torch

from gradgroup.train import cores


class FakeMachine:
    """A 2-core machine whose clocks the test advances: wall, all-core busy and own CPU seconds."""

    def __init__(self, monkeypatch):
        self.wall = self.busy = self.own = 0.0
        monkeypatch.setattr(cores, "_busy_core_seconds", lambda: self.busy)
        monkeypatch.setattr(cores, "machine_cores", lambda: 2)
        monkeypatch.setattr(cores.os, "cpu_count", lambda: 2)
        monkeypatch.setattr(cores.time, "perf_counter", lambda: self.wall)
        monkeypatch.setattr(cores.time, "process_time", lambda: self.own)

    def run(self, seconds: float, own_cores: float, other_cores: float) -> None:
        self.wall += seconds
        self.own += own_cores * seconds
        self.busy += (own_cores + other_cores) * seconds


def test_threads_drop_to_one_while_another_process_busies_a_core_and_come_back(monkeypatch):
    machine = FakeMachine(monkeypatch)
    before = torch.get_num_threads()
    try:
        share = cores.CoreShare(limit=2, interval=5.0)
        assert share.active
        machine.run(6, own_cores=2.0, other_cores=0.0)
        assert share.update() == 2 and torch.get_num_threads() == 2
        machine.run(6, own_cores=1.3, other_cores=0.7)  # a busy loop takes its share
        assert share.update() == 1 and torch.get_num_threads() == 1
        machine.run(2, own_cores=1.0, other_cores=0.0)  # inside the interval: not re-checked
        assert share.update() == 1
        machine.run(6, own_cores=1.0, other_cores=0.05)
        assert share.update() == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_limit_of_one_thread_or_an_unreadable_load_leaves_torch_alone(monkeypatch):
    FakeMachine(monkeypatch)
    assert not cores.CoreShare(limit=1).active
    monkeypatch.setattr(cores, "_busy_core_seconds", lambda: None)
    share = cores.CoreShare(limit=2)
    assert not share.active and share.update(force=True) == torch.get_num_threads()


def test_the_load_is_read_from_proc_stat_here():
    busy = cores._busy_core_seconds()
    assert busy is None or busy > 0.0
    assert cores.thread_limit() >= 1
