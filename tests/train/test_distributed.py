"""DistributedDataParallel on CPU: 2 gloo processes train the same model, rank 0 writes once."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from toy_data import Blocks

from gradgroup.train.checkpoint import load_checkpoint


def _worker(rank, world, port, out):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)
    from gradgroup.train import trainer

    fit = trainer._Run.fit

    def fit_and_keep(self):  # each rank's final weights, to compare across ranks
        result = fit(self)
        torch.save(self.model.state_dict(), os.path.join(out, f"rank{rank}.weights"))
        return result

    trainer._Run.fit = fit_and_keep
    cfg = trainer.TrainConfig(
        arch="dg4-light", size=(32, 64), epochs=2, iters_per_epoch=2, batch_size=2, workers=0,
        progress=False, out=out, finetune_epochs=1,
    )  # fmt: skip
    trainer.train(cfg, Blocks(8), Blocks(3, offset=50))


def test_two_gloo_processes_agree_and_write_one_checkpoint(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # fork: the children reuse this process's imports (torch, and the torch._dynamo module Adam
    # pulls in on first use), where spawn would re-import them in each child for ~10 s.
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    mp.start_processes(_worker, (2, port, str(tmp_path)), nprocs=2, start_method="fork")
    a, b = (torch.load(tmp_path / f"rank{r}.weights") for r in range(2))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["model_args"]["converted"]  # conversion re-wrapped DDP mid-run on both ranks
    assert all(torch.equal(ckpt["model"][k], a[k]) for k in a)
    assert ckpt["iteration"] == 4 and ckpt["config"]["batch_size"] == 2
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # one writer
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["best.pt", "last.pt"]
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.fixture(autouse=True)
def _no_inherited_rank(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
