"""Optimizer, schedule, loss and AMP builders of the training engine, checked numerically."""
import logging
import math

import numpy as np
import paddle
import pytest

import ppzoo
from ppzoo.engine.builders import CELoss, build_lr_scheduler, build_optimizer
from ppzoo.engine.trainer import _amp

from conftest import randomise_weights


def _zero_grad_step(model, optimizer):
    """One step with all-zero gradients on non-zero weights (zero-initialised biases would
    not show decay) in eval mode (BN statistics stay): whatever moves is weight decay.
    Returns the names of the trainable parameters that moved."""
    randomise_weights(model)
    trainable = {n: p for n, p in model.named_parameters() if p.trainable}
    before = {n: p.numpy().copy() for n, p in trainable.items()}
    (model(paddle.rand([2, 3, 32, 32])) * 0).sum().backward()
    optimizer.step()
    optimizer.clear_grad()
    return {n for n, p in trainable.items() if not np.array_equal(p.numpy(), before[n])}


@pytest.mark.parametrize("cfg", [
    {"name": "Momentum", "momentum": 0.9, "no_weight_decay": ["norm", "bias", "depthwise"],
     "regularizer": {"name": "L2", "coeff": 0.1}},
    {"name": "AdamW", "weight_decay": 0.1, "no_weight_decay": ["norm", "bias", "depthwise"]},
])
def test_no_weight_decay_spares_depthwise_norm_and_bias(cfg):
    model = ppzoo.create_model("mobilenet_v2_x0_35", num_classes=4, small_input=True)
    moved = _zero_grad_step(model, build_optimizer(cfg, model, 0.5))
    depthwise = {f"{n}.weight" for n, l in model.named_sublayers()
                 if isinstance(l, paddle.nn.Conv2D) and l._groups == l._in_channels > 1}
    norm = {f"{n}.{p}" for n, l in model.named_sublayers() if isinstance(l, paddle.nn.BatchNorm2D)
            for p in ("weight", "bias")}
    dense = {f"{n}.weight" for n, l in model.named_sublayers()
             if isinstance(l, (paddle.nn.Conv2D, paddle.nn.Linear)) and f"{n}.weight" not in depthwise}
    assert depthwise and norm and dense
    assert moved == dense  # decay reaches exactly the dense conv/FC weights


def test_weight_decay_everywhere_without_the_option():
    model = ppzoo.create_model("mobilenet_v1_x0_25", num_classes=4, small_input=True)
    cfg = {"name": "Momentum", "momentum": 0.9, "regularizer": {"name": "L2", "coeff": 0.1}}
    moved = _zero_grad_step(model, build_optimizer(cfg, model, 0.5))
    assert moved == {n for n, p in model.named_parameters() if p.trainable}


def test_clip_norm_bounds_the_update():
    model = paddle.nn.Linear(4, 3)
    w = model.weight.numpy().copy()
    optimizer = build_optimizer({"name": "SGD", "clip_norm": 0.01}, model, 1.0)
    (model(paddle.ones([8, 4])) * 1000).sum().backward()
    optimizer.step()
    step = np.sqrt(((model.weight.numpy() - w) ** 2).sum())
    assert step <= 0.01 + 1e-6 and step > 0.005  # global norm over weight and bias is 0.01


def test_rmsprop_follows_its_update_rule():
    model = paddle.nn.Linear(1, 1, bias_attr=False)
    w0 = model.weight.item()
    optimizer = build_optimizer({"name": "RMSProp", "rho": 0.9, "epsilon": 1e-6}, model, 0.01)
    assert isinstance(optimizer, paddle.optimizer.RMSProp)
    (model(paddle.ones([1, 1])) * 3).sum().backward()  # gradient 3
    optimizer.step()
    mean_square = 0.1 * 9.0
    assert math.isclose(model.weight.item(), w0 - 0.01 * 3 / math.sqrt(mean_square + 1e-6), rel_tol=1e-4)


def _rates(cfg, epochs=4, steps=10, scale=1.0):
    scheduler = build_lr_scheduler(cfg, epochs, steps, scale)
    out = []
    for _ in range(epochs * steps):
        out.append(scheduler.get_lr())
        scheduler.step()
    return out


def test_cosine_with_warmup():
    lr = _rates({"name": "Cosine", "learning_rate": 0.4, "warmup_epoch": 1, "warmup_start_lr": 0.0})
    assert lr[0] == 0.0 and math.isclose(lr[5], 0.2)  # linear warm-up over 10 steps
    assert math.isclose(lr[10], 0.4)
    assert math.isclose(lr[10 + 15], 0.2, rel_tol=1e-6)  # half-way through the 30 cosine steps
    assert lr[-1] < 0.002 and all(a >= b for a, b in zip(lr[10:], lr[11:]))


def test_linear_is_shufflenets_schedule():
    lr = _rates({"name": "Linear", "learning_rate": 0.5, "end_lr": 0.0})
    assert lr[0] == 0.5 and math.isclose(lr[20], 0.25) and math.isclose(lr[39], 0.5 / 40, rel_tol=1e-6)


def test_piecewise_switches_at_epoch_boundaries_after_warmup():
    lr = _rates({"name": "Piecewise", "decay_epochs": [2, 3], "values": [0.1, 0.01, 0.001], "warmup_epoch": 1})
    assert lr[0] == 0.0 and math.isclose(lr[10], 0.1) and math.isclose(lr[19], 0.1)
    assert math.isclose(lr[20], 0.01) and math.isclose(lr[30], 0.001)


def test_scale_multiplies_every_rate():
    cfg = {"name": "Cosine", "learning_rate": 0.1, "warmup_epoch": 1, "warmup_start_lr": 0.01}
    np.testing.assert_allclose(_rates(cfg, scale=4.0), 4 * np.array(_rates(cfg)), rtol=1e-6)


def _plateau(**kw):
    cfg = {"name": "ReduceOnPlateau", "learning_rate": 0.1, "patience": 1, **kw}
    scheduler = build_lr_scheduler(cfg, 10, 5)
    (hook,) = scheduler.training_hooks
    return scheduler, hook


def test_reduce_on_plateau_divides_after_patience_bad_epochs_and_steps_do_not_change_it():
    scheduler, hook = _plateau(warmup_epoch=1)
    for _ in range(5):  # the one-epoch warm-up, then the plateau's rate
        scheduler.step()
    assert math.isclose(scheduler.get_lr(), 0.1)
    rates = []
    for loss in [1.0, 0.9, 0.95, 0.91, 0.92, 0.5, 0.6, 0.7]:  # eval losses of 8 epochs
        hook.after_epoch(None, 0, {"eval": {"loss": loss}})
        for _ in range(5):
            scheduler.step()
        rates.append(scheduler.get_lr())
    # two epochs without a new best (0.95, 0.91) > patience 1 -> x0.1; again at 0.6, 0.7
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01, 0.001], rtol=1e-9)


def test_reduce_on_plateau_cut_reaches_the_optimizer_at_once_and_nan_is_a_bad_epoch():
    scheduler, hook = _plateau(warmup_epoch=1, patience=0)
    for _ in range(5):  # through the warm-up
        scheduler.step()
    hook.after_epoch(None, 1, {"eval": {"loss": float("nan")}})  # never the best: a bad epoch -> cut
    assert math.isclose(scheduler(), 0.01)  # what the optimizer reads (the warm-up wrapper), right away
    hook.after_epoch(None, 2, {"eval": {"loss": 1.0}})
    hook.after_epoch(None, 3, {"eval": {"loss": 0.5}})
    assert math.isclose(scheduler(), 0.01) and hook.plateau.best == 0.5


def test_reduce_on_plateau_ranks_decide_on_their_mean_training_loss(monkeypatch):
    scheduler, hook = _plateau(monitor="train_loss", patience=0)
    monkeypatch.setattr(paddle.distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(paddle.distributed, "all_reduce", lambda t: t.set_value(t + 3.0))  # the other rank: 3.0
    hook.after_epoch(None, 1, {"train": {"loss": 1.0}})
    assert hook.plateau.best == 2.0  # (1 + 3) / 2


def test_reduce_on_plateau_monitors_top1_upwards_and_skips_epochs_without_eval():
    scheduler, hook = _plateau(monitor="eval_top1", patience=0, min_lr=0.05)
    hook.after_epoch(None, 1, {"eval": {"top1": 50.0}})
    hook.after_epoch(None, 2, {"train": {"loss": 1.0}})  # not evaluated: does not count
    assert math.isclose(scheduler.get_lr(), 0.1)
    hook.after_epoch(None, 3, {"eval": {"top1": 60.0}})
    assert math.isclose(scheduler.get_lr(), 0.1)
    hook.after_epoch(None, 4, {"eval": {"top1": 59.0}})
    assert math.isclose(scheduler.get_lr(), 0.05)  # x0.1 would be 0.01: held at min_lr
    hook.after_epoch(None, 5, {"eval": {"top1": 58.0}})
    assert math.isclose(scheduler.get_lr(), 0.05)


@pytest.mark.parametrize("kw, match", [
    ({"monitor": "val_acc"}, "monitor must be one of eval_loss, eval_top1, train_loss"),
    ({"monitor": "eval_top1", "mode": "min"}, "mode 'min' contradicts monitor 'eval_top1'"),
    ({"factor": 1.5}, r"factor must be in \(0, 1\)"),
    ({"threshold_mode": "pct"}, "threshold_mode must be 'rel' or 'abs'"),
])
def test_reduce_on_plateau_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        _plateau(**kw)


def test_label_smoothing_matches_its_formula():
    logits = paddle.to_tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    labels = paddle.to_tensor([0, 2])
    log_p = paddle.nn.functional.log_softmax(logits).numpy()
    eps, k = 0.3, 3
    target = np.eye(k)[[0, 2]] * (1 - eps) + eps / k
    expected = -(target * log_p).sum(1).mean()
    assert math.isclose(float(CELoss(epsilon=eps)(logits, labels)), expected, rel_tol=1e-5)
    assert math.isclose(float(CELoss()(logits, labels)), -log_p[[0, 1], [0, 2]].mean(), rel_tol=1e-5)


def test_amp_on_cpu_is_off_with_a_notice_and_use_amp_false_is_silent():
    # A private logger with its own handler: caplog listens on the root logger, which never
    # sees "ppzoo.*" records once another test has set up ppzoo's (non-propagating) logger.
    records = []
    logger = logging.getLogger("ppzoo_test_amp")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        amp = {"use_amp": True, "level": "O1", "scale_loss": 1024.0, "use_dynamic_loss_scaling": True}
        assert _amp({"AMP": amp}, "cpu", logger) is None
        assert any("AMP: off on CPU" in r.getMessage() for r in records)
        records.clear()
        assert _amp({"AMP": {**amp, "use_amp": False}}, "gpu:0", logger) is None
        assert _amp({}, "cpu", logger) is None
        assert records == []
    finally:
        logger.removeHandler(handler)
