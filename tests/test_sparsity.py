"""Sparsity during training (network slimming, GMP), sparse storage, and Slim.prune in tools/train.py."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

import ppzoo
from ppzoo.compress.prune.sparsity import (GMPHook, SlimmingHook, gmp_sparsity, load_sparse, prunable_weights,
                                           save_sparse, sparsity_of)
from ppzoo.config import ConfigError, load_config
from ppzoo.engine import train
from ppzoo.utils.weights import read_state_dict

from conftest import out_dir, randomise_weights, tiny_config


def test_gmp_schedule_follows_the_closed_form():
    si, sf, t0, t1 = 0.1, 0.9, 100, 1100
    for t in (0, 99, 100, 350, 600, 1099, 1100, 5000):
        if t < t0:
            expected = 0.0
        elif t >= t1:
            expected = sf
        else:
            expected = sf + (si - sf) * (1 - (t - t0) / (t1 - t0)) ** 3  # Zhu & Gupta, Eq. 1
        assert gmp_sparsity(t, si, sf, t0, t1) == pytest.approx(expected)
    assert gmp_sparsity(600, si, sf, t0, t1) == pytest.approx(0.9 - 0.8 * 0.125)


def test_gmp_masks_reach_the_scheduled_sparsity_and_stay_applied():
    model = randomise_weights(ppzoo.create_model("mobilenet_v1_x0_25", num_classes=10, small_input=True))
    hook = GMPHook(0.8, end_step=4, frequency=2)
    for step in range(1, 7):
        for w in prunable_weights(model).values():  # an optimizer step that would regrow every weight
            w.set_value(w.numpy() + 0.01)
        hook.after_step(model, step)
        expected = gmp_sparsity(step - step % 2, 0.0, 0.8, 0, 4)
        for name, w in prunable_weights(model).items():
            zeros = float((w.numpy() == 0).mean())
            assert zeros == pytest.approx(np.floor(expected * w.size) / w.size), (step, name)
    model = hook.finalize(model)
    assert hook.masks == {} and sparsity_of({k: v.numpy() for k, v in prunable_weights(model).items()}) >= 0.79


def test_slimming_penalty_is_in_the_gradient():
    model = ppzoo.create_model("mobilenet_v1_x0_25", num_classes=10, small_input=True)
    model.train()
    x, y = paddle.randn([4, 3, 32, 32]), paddle.to_tensor([[1], [2], [3], [4]])
    F.cross_entropy(model(x), y).backward()
    bns = [m for m in model.sublayers() if isinstance(m, paddle.nn.BatchNorm2D)]
    before = [bn.weight.grad.numpy().copy() for bn in bns]
    gammas = [bn.weight.numpy() for bn in bns]
    SlimmingHook(1e-3).after_backward(model)
    for bn, g0, gamma in zip(bns, before, gammas):
        np.testing.assert_allclose(bn.weight.grad.numpy() - g0, 1e-3 * np.sign(gamma), rtol=1e-4, atol=1e-7)


def test_sparse_storage_round_trip_and_size(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal([64, 64, 3, 3]).astype("float32")
    w[rng.random(w.shape) < 0.9] = 0
    state = {"conv.weight": w, "bn.weight": rng.standard_normal(64).astype("float32")}
    dense = save_sparse(state, str(tmp_path / "d.sparse"), min_sparsity=1.1)  # everything stored dense
    sparse = save_sparse(state, str(tmp_path / "s.sparse"))
    small = save_sparse(state, str(tmp_path / "s8.sparse"), bits=8)
    back = load_sparse(str(tmp_path / "s.sparse"))
    np.testing.assert_array_equal(back["conv.weight"], w)
    np.testing.assert_array_equal(back["bn.weight"], state["bn.weight"])
    back8 = load_sparse(str(tmp_path / "s8.sparse"))["conv.weight"]
    nz = w[w != 0]
    assert np.all((back8 == 0) == (w == 0))
    assert np.abs(back8 - w).max() <= (nz.max() - nz.min()) / 255 / 2 + 1e-6
    assert sparse < 0.3 * dense and small < 0.5 * sparse
    with pytest.raises(ValueError, match="bits must be 8 or 32"):
        save_sparse(state, str(tmp_path / "x"), bits=4)
    with pytest.raises(ValueError, match="cannot read sparse weights"):
        load_sparse(str(tmp_path / "missing.sparse"))


GMP = {"Slim": {"sparsity": {"name": "gmp", "final_sparsity": 0.7, "end_step": 14, "frequency": 3}}}


def test_gmp_resume_is_exact_with_masks(tmp_path):
    extra = {"Global.epochs": 2, **GMP}
    train(load_config(tiny_config(tmp_path / "a", **extra)))
    full = out_dir(tmp_path / "a")
    train(load_config(tiny_config(tmp_path / "b", **extra, **{"Global.checkpoints": str(full / "epoch_1")})))
    a, b = read_state_dict(str(full / "latest.pdparams")), read_state_dict(str(out_dir(tmp_path / "b") / "latest.pdparams"))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    final = read_state_dict(str(full / "final_model.pdparams"))
    weights = [k for k in final if k.endswith(".weight") and final[k].ndim >= 2]
    assert sparsity_of(final, weights) == pytest.approx(0.7, abs=0.01)
    assert "gmp" in paddle.load(str(full / "latest.pdckpt"))["hooks"]


def test_bad_sparsity_configs(tmp_path):
    cases = [({"name": "magic"}, "'Slim.sparsity.name' must be one of bn_l1, gmp"),
             ({"name": "gmp", "final_sparsity": 1.2, "end_step": 10}, r"final_sparsity must be in \(0, 1\)"),
             ({"name": "gmp", "final_sparsity": 0.5, "end_step": 10, "begin_step": 10}, "begin_step < end_step"),
             ({"name": "bn_l1", "coeff": -1.0}, "coeff must be a number > 0")]
    for section, message in cases:
        with pytest.raises(ConfigError, match=message):
            load_config(tiny_config(tmp_path, **{"Slim": {"sparsity": section}}))


def test_paddleclas_slim_prune_trains_through_the_ordinary_trainer(tmp_path):
    cfg = load_config(tiny_config(tmp_path, **{"Global.epochs": 1,
                                               "Slim": {"prune": {"name": "fpgm", "pruned_ratio": 0.3}}}))
    summary = train(cfg)
    out = out_dir(tmp_path)
    arch_file = out / "best_model.arch.json"
    assert arch_file.is_file() and summary["best"]["top1"] is not None
    pruned = ppzoo.create_model(str(arch_file), num_classes=10, pretrained=str(out / "best_model.pdparams"))
    full = ppzoo.create_model("mobilenet_v1_x0_25", num_classes=10)
    n = lambda m: sum(int(np.prod(p.shape)) for p in m.parameters())  # noqa: E731
    assert 0.3 < n(pruned) / n(full) < 0.65  # ~(1 - 0.3)^2 of the pointwise weights
    # resuming builds the same pruned structure and continues
    resumed = load_config(tiny_config(tmp_path / "b", **{"Global.epochs": 2, "Global.checkpoints": str(out / "latest"),
                                                         "Slim": {"prune": {"name": "fpgm", "pruned_ratio": 0.3}}}))
    train(resumed)
