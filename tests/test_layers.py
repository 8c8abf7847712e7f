import numpy as np
import paddle
import paddle.nn as nn
import pytest

from ppzoo.layers import (ChannelShuffle, ConvNormAct, DepthwiseSeparableConv, InvertedResidual, ShuffleUnit,
                          channel_shuffle, make_divisible, resolve_groups)
from ppzoo.layers import LocalResponseNorm, onnx_compatible
from ppzoo.layers.onnx_compat import tracing_for_onnx


def notes_channel_shuffle(x, groups):
    """The notes' reshape / transpose / reshape version."""
    n, c, h, w = x.shape
    x = paddle.reshape(x, [n, groups, c // groups, h, w])
    x = paddle.transpose(x, [0, 2, 1, 3, 4])
    return paddle.reshape(x, [n, c, h, w])


class NotesGroupConv(nn.Layer):
    """The notes' PointwiseGroupConv2d: one 1x1 conv per group in a Python loop."""

    def __init__(self, in_channels, out_channels, groups):
        super().__init__()
        self.groups = groups
        self.convs = nn.LayerList([nn.Conv2D(in_channels // groups, out_channels // groups, 1)
                                   for _ in range(groups)])

    def forward(self, x):
        size = x.shape[1] // self.groups
        return paddle.concat([conv(x[:, i * size:(i + 1) * size]) for i, conv in enumerate(self.convs)], axis=1)


@pytest.mark.parametrize("shape,groups", [((2, 12, 5, 7), 3), ((1, 240, 4, 4), 3), ((3, 16, 2, 2), 8), ((1, 6, 3, 3), 6)])
def test_channel_shuffle_equals_reshape_transpose(shape, groups):
    x = paddle.rand(shape)
    np.testing.assert_array_equal(channel_shuffle(x, groups).numpy(), notes_channel_shuffle(x, groups).numpy())
    np.testing.assert_array_equal(ChannelShuffle(groups)(x).numpy(), notes_channel_shuffle(x, groups).numpy())


def test_onnx_compatible_shuffle_traces_reshape_transpose_and_restores(tmp_path):
    x = paddle.rand([2, 12, 3, 3])
    fused = channel_shuffle(x, 3).numpy()
    with onnx_compatible():
        with onnx_compatible():
            pass
        np.testing.assert_array_equal(channel_shuffle(x, 3).numpy(), fused)  # still the reshape form inside
        paddle.jit.save(ChannelShuffle(3), str(tmp_path / "m"),
                        input_spec=[paddle.static.InputSpec([None, 12, 3, 3], "float32")])
    program = (tmp_path / "m.json").read_text()
    assert "channel_shuffle" not in program and "transpose" in program
    assert not tracing_for_onnx()  # restored (exports always trace the transpose form: tests/test_slow_paths.py)


def test_channel_shuffle_moves_channels_as_the_paper_says():
    x = paddle.arange(6, dtype="float32").reshape([1, 6, 1, 1])  # groups (0 1 2) (3 4 5)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]


def test_channel_shuffle_rejects_groups_that_do_not_divide():
    with pytest.raises(ValueError, match=r"10 channels cannot be split into groups=3.*\[1, 2, 5, 10\]"):
        channel_shuffle(paddle.rand([1, 10, 2, 2]), 3)
    with pytest.raises(ValueError, match="positive int"):
        channel_shuffle(paddle.rand([1, 10, 2, 2]), 0)


@pytest.mark.parametrize("cin,cout,groups", [(12, 24, 3), (48, 96, 8), (16, 16, 4)])
def test_grouped_conv_equals_the_notes_loop_over_groups(cin, cout, groups):
    ours = ConvNormAct(cin, cout, 1, groups=groups, norm_layer=None, act_layer=None)
    conv = ours[0]
    assert conv._groups == groups and len(ours) == 1  # ONE grouped Conv2D, nothing else
    loop = NotesGroupConv(cin, cout, groups)
    per = cout // groups
    for i, c in enumerate(loop.convs):
        c.weight.set_value(conv.weight[i * per:(i + 1) * per])
        c.bias.set_value(conv.bias[i * per:(i + 1) * per])
    x = paddle.rand([2, cin, 5, 5])
    np.testing.assert_allclose(ours(x).numpy(), loop(x).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cin,cout,expected", [
    (64, 64, 8),     # sqrt(64) = 8 divides both
    (240, 240, 15),  # floor(sqrt(240)) = 15 divides 240
    (24, 60, 4),     # floor(sqrt(24)) = 4 divides 24 and 60
    (50, 100, 5),    # 7 does not divide 50: nearest common divisors 5 (|7-5| = 2) and 10 (3)
    (10, 7, 1),      # gcd 1
])
def test_auto_groups_follow_the_notes_rule(cin, cout, expected):
    assert resolve_groups("auto", cin, cout) == expected
    assert ConvNormAct(cin, cout, 1, groups="auto")[0]._groups == expected


def test_groups_that_do_not_divide_are_rejected_with_valid_choices():
    with pytest.raises(ValueError, match=r"groups=3 does not divide in_channels=8.*valid groups: \[1, 2, 4, 8\]"):
        ConvNormAct(8, 16, 1, groups=3)
    with pytest.raises(ValueError, match="positive int or 'auto'"):
        resolve_groups("many", 8, 8)


def test_make_divisible_keeps_90_percent():
    assert make_divisible(32 * 0.35, 8) == 16  # 8 would lose more than 10 %
    assert make_divisible(1280 * 1.4, 8) == 1792
    assert make_divisible(24, 8) == 24
    assert make_divisible(3, 8) == 8


def test_conv_norm_act_layers_and_bias():
    block = ConvNormAct(3, 8, 3, stride=2)
    assert [type(m).__name__ for m in block] == ["Conv2D", "BatchNorm2D", "ReLU"]
    assert block[0].bias is None
    assert ConvNormAct(3, 8, norm_layer=None, act_layer=None)[0].bias is not None
    assert block(paddle.rand([1, 3, 9, 9])).shape == [1, 8, 5, 5]


def test_depthwise_separable_is_depthwise_then_pointwise():
    block = DepthwiseSeparableConv(16, 32, stride=2)
    assert block[0][0]._groups == 16 and block[0][0].weight.shape == [16, 1, 3, 3]
    assert block[1][0].weight.shape == [32, 16, 1, 1]
    assert block(paddle.rand([1, 16, 8, 8])).shape == [1, 32, 4, 4]


def test_inverted_residual_structure():
    first = InvertedResidual(32, 16, 1, expand_ratio=1)
    assert len(first.conv) == 2 and not first.use_residual  # no expansion conv at t=1
    assert len(InvertedResidual(32, 16, 1, expand_ratio=1, always_expand=True).conv) == 3
    block = InvertedResidual(24, 24, 1, expand_ratio=6)
    assert block.use_residual and block.conv[0][0].weight.shape == [144, 24, 1, 1]
    assert isinstance(block.conv[-1][-1], nn.BatchNorm2D)  # linear bottleneck: no activation
    assert not InvertedResidual(24, 24, 2, 6).use_residual
    x = paddle.rand([1, 24, 8, 8])
    np.testing.assert_allclose(block(x).numpy(), (x + block.conv(x)).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="stride must be 1 or 2"):
        InvertedResidual(24, 24, 3, 6)


def test_shuffle_unit_stride1_adds_and_stride2_concatenates():
    unit = ShuffleUnit(240, 240, 1, groups=3)
    unit.eval()
    assert unit.compress[0]._groups == 3 and unit.expand[0]._groups == 3 and unit.depthwise[0]._groups == 60
    assert len(unit.depthwise) == 2  # BN, no ReLU after the depthwise conv
    x = paddle.rand([2, 240, 7, 7])
    branch = unit.expand(unit.depthwise(unit.shuffle(unit.compress(x))))
    np.testing.assert_allclose(unit(x).numpy(), paddle.nn.functional.relu(x + branch).numpy(), rtol=1e-5)

    down = ShuffleUnit(24, 240, 2, groups=3, compress_groups=1)
    down.eval()
    assert down.compress[0]._groups == 1 and down.expand[0].weight.shape == [216, 20, 1, 1]
    y = down(paddle.rand([1, 24, 8, 8]))
    assert y.shape == [1, 240, 4, 4]


def test_shuffle_unit_without_shuffle_and_bad_shapes():
    assert isinstance(ShuffleUnit(48, 48, 1, groups=3, shuffle=False).shuffle, nn.Identity)
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        ShuffleUnit(24, 48, 1, groups=3)
    with pytest.raises(ValueError, match="must exceed"):
        ShuffleUnit(48, 48, 2, groups=3)


def test_lrn_onnx_form_equals_paddle_form_and_avoids_pad3d(tmp_path):
    lrn = LocalResponseNorm()  # AlexNet's k=2, n=5, alpha=1e-4, beta=0.75 (paper convention)
    x = paddle.rand([2, 7, 3, 3]) * 40
    a = x.numpy()
    padded = np.pad(a ** 2, [(0, 0), (2, 2), (0, 0), (0, 0)])
    expected = a / (2 + 1e-4 * sum(padded[:, i:i + 7] for i in range(5))) ** 0.75
    np.testing.assert_allclose(lrn(x).numpy(), expected, rtol=1e-5)
    with onnx_compatible():
        np.testing.assert_allclose(lrn(x).numpy(), expected, rtol=1e-5)
        paddle.jit.save(lrn, str(tmp_path / "m"), input_spec=[paddle.static.InputSpec([None, 7, 3, 3], "float32")])
    assert "pad3d" not in (tmp_path / "m.json").read_text()  # paddle2onnx writes its pad value wrongly
