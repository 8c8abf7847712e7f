"""tools/analyze.py --roofline / --profile on tiny models: fields, fractions, the
per-type times against the profiled total, the bound's closed form and the fusion rules."""
import json

import numpy as np
import paddle.nn as nn
import pytest

from ppzoo.analysis import analyze, format_report, profile_model
from ppzoo.analysis import roofline as rf
from ppzoo.layers import ConvNormAct, ShuffleUnit

from conftest import run_tool


@pytest.fixture
def small_limits(monkeypatch):
    """A 256^3 GEMM and 1 MiB bandwidth tensors keep the tests quick; the code is the same."""
    monkeypatch.setattr(rf, "GEMM_SIZE", 256)
    monkeypatch.setattr(rf, "STREAM_MIB", (1, 4))


def test_machine_limits_fields(small_limits):
    limits = rf.machine_limits(1, repeat=3, warmup=1, gemm_size=256, stream_mib=(1, 4))
    assert set(limits["peak_flops"]) == ({"float32", "bfloat16"} if rf.bfloat16_supported() else {"float32"})
    assert all(v > 1e8 for v in limits["peak_flops"].values())  # at least 0.1 GFLOP/s, surely
    assert sorted(map(int, limits["bandwidth"])) == [2 * 2 ** 20, 8 * 2 ** 20] and min(limits["bandwidth"].values()) > 1e7
    assert rf.bandwidth_at(limits, 100) == limits["bandwidth"][str(2 * 2 ** 20)]
    assert rf.bandwidth_at(limits, 1e12) == limits["bandwidth"][str(8 * 2 ** 20)]


def test_bound_of_one_conv_is_the_closed_form():
    conv = nn.Conv2D(16, 32, 3, padding=1, bias_attr=False)
    stats = profile_model(conv, [16, 8, 8])
    limits = {"peak_flops": {"float32": 1e10}, "bandwidth": {"1000": 1e9, str(2 ** 40): 1e8}}
    batch = 4
    flops = 2 * 32 * 8 * 8 * 16 * 9 * batch
    moved_bytes = 4 * (batch * (16 * 64 + 32 * 64) + 32 * 16 * 9)
    out = rf.roofline(stats, limits, batch, latency_ms=50.0)
    expected = max(flops / 1e10, moved_bytes / 1e8) * 1e3  # more than 1000 bytes: the second point
    assert out["bound_ms"] == pytest.approx(expected) and out["layers"][0]["limited_by"] == "memory"
    assert out["achieved_gflops"] == pytest.approx(flops / 0.05 / 1e9)
    assert out["latency_over_bound"] == pytest.approx(50.0 / expected)


def test_fusion_rules_follow_the_predictor_passes():
    groups = rf.layer_groups(profile_model(ConvNormAct(8, 16, 3), [8, 6, 6]))
    assert [(g["kind"], g["group"], g["fused"]) for g in groups] == [
        ("conv 3x3", "conv", False), ("norm", "conv", True), ("activation", "conv", True)]
    unit = rf.layer_groups(profile_model(ShuffleUnit(48, 48, 1, groups=3), [48, 6, 6]))
    add = next(g for g in unit if g["kind"] == "add")
    assert add["group"] == "conv" and add["fused"] and unit[-1]["fused"]  # conv + BN + add + ReLU: one op
    assert next(g for g in unit if g["kind"] == "channelshuffle")["group"] == "shuffle"
    down = rf.layer_groups(profile_model(ShuffleUnit(24, 48, 2, groups=3, compress_groups=1), [24, 6, 6]))
    assert [g["group"] for g in down if g["kind"] in ("concat", "pooling")] == ["pooling", "concat"]
    assert not down[-1]["fused"]  # the ReLU after the concat runs on its own


def test_roofline_and_profile_on_a_tiny_model(small_limits):
    (row,) = analyze(["shufflenet_v1_g3_x0_25"], input_size=32, small_input=True, batch_size=2, repeat=3, warmup=1,
                     roofline=True, profile=True)
    d = row["deployed"]
    assert {"latency_ms", "roofline", "profile", "groups", "limits", "protocol"} <= set(d)
    roof = d["roofline"]
    for key in ("peak_share", "bound_share"):
        assert 0 < roof[key] <= 1, (key, roof[key])
    assert roof["latency_over_bound"] >= 1 and roof["achieved_gflops"] > 0
    assert roof["bound_ms"] == pytest.approx(sum(layer["bound_ms"] for layer in roof["layers"]))
    prof = d["profile"]
    # per-type times sum to the profiled run minus what runs between operators (executor, profiler)
    assert 0.7 * prof["profiled_ms"] <= prof["ops_ms"] <= prof["profiled_ms"]
    assert prof["profiled_ms"] <= 3 * d["latency_ms"]["float32"]  # the profiler's overhead is bounded
    ops = {o["op"] for o in prof["ops"]}
    assert "fused_conv2d" in ops and "channel_shuffle" not in ops  # the exported shuffle stays in oneDNN
    groups = {g["group"]: g for g in d["groups"]}
    assert sum(g["madds_share"] for g in groups.values()) == pytest.approx(1.0)
    assert sum(g["ms"] for g in groups.values()) == pytest.approx(prof["ops_ms"])
    for g in groups.values():
        assert 0 <= g["time_share"] <= 1 and 0 <= g["mac_share"] <= 1
    assert groups["conv"]["madds_share"] > 0.9 and 0 < groups["conv"]["time_share"] <= 1
    text = format_report([row], "table")
    assert "roofline (exported predictor)" in text and "protocol: peak" in text and "per operator group" in text


def test_the_tool_flags_and_plot(tmp_path):
    pytest.importorskip("matplotlib", reason="plot extra not installed")
    result = run_tool("tools/analyze.py", "mobilenet_v1_x0_25", "--input-size", "32", "--roofline", "--profile",
                      "--repeat", "2", "--warmup", "1", "--format", "json", "--plot", str(tmp_path / "p.png"))
    assert result.returncode == 0, result.stderr
    (model,) = json.loads(result.stdout)["models"]
    assert 0 < model["deployed"]["roofline"]["peak_share"] <= 1 and model["deployed"]["groups"]
    assert (tmp_path / "p.png").stat().st_size > 1000
    bad = run_tool("tools/analyze.py", "mobilenet_v1_x0_25", "--roofline", "--batch-size", "0")
    assert bad.returncode == 2 and "--batch-size must be >= 1, got 0" in bad.stderr, bad.stderr


def test_profile_needs_operators():
    with pytest.raises(RuntimeError, match="recorded no operator"):
        rf.profile_predictor(lambda: np.zeros(1), steps=2, warmup=0)


def test_cost_table_multiply_and_the_warning_for_a_layer_without_a_rule():
    import warnings

    import paddle

    from ppzoo.analysis import cost_rule, register_cost

    class Gate(nn.Layer):  # an SE-like container: x * sigmoid-gate, element-wise
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2D(4, 4, 1)

        def forward(self, x):
            return x * nn.functional.sigmoid(self.conv(x))

    (conv, mul) = profile_model(Gate(), [4, 3, 3]).layers
    assert mul.kind == "multiply" and mul.madds == 0 and mul.mac == 3 * 36 and mul.activations == 36

    class Binary(nn.Layer):  # a leaf with parameters and no rule
        def __init__(self):
            super().__init__()
            self.weight = self.create_parameter([4, 4])

        def forward(self, x):
            return paddle.matmul(x, self.weight)

    with pytest.warns(UserWarning, match=r"no cost rule for Binary \(first at 'Binary'\).*register_cost"):
        (rec,) = profile_model(Binary(), [3, 4]).layers
    assert rec.madds == 0
    register_cost(Binary, lambda layer, ins, outs: (ins[0].shape[1] * 16, 7))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            (rec,) = profile_model(Binary(), [3, 4]).layers
        assert rec.madds == 48 and rec.mac == 7 and cost_rule(type("Sub", (Binary,), {})) is not None
    finally:
        from ppzoo.analysis import profile as p

        del p._COST_RULES[Binary]
    with pytest.raises(ValueError, match="layer_type must be an nn.Layer subclass"):
        register_cost(int, lambda *a: 0)
