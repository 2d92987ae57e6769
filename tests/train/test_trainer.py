"""The trainer: exact resume, grouped conversion with Adam's state, schedules, budget, stages."""

import copy
import json
import os
import signal

import pytest
import torch
import torch.nn.functional as F
from toy_data import Blocks

from gradgroup.deploy.errors import InputError, RunError
from gradgroup.train.checkpoint import load_checkpoint
from gradgroup.train.data import SegDataset
from gradgroup.train.grouping import GradualGroupConv2d, gradual_layers, set_alpha, share_alpha
from gradgroup.train.models import create_model
from gradgroup.train.recipe import Plan, convert_with_optimizer
from gradgroup.train.trainer import TrainConfig, train

TINY = dict(
    arch="dg4-light", size=(32, 64), epochs=2, iters_per_epoch=3, batch_size=2, workers=0,
    progress=False, finetune_epochs=1,
)  # fmt: skip


def tiny(out, **kw):
    return TrainConfig(**{**TINY, "out": str(out), **kw})


def run(cfg):
    return train(cfg, Blocks(6), Blocks(2, offset=100))


def strip_timing(rows):
    return [{k: v for k, v in r.items() if k not in ("seconds", "img_per_s")} for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 2-epoch gradual run (alpha reaches 0 at the start of epoch 2)."""
    out = tmp_path_factory.mktemp("ref")
    result = run(tiny(out))
    return out, result


def test_reference_run_converts_and_writes_its_folder(reference):
    out, result = reference
    assert result.status == "done" and result.iterations == 6 and result.epochs == 2
    assert result.converted and result.alpha == 0.0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["best.pt", "config.json", "curves.png", "last.pt", "metrics.jsonl", "run.json"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[0]["alpha"] == pytest.approx(1 / 3) and rows[1]["alpha"] == 0.0
    assert set(rows[1]["iou"]) >= {"road", "sky"} and 0.0 <= rows[1]["miou"] <= 1.0
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["model_args"]["converted"] and ckpt["iteration"] == 6
    assert {"optimizer", "scheduler", "rng", "config", "metrics", "classes"} <= set(ckpt)
    best = load_checkpoint(out / "best.pt")
    # best.pt of a gradual run is chosen among deployable (alpha = 0) epochs only.
    assert best["alpha"] == 0.0 and best["model_args"]["converted"]
    deployable = [r["miou"] for r in rows if r["alpha"] == 0.0]
    deployable += [r["converted_miou"] for r in rows if "converted_miou" in r]
    assert best["run"]["best_miou"] == max(deployable)


def test_decay_end_scores_the_converted_model_and_logs_cross_ratios(reference):
    out, _ = reference
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    n_gradual = len(gradual_layers(create_model("dg4-light", 19, "gradual")))
    assert len(rows[0]["cross_ratio"]) == n_gradual and rows[1]["cross_ratio"] is None
    assert 0.0 <= rows[0]["converted_miou"] <= 1.0 and "converted_miou" not in rows[1]
    # alpha = 1/3 with the cap: the cross-group paths carry at most alpha * sqrt(G - 1).
    assert all(0 < r <= (1 / 3) * 127**0.5 + 1e-6 for r in rows[0]["cross_ratio"].values())
    pointwise = [r for name, r in rows[0]["cross_ratio"].items() if ".pw" in name]
    assert pointwise and max(pointwise) <= share_alpha(1 / 3, 4) * 3**0.5 + 1e-6


def test_gradual_run_without_finetuning_still_ends_grouped(tmp_path):
    result = run(tiny(tmp_path, epochs=1, finetune_epochs=0))
    assert result.converted and result.alpha == 0.0 and result.best is not None


@pytest.mark.parametrize("stop_position", [4, 8], ids=["after-epoch-1", "mid-epoch-2"])
def test_interrupted_and_resumed_run_is_bit_identical(
    reference, tmp_path, monkeypatch, stop_position
):
    ref_out, ref = reference
    original = SegDataset.__getitem__

    def getitem(self, item):  # a real SIGINT, raised while loading the batch of one iteration
        if isinstance(item, tuple) and item[1] == stop_position:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, item)

    monkeypatch.setattr(SegDataset, "__getitem__", getitem)
    first = run(tiny(tmp_path))
    assert first.status == "interrupted"
    assert first.iterations == stop_position // TINY["batch_size"] + 1  # that iteration finished
    monkeypatch.setattr(SegDataset, "__getitem__", original)
    second = run(tiny(tmp_path, resume=True))
    assert second.status == "done" and second.iterations == 6
    a, b = load_checkpoint(ref_out / "last.pt"), load_checkpoint(tmp_path / "last.pt")
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    states = zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True)
    for sa, sb in states:
        assert torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    ref_rows = (ref_out / "metrics.jsonl").read_text().splitlines()
    rows = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert strip_timing(map(json.loads, rows)) == strip_timing(map(json.loads, ref_rows))


def test_a_depthwise_start_decays_only_the_pointwise_convs_and_resumes_exactly(
    tmp_path, monkeypatch
):
    """dg4-light from a converted d-light: its depthwise convs are grouped from the first step,
    the pointwise ones decay; an interrupted run of that mixed model resumes bit-exactly."""
    source = run(tiny(tmp_path / "d", arch="d-light", epochs=1, finetune_epochs=0))
    start = str(source.best)
    ref = run(tiny(tmp_path / "ref", init=start))
    metrics = (tmp_path / "ref" / "metrics.jsonl").read_text()
    rows = [json.loads(line) for line in metrics.splitlines()]
    assert ref.converted and list(rows[0]["cross_ratio"]) == [
        n for n, _ in gradual_layers(create_model("dg4-light", 19, "gradual")) if ".pw" in n
    ]
    original = SegDataset.__getitem__

    def getitem(self, item):
        if isinstance(item, tuple) and item[1] == 2:  # in the decay: the model is mixed
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, item)

    monkeypatch.setattr(SegDataset, "__getitem__", getitem)
    assert run(tiny(tmp_path / "cut", init=start)).status == "interrupted"
    cut = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert cut["alpha"] > 0 and len(cut["model_args"]["grouped"]) == 68
    monkeypatch.setattr(SegDataset, "__getitem__", original)
    assert run(tiny(tmp_path / "cut", init=start, resume=True)).status == "done"
    _same_run(tmp_path / "ref", tmp_path / "cut")


def test_start_lr_scale_slows_only_what_the_start_already_has_and_survives_resume(
    tmp_path, monkeypatch
):
    """From a depthwise start the 26 pointwise convs being grouped keep the full lr, everything
    else gets lr * start_lr_scale; a run interrupted after conversion resumes bit-exactly."""
    source = run(tiny(tmp_path / "d", arch="d-light", epochs=1, finetune_epochs=0))
    cfg = dict(init=str(source.best), start_lr_scale=0.25, lr=1e-3)
    run(tiny(tmp_path / "ref", **cfg))
    ckpt = load_checkpoint(tmp_path / "ref" / "last.pt")
    fast, slow = ckpt["optimizer"]["param_groups"]
    assert fast["initial_lr"] == 1e-3 and slow["initial_lr"] == pytest.approx(2.5e-4)
    pointwise = [
        n for n, _ in gradual_layers(create_model("dg4-light", 19, "gradual")) if ".pw" in n
    ]
    assert ckpt["fast_layers"] == pointwise
    assert len(fast["params"]) == 2 * len(pointwise)  # weight and bias of each
    original = SegDataset.__getitem__

    def getitem(self, item):
        if isinstance(item, tuple) and item[1] == 8:  # epoch 2: after conversion
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, item)

    monkeypatch.setattr(SegDataset, "__getitem__", getitem)
    assert run(tiny(tmp_path / "cut", **cfg)).status == "interrupted"
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["model_args"]["converted"]
    monkeypatch.setattr(SegDataset, "__getitem__", original)
    assert run(tiny(tmp_path / "cut", resume=True, **cfg)).status == "done"
    _same_run(tmp_path / "ref", tmp_path / "cut")


def test_start_lr_scale_is_refused_outside_its_range(tmp_path):
    with pytest.raises(InputError, match="start_lr_scale"):
        tiny(tmp_path, start_lr_scale=0.0)


def test_a_non_finite_step_is_skipped_without_touching_weights_or_bn_statistics(
    tmp_path, monkeypatch
):
    import gradgroup.train.trainer as trainer_module

    real = trainer_module.weighted_ce
    calls = []

    def nan_at_third(logits, labels, weights):  # one overflowing batch, as bf16 can give
        calls.append(1)
        loss = real(logits, labels, weights)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(trainer_module, "weighted_ce", nan_at_third)
    result = run(tiny(tmp_path, schedule="dense", epochs=1, bn_recalib=0))
    assert result.status == "done" and result.iterations == 3
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert all(torch.isfinite(s["exp_avg_sq"]).all() for s in ckpt["optimizer"]["state"].values())
    tracked = [v for k, v in ckpt["model"].items() if k.endswith("num_batches_tracked")]
    assert tracked and all(int(t) == 2 for t in tracked)  # the skipped forward was undone


def test_a_run_whose_loss_stays_non_finite_stops_with_one_line(tmp_path, monkeypatch):
    import gradgroup.train.trainer as trainer_module

    real = trainer_module.weighted_ce
    monkeypatch.setattr(trainer_module, "weighted_ce", lambda *a: real(*a) * float("nan"))
    with pytest.raises(RunError, match="diverged: gradients not finite for 10 steps"):
        run(tiny(tmp_path, schedule="dense", epochs=1, iters_per_epoch=12))


def _same_run(ref_out, out):
    a, b = load_checkpoint(ref_out / "last.pt"), load_checkpoint(out / "last.pt")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    ref_rows = (ref_out / "metrics.jsonl").read_text().splitlines()
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert strip_timing(map(json.loads, rows)) == strip_timing(map(json.loads, ref_rows))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_stop_during_validation_is_immediate_and_the_resume_validates_first(
    reference, tmp_path, monkeypatch, sig
):
    """Issue 13.2: a stop in validation used to wait for it, then train and validate again."""
    from gradgroup.train import trainer

    ref_out, _ = reference
    original = trainer._Run.validate

    def validate(self):  # the signal arrives as validation of epoch 1 starts
        os.kill(os.getpid(), sig)
        return original(self)

    monkeypatch.setattr(trainer._Run, "validate", validate)
    first = run(tiny(tmp_path))
    assert first.status == "interrupted" and first.iterations == 3  # not one step more
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["run"]["pending_epoch_end"] == [0, False] and ckpt["metrics"] == []
    monkeypatch.setattr(trainer._Run, "validate", original)
    second = run(tiny(tmp_path, resume=True))
    assert second.status == "done"
    _same_run(ref_out, tmp_path)


def test_sigterm_while_training_checkpoints_like_ctrl_c(tmp_path, monkeypatch):
    original = SegDataset.__getitem__

    def getitem(self, item):
        if isinstance(item, tuple) and item[1] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, item)

    monkeypatch.setattr(SegDataset, "__getitem__", getitem)
    result = run(tiny(tmp_path))
    assert result.status == "interrupted" and result.iterations == 2
    assert load_checkpoint(tmp_path / "last.pt")["iteration"] == 2


def test_conversion_carries_adam_state_as_diagonal_blocks():
    torch.manual_seed(0)
    model = create_model("dg4-light", 19, "gradual").eval()  # eval: no dropout, fixed BN stats
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    x, y = torch.randn(2, 3, 32, 64), torch.randint(0, 19, (2, 32, 64))

    def step(m, o):
        o.zero_grad()
        F.cross_entropy(m(x), y).backward()
        o.step()

    for alpha in (1.0, 0.5, 0.0):
        set_alpha(model, alpha)
        step(model, opt)
    twin = copy.deepcopy(model)
    twin_opt = torch.optim.Adam(twin.parameters(), lr=1e-3, weight_decay=1e-4)
    twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # load_state_dict shares tensors
    name, dense = next((n, m) for n, m in gradual_layers(model) if m.groups == 4)
    assert convert_with_optimizer(twin, twin_opt) == len(gradual_layers(model))
    grouped = twin.get_submodule(name)
    assert grouped.weight.shape == (dense.out_channels, dense.in_channels // 4, 1, 1)
    moment = twin_opt.state[grouped.weight]["exp_avg"]
    o, i = dense.out_channels // 4, dense.in_channels // 4
    assert torch.equal(moment[o : 2 * o], opt.state[dense.weight]["exp_avg"][o : 2 * o, i : 2 * i])
    assert list(twin.parameters()) == [p for g in twin_opt.param_groups for p in g["params"]]
    step(model, opt)  # dense at alpha 0 and grouped take the same step
    step(twin, twin_opt)
    with torch.no_grad():
        assert torch.allclose(model(x), twin(x), atol=1e-5)
        blocks = [dense.weight[g * o : (g + 1) * o, g * i : (g + 1) * i] for g in range(4)]
        blocks = torch.cat(blocks)
        assert torch.allclose(blocks, grouped.weight, atol=1e-7)


def test_scratch_and_dense_schedules(tmp_path):
    scratch = run(tiny(tmp_path / "s", schedule="scratch", epochs=1, iters_per_epoch=2))
    dense = run(tiny(tmp_path / "d", schedule="dense", epochs=1, iters_per_epoch=2))
    s, d = load_checkpoint(tmp_path / "s/last.pt"), load_checkpoint(tmp_path / "d/last.pt")
    assert s["model_args"]["form"] == "grouped" and scratch.alpha == 0.0 and not scratch.converted
    assert d["model_args"]["form"] == "gradual" and not d["model_args"]["converted"]
    assert dense.alpha == 1.0 and d["alpha"] == 1.0
    assert any(k.endswith(".alpha") for k in d["model"])
    assert not any(k.endswith(".alpha") for k in s["model"])


def test_time_budget_stops_cleanly_with_a_checkpoint(tmp_path):
    result = run(tiny(tmp_path, max_minutes=1e-6))
    assert result.status == "budget" and result.iterations == 1
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["iteration"] == 1 and ckpt["metrics"][-1]["partial"] is True
    # Stopped at alpha > 0: validated, but nothing deployable to call best yet.
    assert not (tmp_path / "best.pt").is_file() and result.miou is not None and result.best is None
    scratch = run(tiny(tmp_path / "scratch", max_minutes=1e-6, schedule="scratch"))
    assert scratch.status == "budget" and (tmp_path / "scratch" / "best.pt").is_file()


def test_fit_minutes_shrinks_the_epochs_to_come_and_still_ends_grouped(tmp_path):
    # No time at all: after the first epoch every epoch gets one iteration, the schedule ends.
    result = run(tiny(tmp_path, epochs=3, finetune_epochs=1, fit_minutes=1e-6))
    assert result.status == "done" and result.converted and result.alpha == 0.0
    assert result.iterations == 5 and result.epochs == 3
    assert load_checkpoint(tmp_path / "last.pt")["epoch_iters"] == [3, 1, 1]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [3, 4, 5]
    # (alpha of each epoch's last step: 2/3 of epoch 1 of 2 decay epochs, then 1/1 of epoch 2)
    assert [r["alpha"] for r in rows] == pytest.approx([2 / 3, 0.5, 0.0])
    assert "converted_miou" in rows[1]


def test_a_resumed_run_keeps_its_fitted_epochs(tmp_path, monkeypatch):
    cfg = dict(epochs=3, finetune_epochs=1, fit_minutes=1e-6)
    ref = run(tiny(tmp_path / "ref", **cfg))
    original = SegDataset.__getitem__

    def getitem(self, item):  # stop in the one iteration of the re-sized second epoch
        if isinstance(item, tuple) and item[1] == 6:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, item)

    monkeypatch.setattr(SegDataset, "__getitem__", getitem)
    assert run(tiny(tmp_path / "cut", **cfg)).status == "interrupted"
    monkeypatch.setattr(SegDataset, "__getitem__", original)
    # Re-planned from [3, 3, 3] the run would still be at alpha 1/3 here and never convert.
    again = run(tiny(tmp_path / "cut", resume=True, **cfg))
    assert (again.iterations, again.converted) == (ref.iterations, ref.converted) == (5, True)
    a, b = (
        load_checkpoint(tmp_path / "ref" / "last.pt"),
        load_checkpoint(tmp_path / "cut" / "last.pt"),
    )
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_encoder_first_stage(tmp_path):
    result = run(tiny(tmp_path, encoder_epochs=1, epochs=2, iters_per_epoch=2))
    rows = load_checkpoint(tmp_path / "last.pt")["metrics"]
    assert [r["stage"] for r in rows] == ["encoder", "main", "main"]
    assert rows[0]["miou"] is None and rows[2]["miou"] is not None
    assert rows[0]["alpha"] == 1.0 and rows[2]["alpha"] == 0.0 and result.converted


def test_resume_refuses_changes_and_overwrites(reference):
    out, _ = reference
    with pytest.raises(InputError, match="lr=0.0005"):
        run(tiny(out, resume=True, lr=1e-3))
    with pytest.raises(InputError, match="already holds a run"):
        run(tiny(out))


def test_a_folder_another_training_holds_is_refused_and_the_lock_is_released(tmp_path):
    from gradgroup.deploy.fileio import folder_lock

    out = tmp_path / "run"
    busy = rf"in use by another training \(pid {os.getpid()}\)"
    # The test's own lock is a second open file description: it conflicts like another process.
    with folder_lock(out, "training"), pytest.raises(InputError, match=busy):
        run(tiny(out))
    with pytest.raises(InputError, match="last.pt does not exist"):
        run(tiny(out, resume=True))  # a failed run lets go of the folder (and leaves none)
    assert not out.exists()
    with folder_lock(out, "training"):
        pass


def test_plan_spans_and_bad_configs():
    plan = Plan.build(TrainConfig(epochs=10, finetune_epochs=2, alpha_span=0.5), ipe=100)
    assert (plan.decay_iters, plan.alpha_span, plan.total_iters) == (800, 4.0, 1000)  # span: epochs
    assert plan.alpha(0) == 1.0 and plan.alpha(200) == pytest.approx(0.5) and plan.alpha(400) == 0.0
    assert plan.lr_factor(0) == 1.0 and plan.lr_factor(1000) == 0.0
    assert Plan.build(TrainConfig(alpha_span=250), ipe=100).alpha_span == 2.5
    with pytest.raises(InputError, match="no|none"):
        TrainConfig(epochs=2, finetune_epochs=2)
    with pytest.raises(InputError, match="multiples of 8"):
        TrainConfig(size=(30, 64))
    with pytest.raises(InputError, match="did you mean 'cosine'"):
        Plan.build(TrainConfig(alpha_shape="cosin"), ipe=10)


def test_a_resized_plan_keeps_lr_and_alpha_continuous():
    plan = Plan.build(TrainConfig(epochs=6, finetune_epochs=3), ipe=10)
    short = plan.resized(1, 4)
    assert short.epoch_iters == (10, 4, 4, 4, 4, 4) and short.total_iters == 30
    assert (short.alpha(10), short.lr_factor(10)) == (plan.alpha(10), plan.lr_factor(10))
    assert short.alpha(12) == pytest.approx(0.5) == (plan.alpha(10) + plan.alpha(20)) / 2
    assert short.decay_iters == 18 and short.alpha(17) > 0 and short.alpha(18) == 0.0
    assert all(short.alpha(i) >= short.alpha(i + 1) for i in range(30))
    assert all(short.lr_factor(i) > short.lr_factor(i + 1) for i in range(30))
    assert short.lr_factor(30) == 0.0
    assert (short.epoch_of(13), short.epoch_of(14), short.epoch_of(30)) == (1, 2, 6)
    assert plan.resized(2, [7, 8]).epoch_iters == (10, 10, 7, 8, 10, 10)


def test_gradual_layers_exist_in_the_trained_form():
    model = create_model("dg4", form="gradual")
    assert any(isinstance(m, GradualGroupConv2d) for m in model.modules())
