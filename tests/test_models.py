"""Registry-driven model tests: shapes, published counts, the common interface, options."""
import math

import numpy as np
import paddle
import pytest

import ppzoo
from ppzoo.analysis import profile_model

from conftest import one_per_family, randomise_weights

ALL = ppzoo.list_models()
# the published figures are typed once, beside each builder (ModelInfo); the counter must reproduce them
PUBLISHED = [n for n in ALL if ppzoo.model_info(n).madds is not None]
# tolerances wider than the default 3 % params / 1.5 % MAdds, where the issue allows it (DY-MobileNetV2: 5 %)
WIDER = {"dy_mobilenet_v2_*": 0.05}


def _rel(name: str, default: float) -> float:
    import fnmatch

    return next((rel for pattern, rel in WIDER.items() if fnmatch.fnmatchcase(name, pattern)), default)
SMALL = {"alexnet": 96, "alexnet_single": 96}  # AlexNet's unpadded pools need >= 67 pixels
FAMILIES = one_per_family()
SMALL_INPUT_SIDE = {"alexnet": 3}  # final map of a 32x32 image in small-input mode (default 4: 8x downsampling)


def _tolerance(published: float, rel: float) -> float:
    """``rel`` of the figure, but never tighter than the figure's own rounding: the paper
    prints ShuffleNet 0.25x as "13" MFLOPs for the 13.3 M this layout counts."""
    decimals = len(repr(float(published)).split(".")[1].rstrip("0")) if not float(published).is_integer() else 0
    return max(rel * published, 0.5 * 10 ** -decimals)


@pytest.mark.parametrize("name", ALL)
def test_forward_shape_and_finite(name):
    model = ppzoo.create_model(name, num_classes=10)
    model.eval()
    size = SMALL.get(name, 64)
    out = model(paddle.rand([2, 3, size, size]))
    assert out.shape == [2, 10]
    assert np.isfinite(out.numpy()).all()


@pytest.mark.parametrize("name", PUBLISHED)
def test_counts_match_published(name):
    info = ppzoo.model_info(name)
    stats = profile_model(ppzoo.create_model(name), info.input_size)
    params, madds = stats.params / 1e6, stats.madds / 1e6
    if info.params is not None:  # SE ShuffleNet: the paper gives MAdds only
        tol = _tolerance(info.params, _rel(name, 0.03))
        assert abs(params - info.params) <= tol, f"params {params:.3f} M vs {info.params}"
    tol = _tolerance(info.madds, _rel(name, 0.015))
    assert abs(madds - info.madds) <= tol, f"MAdds {madds:.2f} M vs {info.madds}"


@pytest.mark.parametrize("name", sorted(n for n in set(ALL) - set(PUBLISHED) if n.startswith("shufflenet_v1_g")))
def test_unpublished_shufflenets_sit_between_their_neighbours(name):
    """No published figure: the cost must grow with width about as s^2 (Sec. 4.1.1)."""
    width = float(name.rsplit("_x", 1)[1].replace("_", "."))
    g1 = name.split("_x")[0] + "_x1_0"
    madds = profile_model(ppzoo.create_model(name)).madds
    ref = profile_model(ppzoo.create_model(g1)).madds
    assert 0.6 * width ** 2 < madds / ref < 1.4 * width ** 2 + 0.15


def test_shufflenet_conv1_not_divisible_by_groups_falls_back_to_coarser_groups():
    model = ppzoo.create_model("shufflenet_v1_g8_x0_5")
    first = model.stages[0][0]
    assert model.stem[0].weight.shape[0] == 12
    assert first.compress[0]._groups == 1  # stage 2's first 1x1 is never grouped
    assert first.expand[0]._groups == 12 and first.expand[0].weight.shape[0] == 180  # 192 - 12 outputs
    assert model.stages[1][0].expand[0]._groups == 8


def test_interface_forward_features_head_and_reset():
    model = ppzoo.create_model("mobilenet_v2_x0_35", num_classes=5)
    model.eval()
    x = paddle.rand([1, 3, 64, 64])
    feats = model.forward_features(x)
    assert feats.shape == [1, model.num_features, 2, 2]
    assert model.forward_head(feats, pre_logits=True).shape == [1, model.num_features]
    np.testing.assert_allclose(model.forward_head(feats).numpy(), model(x).numpy(), rtol=1e-6)
    model.reset_classifier(3)
    assert model(x).shape == [1, 3] and model.get_classifier().weight.shape == [model.num_features, 3]
    assert ppzoo.create_model("alexnet_single", num_classes=0).eval()(paddle.rand([1, 3, 96, 96])).shape == [1, 4096]


def test_one_model_per_family_is_tested():
    assert {"alexnet", "mobilenet_v1", "mobilenet_v2", "shufflenet_v1"} <= set(FAMILIES)
    assert FAMILIES["mobilenet_v1"] == "mobilenet_v1_x0_25"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_small_input_mode_keeps_a_4x4_or_3x3_map_at_32px(family):
    name = FAMILIES[family]
    model = ppzoo.create_model(name, num_classes=10, small_input=True)
    model.eval()
    x = paddle.rand([2, 3, 32, 32])
    assert model.forward_features(x).shape[-1] == SMALL_INPUT_SIDE.get(family, 4)
    assert model(x).shape == [2, 10]
    # without it a 32x32 image shrinks to 1x1 (or fails for AlexNet)
    if family != "alexnet":
        assert ppzoo.create_model(name).forward_features(x).shape[-1] == 1


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_parameter_gets_a_gradient(family):
    name = FAMILIES[family]
    model = ppzoo.create_model(name, num_classes=4, in_channels=1)
    size = SMALL.get(name, 32)
    loss = model(paddle.rand([2, 1, size, size])).mean()
    loss.backward()
    for pname, p in model.named_parameters():
        if p.trainable:
            assert p.grad is not None, f"no gradient for {pname}"


def test_in_channels_mismatch_is_a_clear_error():
    model = ppzoo.create_model("mobilenet_v1_x0_25", in_channels=1)
    with pytest.raises(ValueError, match=r"expects input of shape \[N, 1, H, W\], got \[2, 3, 32, 32\]"):
        model(paddle.rand([2, 3, 32, 32]))


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match=r"groups must be one of \[1, 2, 3, 4, 8\], got 5"):
        ppzoo.create_model("shufflenet_v1_g3_x1_0", groups=5)
    with pytest.raises(ValueError, match="layout must be one of"):
        ppzoo.create_model("mobilenet_v2_x1_0", layout="tf")
    with pytest.raises(ValueError, match="width must be > 0"):
        ppzoo.create_model("mobilenet_v1_x1_0", width=0)
    with pytest.raises(ValueError, match="num_classes must be an int"):
        ppzoo.create_model("mobilenet_v1_x1_0", num_classes=-1)


def test_shufflenet_zero_init_last_starts_every_unit_as_its_shortcut():
    from ppzoo.layers import ShuffleUnit
    for name in ("shufflenet_v1_g3_x0_5", "shufflenet_v1_g8_x0_5", "se_shufflenet_v1_g3_x2_0"):
        for zero in (True, False):
            model = ppzoo.create_model(name, num_classes=10, small_input=True, zero_init_last=zero)
            units = [u for u in model.sublayers() if isinstance(u, ShuffleUnit)]
            assert len(units) == 16
            for u in units:  # stride-1 and stride-2 units alike
                assert np.all(u.expand[1].weight.numpy() == (0.0 if zero else 1.0)), (name, zero)
    default = ppzoo.create_model("shufflenet_v1_g3_x0_5")  # off by default (the recorded results' init)
    assert np.all(default.stages[0][1].expand[1].weight.numpy() == 1.0)
    model = ppzoo.create_model("shufflenet_v1_g3_x0_5", num_classes=10, small_input=True, zero_init_last=True)
    model.eval()
    x = paddle.rand([2, 3, 32, 32])
    h = model.stages[0][0](model.stem(x))
    assert np.allclose(model.stages[0][1](h).numpy(), paddle.nn.functional.relu(h).numpy())  # relu(x + 0)


def test_shuffle_switch_removes_only_the_shuffle():
    on = ppzoo.create_model("shufflenet_v1_g8_x1_0")
    off = ppzoo.create_model("shufflenet_v1_g8_x1_0", shuffle=False)
    randomise_weights(on)  # with zero_init_last every branch would output 0, shuffled or not
    off.set_state_dict(on.state_dict())
    on.eval(), off.eval()
    x = paddle.rand([1, 3, 64, 64])
    assert not np.allclose(on(x).numpy(), off(x).numpy())
    assert profile_model(on).madds == profile_model(off).madds
    kinds = lambda m: [type(l).__name__ for l in m.sublayers()]  # noqa: E731
    assert kinds(on).count("ChannelShuffle") == 16 and kinds(off).count("ChannelShuffle") == 0


def test_mobilenet_v2_paddleclas_layout():
    """targets.md: PaddleClas's MobileNetV2 always expands and does not round (313.6 M MAdds)."""
    model = ppzoo.create_model("mobilenet_v2_x1_0", layout="paddleclas")
    assert len(model.blocks[0].conv) == 3
    assert math.isclose(profile_model(model).madds / 1e6, 313.6, abs_tol=0.1)
    assert ppzoo.create_model("MobileNetV2_x0_5").stem[0].weight.shape[0] == 16  # int(32 * 0.5), unrounded


def test_alexnet_original_is_two_towers():
    model = ppzoo.create_model("alexnet")
    convs = [l for l in model.features if isinstance(l, paddle.nn.Conv2D)]
    assert [c._groups for c in convs] == [1, 2, 1, 2, 2]
    assert sum(isinstance(l, paddle.nn.LocalResponseNorm) for l in model.features) == 2
    single = ppzoo.create_model("alexnet_single")
    assert [c.weight.shape[0] for c in single.features if isinstance(c, paddle.nn.Conv2D)] == [64, 192, 384, 256, 256]


def test_alexnet_lrn_follows_the_paper_formula():
    model = ppzoo.create_model("alexnet")
    lrn = next(l for l in model.features if isinstance(l, paddle.nn.LocalResponseNorm))
    x = paddle.rand([1, 5, 1, 1]) * 50
    a = x.numpy()[0, :, 0, 0]
    expected = a[2] / (2 + 1e-4 * (a ** 2).sum()) ** 0.75  # Sec. 3.3, k=2, n=5, alpha=1e-4, beta=0.75
    np.testing.assert_allclose(lrn(x).numpy()[0, 2, 0, 0], expected, rtol=1e-5)


def test_too_small_input_is_an_error_naming_the_minimum():
    model = ppzoo.create_model("alexnet")
    model.eval()
    with pytest.raises(ValueError, match=r"AlexNet: a 32x32 input leaves an empty feature map; the smallest input it "
                                         r"takes is 51x51 \(small_input=True adapts"):
        model(paddle.rand([1, 3, 32, 32]))
    # 51 -> conv1 11 -> pools 5, 2, 1 (Paddle truncates (2 - 3) / 2 towards zero); 50 -> 10, 4, 1, 0
    assert model(paddle.rand([1, 3, 51, 51])).shape == [1, 1000]
    with pytest.raises(ValueError, match="50x50 input leaves an empty feature map"):
        model(paddle.rand([1, 3, 50, 50]))
    assert ppzoo.create_model("alexnet", small_input=True).min_input_size() == 11  # 11 -> 5 -> 2 -> 1
    assert ppzoo.create_model("mobilenet_v1_x0_25").min_input_size() == 1
