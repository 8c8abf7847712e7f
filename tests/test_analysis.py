"""Counting: single layers against closed-form formulas, Table 2 of MobileNetV1, model
totals, paddle.flops, the report and tools/analyze.py."""
import json

import numpy as np
import paddle
import paddle.nn as nn
import pytest

import ppzoo
from ppzoo.analysis import analyze, format_report, paddle_flops, profile_model, resolve_models, summarize_by_kind
from ppzoo.layers import ChannelShuffle, InvertedResidual, ShuffleUnit

from conftest import run_tool


def only(model, shape):
    """The records of a single-layer model."""
    return profile_model(model, shape).layers


@pytest.mark.parametrize("cin,cout,k,stride,groups,h", [
    (16, 32, 1, 1, 1, 14),   # pointwise
    (16, 32, 3, 1, 1, 14),   # full 3x3
    (32, 32, 3, 2, 32, 14),  # depthwise, stride 2
    (24, 48, 1, 1, 4, 7),    # grouped 1x1
])
def test_conv_madds_and_mac(cin, cout, k, stride, groups, h):
    conv = nn.Conv2D(cin, cout, k, stride, padding=k // 2, groups=groups, bias_attr=False)
    (rec,) = only(conv, [cin, h, h])
    ho = (h + 2 * (k // 2) - k) // stride + 1
    madds = cout * ho * ho * (cin // groups) * k * k
    assert rec.madds == madds
    assert rec.mac == h * h * cin + ho * ho * cout + cout * (cin // groups) * k * k
    assert rec.activations == ho * ho * cout and rec.params == rec.weights == cout * cin // groups * k * k


def test_shufflenet_v2_mac_formulas_for_1x1_convs():
    """ShuffleNetV2 Sec. 2: MAC = hw(c1 + c2) + c1c2 >= 2 sqrt(hw B) + B / hw, equal at c1 = c2;
    with g groups MAC = hw c1 + B g / c1 + B / hw."""
    h = w = 28
    for c1, c2 in [(64, 64), (32, 128), (16, 256)]:
        (rec,) = only(nn.Conv2D(c1, c2, 1, bias_attr=False), [c1, h, w])
        b = h * w * c1 * c2
        assert rec.mac == h * w * (c1 + c2) + c1 * c2
        assert rec.mac >= 2 * np.sqrt(h * w * b) + b / (h * w) - 1e-6
    (equal,) = only(nn.Conv2D(64, 64, 1, bias_attr=False), [64, h, w])
    assert equal.mac == pytest.approx(2 * np.sqrt(h * w * (h * w * 64 * 64)) + 64 * 64)
    for g in (1, 2, 4, 8):
        c = 64
        (rec,) = only(nn.Conv2D(c, c, 1, groups=g, bias_attr=False), [c, h, w])
        b = h * w * c * c // g
        assert rec.madds == b and rec.mac == h * w * c + b * g // c + b // (h * w)


def test_linear_pooling_norm_and_activation():
    (fc,) = only(nn.Linear(64, 10), [64])
    assert fc.madds == 640 and fc.mac == 64 + 10 + 640 + 10 and fc.weights == 640 and fc.params == 650
    (pool,) = only(nn.MaxPool2D(3, 2, 1), [8, 16, 16])
    assert pool.madds == 0 and pool.mac == 8 * 16 * 16 + 8 * 8 * 8
    (gap,) = only(nn.AdaptiveAvgPool2D(1), [8, 7, 7])
    assert gap.mac == 8 * 49 + 8
    (bn,) = only(nn.BatchNorm2D(8), [8, 5, 5])
    assert bn.madds == 0 and bn.mac == 2 * 8 * 25 + 4 * 8 and bn.params == 16  # reads scale, shift, mean, var
    (relu,) = only(nn.ReLU(), [8, 5, 5])
    assert relu.mac == 2 * 200


def test_elementwise_add_concat_and_channel_shuffle():
    (shuffle,) = only(ChannelShuffle(3), [12, 5, 5])
    assert shuffle.madds == 0 and shuffle.mac == 2 * 12 * 25 and shuffle.kind == "channelshuffle"
    block = InvertedResidual(16, 16, 1, expand_ratio=6)
    add = [r for r in profile_model(block, [16, 8, 8]).layers if r.type == "Add"]
    assert len(add) == 1 and add[0].mac == 3 * 16 * 64 and add[0].name.endswith(".add")
    unit = ShuffleUnit(24, 96, 2, groups=3, compress_groups=1)
    concat = [r for r in profile_model(unit, [24, 8, 8]).layers if r.type == "Concat"]
    assert len(concat) == 1 and concat[0].mac == 2 * 96 * 16 and concat[0].output_shape == [1, 96, 4, 4]


def test_mobilenet_v1_table2_shares():
    """MobileNetV1 Table 2: 94.86 / 3.06 / 1.19 / 0.18 % of Mult-Adds and 74.59 / 1.06 / 0.02 /
    24.33 % of parameters. The first conv's 1.19 % is a transposition of 1.91 %: the paper's
    column must sum to 100 % and only 1.91 does (3*3*3*32*112*112 / 568.7 M = 1.906 %)."""
    rows = {r["kind"]: r for r in summarize_by_kind(profile_model(ppzoo.create_model("mobilenet_v1_x1_0")))}
    expected = {"conv 1x1": (94.86, 74.59), "depthwise conv 3x3": (3.06, 1.06), "conv 3x3": (1.91, 0.02),
                "fc": (0.18, 24.33)}
    for kind, (madds, weights) in expected.items():
        assert abs(rows[kind]["madds_share"] - madds) < 0.1, kind
        assert abs(rows[kind]["weights_share"] - weights) < 0.1, kind
    assert abs(rows["conv 3x3"]["madds"] - 3 * 3 * 3 * 32 * 112 * 112) == 0


@pytest.mark.parametrize("name", ["alexnet", "mobilenet_v2_x1_0", "shufflenet_v1_g8_x1_0"])
def test_model_totals_equal_the_zoo_counter_and_the_layer_sums(name):
    model = ppzoo.create_model(name)
    shape = ppzoo.model_info(name).input_size
    stats = profile_model(model, shape)
    assert stats.madds == sum(r.madds for r in stats.layers) == ppzoo.analysis.count_madds(model, shape)
    assert stats.params == ppzoo.analysis.count_params(model) == sum(r.params for r in stats.layers)
    assert stats.mac == sum(r.mac for r in stats.layers) and stats.mac_bytes == 4 * stats.mac


def test_paddle_flops_reference():
    model = paddle.vision.models.mobilenet_v1()
    ours = paddle_flops(model, [3, 224, 224])
    assert abs(ours / 1e6 - 578.9) < 0.1  # targets.md: paddle.flops gives 578.9 M for MobileNetV1 1.0
    if int(np.__version__.split(".")[0]) < 2:  # paddle.flops itself breaks under NumPy 2 (Paddle 3.3)
        assert ours == paddle.flops(model, [1, 3, 224, 224])


def test_resolve_models_and_bad_names():
    assert resolve_models(["mobilenet_v1_x*"])[0] == "mobilenet_v1_x0_25" and len(resolve_models(["mobilenet_v1_x*"])) == 4
    assert resolve_models(["MobileNetV2", "alexnet", "alexnet"]) == ["mobilenet_v2_x1_0.paddleclas", "alexnet"]
    assert abs(analyze(["MobileNetV2"])[0]["madds"] / 1e6 - 313.6) < 0.1  # PaddleClas's layout, as create_model
    with pytest.raises(ValueError, match=r"pattern 'efficientnet\*' matches no model"):
        resolve_models(["efficientnet*"])
    with pytest.raises(ValueError, match="unknown model 'mobilenet_v4'"):
        resolve_models(["mobilenet_v4"])
    with pytest.raises(ValueError, match=r"alexnet at 32x32: .*smallest input it takes is 51x51"):
        analyze(["alexnet"], input_size=32)


def test_report_formats():
    results = analyze(["mobilenet_v1_x0_25"], input_size=64)
    table = format_report(results, "table", per_layer=True, by_kind=True)
    assert table.startswith("MAdds: multiply-adds of Conv2D + Linear") and "mobilenet_v1_x0_25 per layer" in table
    doc = json.loads(format_report(results, "json"))
    layer = doc["models"][0]["layers"][0]
    assert {"name", "type", "params", "madds", "mac"} <= set(layer) and doc["convention"]
    assert doc["models"][0]["madds"] == sum(layer["madds"] for layer in doc["models"][0]["layers"])
    stem_conv, stem_bn = doc["models"][0]["layers"][:2]  # Paddle's rules: a BN charges 2 per element
    assert stem_conv["paddle_flops"] == stem_conv["madds"] and stem_bn["paddle_flops"] == 2 * stem_bn["activations"]
    assert doc["models"][0]["paddle_flops"] == sum(layer["paddle_flops"] for layer in doc["models"][0]["layers"])
    assert layer["mac_bytes"] == 4 * layer["mac"]
    csv_text = format_report(results, "csv")
    assert csv_text.splitlines()[0].startswith("model,input,params (M)")
    assert format_report(results, "markdown").startswith("| model |")


def test_latency_and_the_tool(tmp_path):
    result = run_tool("tools/analyze.py", "mobilenet_v1_x0_25", "shufflenet_v1_g3_x0_25", "--input-size", "64",
                      "--latency", "--repeat", "3", "--warmup", "1", "--format", "json")
    assert result.returncode == 0, result.stderr
    models = json.loads(result.stdout)["models"]
    latency = models[0]["latency"]
    assert latency["predictor_p50_ms"] > 0 and latency["dygraph_p90_ms"] >= latency["dygraph_p50_ms"]
    for args, message in [(["nothing*"], "pattern 'nothing*' matches no model"),
                          (["alexnet", "--input-size", "40"], "smallest input it takes is 51x51"),
                          (["mobilenet_v9"], "unknown model 'mobilenet_v9'")]:
        bad = run_tool("tools/analyze.py", *args)
        assert bad.returncode == 2 and message in bad.stderr and bad.stderr.count("\n") == 1, bad.stderr


def test_latency_of_a_model_that_cannot_be_exported_is_a_clear_error():
    class EagerOnly(nn.Layer):  # some layers only run in dygraph (Paddle's SOT traces most numpy use)
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            if not paddle.in_dynamic_mode():
                raise RuntimeError("this layer runs eagerly only")
            return self.fc(x.mean(axis=[2, 3]))

    with pytest.raises(ValueError, match="latency needs the model exported, which failed"):
        ppzoo.analysis.measure_latency(EagerOnly(), [3, 8, 8], repeat=1, warmup=0)


def test_plots(tmp_path):
    pytest.importorskip("matplotlib", reason="plot extra not installed")
    from ppzoo.analysis.plot import plot_layers, plot_tradeoffs

    results = analyze(["mobilenet_v1_x0_25", "mobilenet_v1_x0_5", "shufflenet_v1_g3_x0_25"], input_size=64)
    plot_tradeoffs(results, str(tmp_path / "t.png"))
    plot_layers(results[0], str(tmp_path / "l.png"))
    assert (tmp_path / "t.png").stat().st_size > 10_000 and (tmp_path / "l.png").stat().st_size > 10_000
