"""Issue 10's models: SqueezeNet, ResNet, SE on every family, MobileNetV1 Table 4, dilated and
dynamic MobileNetV2. Published counts are in each model's registration (test_models.py checks them)."""
from functools import partial

import numpy as np
import paddle
import paddle.nn as nn
import pytest

import ppzoo
from ppzoo.analysis import count_params, profile_model
from ppzoo.deploy.export import export_model
from ppzoo.layers import DynamicConv2D, SqueezeExcite
from ppzoo.utils.weights import WeightsError

from conftest import randomise_weights

# every new name, shrunk where an option allows it (widths of the SE variants, as the tests of
# the other families use their narrowest variant)
NEW = {
    "squeezenet1_0": {}, "squeezenet1_1": {},
    "resnet18": {}, "resnet34": {}, "resnet50": {}, "se_resnet50": {},
    "mobilenet_v1_full_conv_x1_0": {"width": 0.25},
    "se_mobilenet_v1_x1_0": {"width": 0.25, "se_ratio": 0.25},
    "se_shufflenet_v1_g3_x2_0": {"width": 0.5},
    "se_mobilenet_v2_x1_0": {"width": 0.35, "se_ratio": 0.25},
    "dy_mobilenet_v2_x1_0": {}, "dy_mobilenet_v2_x0_75": {}, "dy_mobilenet_v2_x0_5": {}, "dy_mobilenet_v2_x0_35": {},
}


def test_the_table_covers_every_new_name():
    issue10 = {n for n in ppzoo.list_models(exclude="*.paddleclas") if ppzoo.model_info(n).family in ("squeezenet", "resnet")
               or n.startswith(("se_", "dy_")) or "full_conv" in n}
    assert issue10 == set(NEW)


@pytest.mark.parametrize("name", sorted(NEW))
def test_small_input_gradients_and_export(name, tmp_path):
    with paddle.no_grad():
        small = ppzoo.create_model(name, num_classes=5, small_input=True, **NEW[name]).eval()
        assert small.forward_features(paddle.rand([1, 3, 32, 32])).shape[-1] == 4  # 32x32 ends on a 4x4 map
    model = ppzoo.create_model(name, num_classes=5, **NEW[name])  # the ImageNet layout: 32x32 -> 1x1, cheap
    x = paddle.rand([2, 3, 32, 32])
    model(x).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.trainable and p.grad is None]
    assert not missing, f"no gradient for {missing[:3]}"
    randomise_weights(model, seed=1)
    with paddle.no_grad():  # random weights: a real signal for export's own check to compare
        assert np.abs(model(paddle.rand([2, 3, 32, 32])).numpy()).max() > 0.1
    meta = export_model(model, str(tmp_path), [3, 32, 32])  # runs paddle.inference on a batch, vs eager
    assert meta["checks"]["paddle_inference_max_abs_diff"] <= 1e-4


def _se_params(channels):
    """Two 1x1 convs with biases: C -> C/16 -> C."""
    return sum(2 * c * (c // 16) + c // 16 + c for c in channels)


def test_se_sits_where_the_papers_put_it():
    """Extra parameters of each SE variant = SE blocks on exactly the channels named in the docs."""
    extra = lambda se, base: count_params(ppzoo.create_model(se)) - count_params(base)  # noqa: E731
    v1 = ppzoo.create_model("mobilenet_v1_x1_0")  # after every pointwise conv
    assert extra("se_mobilenet_v1_x1_0", v1) == _se_params([b[1][0].weight.shape[0] for b in v1.blocks])
    r50 = ppzoo.create_model("resnet50")  # on each bottleneck's output, before the addition
    assert extra("se_resnet50", r50) == _se_params([b.branch[-1][0].weight.shape[0] for s in r50.stages for b in s])
    v2 = ppzoo.create_model("mobilenet_v2_x1_0")  # on the expanded channels after the depthwise conv
    assert extra("se_mobilenet_v2_x1_0", v2) == _se_params([b.conv[-2][0].weight.shape[0] for b in v2.blocks])
    sn = ppzoo.create_model("shufflenet_v1_g3_x2_0")  # on each unit's branch
    assert extra("se_shufflenet_v1_g3_x2_0", sn) == _se_params([u.expand[0].weight.shape[0] for s in sn.stages for u in s])


def test_squeeze_excite_is_the_papers_formula():
    se = SqueezeExcite(32, se_ratio=0.25)
    x = paddle.rand([2, 32, 5, 5])
    z = x.mean(axis=[2, 3], keepdim=True)
    gate = nn.functional.sigmoid(se.fc2(nn.functional.relu(se.fc1(z))))
    np.testing.assert_allclose(se(x).numpy(), (x * gate).numpy(), rtol=1e-6)
    assert se.fc1.weight.shape == [8, 32, 1, 1] and SqueezeExcite(64).reduced == 4  # r = 16 by default


def test_se_layer_norm_layer_and_act_layer_plug_into_every_family():
    se = partial(SqueezeExcite, se_ratio=0.25)
    gn = partial(nn.GroupNorm, 4)
    for name, kwargs in [("alexnet_single", {}), ("mobilenet_v1_x0_5", {}), ("mobilenet_v2_x0_5", {}),
                         ("shufflenet_v1_g4_x0_5", {}), ("squeezenet1_1", {}), ("resnet18", {})]:
        model = ppzoo.create_model(name, se_layer=se, act_layer=nn.Hardswish, norm_layer=gn, **kwargs)
        kinds = [type(m) for m in model.sublayers()]
        inside_se = {id(m) for se_block in model.sublayers() if isinstance(se_block, SqueezeExcite)
                     for m in se_block.sublayers()}
        assert SqueezeExcite in kinds, name
        assert nn.Hardswish in kinds, name
        assert not [m for m in model.sublayers() if isinstance(m, nn.ReLU) and id(m) not in inside_se], name
        assert nn.GroupNorm in kinds and nn.BatchNorm2D not in kinds, name
        model.eval()
        with paddle.no_grad():
            assert model(paddle.rand([1, 3, 96, 96])).shape == [1, 1000]


def test_se_ratio_that_leaves_no_channel_is_an_error():
    with pytest.raises(ValueError, match=r"se_ratio=0.01 leaves int\(64 \* 0.01\) = 0 channels .* se_ratio >= 0.01562"):
        ppzoo.create_model("se_mobilenet_v1_x1_0", se_ratio=0.01)
    with pytest.raises(ValueError, match="se_ratio must be a number > 0"):
        SqueezeExcite(16, se_ratio=0)


def test_mobilenet_v2_output_stride_dilates_and_keeps_the_weights():
    x = paddle.rand([1, 3, 128, 128])
    base = randomise_weights(ppzoo.create_model("mobilenet_v2_x0_35"))
    sides = {}
    for stride in (32, 16, 8):
        model = ppzoo.create_model("mobilenet_v2_x0_35", output_stride=stride)
        model.set_state_dict(base.state_dict())  # same tensors, same shapes
        model.eval()
        with paddle.no_grad():
            sides[stride] = model.forward_features(x).shape[-1]
        dw = [b.conv[-2][0] for b in model.blocks]
        assert [c._stride[0] for c in dw].count(2) == {32: 4, 16: 3, 8: 2}[stride]
    assert sides == {32: 4, 16: 8, 8: 16}  # 128 / output_stride
    dilations = [b.conv[-2][0]._dilation[0] for b in ppzoo.create_model("mobilenet_v2_x0_35", output_stride=8).blocks]
    assert dilations == [1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 4, 4, 4]  # DeepLab's rule: rate doubles per removed stride
    with pytest.raises(ValueError, match=r"output_stride must be one of \(8, 16, 32\), got 4"):
        ppzoo.create_model("mobilenet_v2_x1_0", output_stride=4)


def test_full_conv_is_table_4():
    model = ppzoo.create_model("mobilenet_v1_full_conv_x1_0")
    assert all(b[0]._groups == 1 and b[0]._kernel_size == [3, 3] for b in model.blocks)
    assert len(model.blocks) == 13


def test_squeezenet_and_resnet_layouts():
    pc = profile_model(ppzoo.create_model("squeezenet1_0", layout="paddleclas")).madds / 1e6  # noqa
    assert abs(pc - 777.2) < 0.1  # PaddleClas's floor-mode pooling (the issue's 777 M)
    fire = ppzoo.create_model("squeezenet1_0").features[1]
    assert (fire.squeeze[0].weight.shape, fire.expand3x3[0].weight.shape) == ([16, 96, 1, 1], [64, 16, 3, 3])
    ref, pcl = ppzoo.create_model("resnet18"), ppzoo.create_model("resnet18", layout="paddleclas")
    assert isinstance(ref.stages[0][0].shortcut, nn.Identity) and not isinstance(pcl.stages[0][0].shortcut, nn.Identity)
    assert count_params(pcl) - count_params(ref) == 64 * 64 + 128
    b = ppzoo.create_model("resnet50").stages[1][0]
    assert b.branch[0][0]._stride == [1, 1] and b.branch[1][0]._stride == [2, 2]  # v1.5: stride on the 3x3


def test_bad_options_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"depth must be one of \[18, 34, 50, 101, 152\], got 20"):
        ppzoo.create_model("resnet18", depth=20)
    with pytest.raises(ValueError, match=r"version must be one of \['1_0', '1_1'\], got '1_2'"):
        ppzoo.create_model("squeezenet1_0", version="1_2")
    with pytest.raises(ValueError, match="width must be > 0"):
        ppzoo.create_model("dy_mobilenet_v2_x0_5", width=-1)
    with pytest.raises(ValueError, match=r"num_kernels \(K\) must be an int >= 1, got 0"):
        ppzoo.create_model("dy_mobilenet_v2_x0_5", num_kernels=0)
    path = tmp_path / "r34.pdparams"
    paddle.save(ppzoo.create_model("resnet34", num_classes=10).state_dict(), str(path))
    with pytest.raises(WeightsError, match=r"does not fit ResNet: .*unknown to the model \(first: 'stages.0.2.branch"):
        ppzoo.create_model("resnet18", num_classes=10, pretrained=str(path))


# ---------------------------------------------------------------------------- dynamic convolution

@pytest.mark.parametrize("groups,cin,cout", [(1, 8, 12), (8, 8, 8), (2, 8, 6)])
def test_dynamic_conv_is_the_attention_weighted_kernel_per_image(groups, cin, cout):
    layer = DynamicConv2D(cin, cout, 3, 2, 1, groups=groups, num_kernels=3)
    layer.conv.bias.set_value(paddle.randn(layer.conv.bias.shape))
    x = paddle.randn([4, cin, 9, 9])
    pi = layer.attention(x).numpy()
    np.testing.assert_allclose(pi.sum(1), 1.0, rtol=1e-6)
    expected = np.concatenate([paddle.nn.functional.conv2d(
        x[i:i + 1], paddle.to_tensor(np.tensordot(pi[i], layer.conv.weight.numpy(), 1)),
        paddle.to_tensor(pi[i] @ layer.conv.bias.numpy()), 2, 1, groups=groups).numpy() for i in range(4)])
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    counted = profile_model(layer, (cin, 9, 9))  # attention FCs + aggregation + one conv
    conv = next(r for r in counted.layers if r.type == "AggregatedConv2D")
    assert conv.madds == 3 * cout * (cin // groups) * 9 + 3 * cout + cout * 25 * (cin // groups) * 9


def test_temperature_schedule_and_hook_resume():
    from ppzoo.layers import TemperatureAnnealing, set_temperature, temperature_at

    assert [temperature_at(e) for e in (0, 5, 10, 20)] == [30.0, 15.5, 1.0, 1.0]  # 30 -> 1 over 10 epochs
    model = ppzoo.create_model("dy_mobilenet_v2_x0_35", num_classes=3)
    temps = lambda m: {round(l.temperature, 6) for l in m.sublayers() if isinstance(l, DynamicConv2D)}  # noqa: E731
    assert temps(model) == {1.0}  # built for inference
    hook = TemperatureAnnealing(steps_per_epoch=4, anneal_epochs=2)
    hook.prepare(model)
    assert temps(model) == {30.0}
    hook.after_step(model, 4)  # one epoch of 2 done
    assert temps(model) == {15.5}
    other, resumed = ppzoo.create_model("dy_mobilenet_v2_x0_35", num_classes=3), TemperatureAnnealing(4, 2)
    resumed.prepare(other)
    resumed.set_state_dict(hook.state_dict())
    assert temps(other) == {15.5}
    assert set_temperature(model, 1.0) == 17 * 3 - 1  # every conv of the 17 blocks (the first has no expansion)
    with pytest.raises(ValueError, match="has no DynamicConv2D layer to anneal"):
        TemperatureAnnealing(4).prepare(ppzoo.create_model("mobilenet_v2_x0_35"))
    # the trainer asks the model for the hooks its layers need: one annealer, over at most half the run
    hooks = model.training_hooks(steps_per_epoch=5, epochs=4)
    assert [type(h) for h in hooks] == [TemperatureAnnealing] and hooks[0].anneal_epochs == 2.0
    assert ppzoo.create_model("dy_mobilenet_v2_x0_35").training_hooks(5, 300)[0].anneal_epochs == 10.0
    assert ppzoo.create_model("mobilenet_v2_x0_35").training_hooks(5, 4) == []
