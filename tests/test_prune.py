"""Structured pruning on every family of the registry, its constraints and its bad inputs."""
import json

import numpy as np
import paddle
import paddle.nn as nn
import pytest

import ppzoo
from ppzoo.analysis.profile import count_madds
from ppzoo.analysis.report import analyze, resolve_models
from ppzoo.compress import save_compressed
from ppzoo.compress.prune import Pruner, UnmappedOperation, make_inert, trace_channels
from ppzoo.compress.prune.sensitivity import plot_sensitivity, save_sensitivity, sensitivity, sensitivity_plan
from ppzoo.compress.prune.spec import check_prune
from ppzoo.config import ConfigError
from ppzoo.deploy.export import export_model
from ppzoo.registry import list_models, model_info
from ppzoo.utils.weights import WeightsError

from conftest import randomise_weights

SIZE = (3, 32, 32)


def _one_per_family():
    best = {}
    for name in list_models():
        if "." in name:
            continue
        info = model_info(name)
        key = info.madds if info.madds is not None else float("inf")
        if info.family not in best or key < best[info.family][0]:
            best[info.family] = (key, name)
    return sorted(name for _, name in best.values())


# one model per family, plus AlexNet's two-tower layout (groups=2 towers, LRN) beside its single-tower one
FAMILIES = sorted(set(_one_per_family()) | {"alexnet"})


def _build(name, seed=0):
    return randomise_weights(ppzoo.create_model(name, num_classes=10, small_input=True), seed)


def _arch(name):
    return {"name": name, "class_num": 10, "small_input": True}


@pytest.fixture(scope="module", params=FAMILIES)
def pruned(request):
    name = request.param
    model = _build(name)
    pruner = Pruner(model, "l1_norm", SIZE)
    plan = pruner.uniform(0.3)
    return name, model, pruner, plan, pruner.apply(plan, arch=_arch(name))


def test_pruned_model_equals_the_inert_unpruned_one(pruned):
    name, model, pruner, plan, small = pruned
    assert plan.removed.any()
    x = paddle.to_tensor(np.random.default_rng(1).standard_normal([2, *SIZE]).astype("float32"))
    inert = make_inert(_build(name), pruner.graph, plan.removed)
    with paddle.no_grad():
        ref, out, full = inert(x).numpy(), small(x).numpy(), model(x).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    assert np.abs(full - ref).max() > 1e-3 * np.abs(full).max()  # the removed channels did matter


def test_channel_counts_groups_and_madds_fall_as_computed(pruned):
    name, model, pruner, plan, small = pruned
    keep = ~plan.removed
    for node in pruner.graph.nodes:
        layer = small
        for part in node.name.split("."):
            layer = getattr(layer, part)
        if node.kind == "norm":
            assert layer._num_features == keep[node.in_atoms].sum(), node.name
        elif node.kind == "linear":
            assert list(layer.weight.shape) == [keep[node.in_atoms].sum() * node.in_rep, keep[node.out_atoms].sum()]
        else:
            assert (layer._in_channels, layer._out_channels) == (keep[node.in_atoms].sum(), keep[node.out_atoms].sum())
            assert layer._in_channels % layer._groups == 0 and layer._out_channels % layer._groups == 0, node.name
            if node.kind == "conv":
                assert layer._groups == node.groups, node.name
    for group, ratio in plan.achieved.items():
        assert 0.0 <= ratio <= 0.3 + 1e-9, group
    assert count_madds(small, SIZE) == pruner.madds(plan) < 0.85 * count_madds(model, SIZE)
    assert pruner.base_madds == count_madds(model, SIZE)


def test_residual_and_shuffle_ties_share_one_fate(pruned):
    _, _, pruner, plan, _ = pruned
    for tie in pruner.graph.ties:
        assert len(set(plan.removed[tie].tolist())) == 1
    for layer, side, atoms, g in pruner.graph.partitions:  # every block of a grouped layer loses the same number
        lost = [int(b.sum()) for b in np.split(plan.removed[atoms], g)]
        assert len(set(lost)) == 1, (layer, side, lost)


def test_pruned_model_saves_rebuilds_and_exports(pruned, tmp_path):
    name, model, pruner, plan, small = pruned
    arch_file = save_compressed(small, str(tmp_path / "pruned"), _arch(name))
    rebuilt = ppzoo.create_model(arch_file, num_classes=10, pretrained=str(tmp_path / "pruned.pdparams"))
    rebuilt.eval()
    x = paddle.randn([1, *SIZE])
    with paddle.no_grad():
        np.testing.assert_allclose(rebuilt(x).numpy(), small(x).numpy(), rtol=1e-5, atol=1e-6)
    meta = export_model(rebuilt, str(tmp_path / "export"), SIZE, name=name)  # verify=True compares the program
    assert meta
    row = analyze(resolve_models([arch_file]), input_size=SIZE[1])[0]  # tools/analyze.py takes the arch file
    assert row["madds"] == pruner.madds(plan) and row["published_top1"] is None
    with pytest.raises(WeightsError, match=r"pruned\.arch\.json"):
        ppzoo.create_model(name, num_classes=10, small_input=True, pretrained=str(tmp_path / "pruned.pdparams"))


def test_alexnet_towers_prune_evenly_and_lrn_channels_stay():
    model = _build("alexnet")
    pruner = Pruner(model, "l1_norm", SIZE)
    plan = pruner.uniform(0.3)
    small = pruner.apply(plan, arch=_arch("alexnet"))
    convs = [m for m in small.features if isinstance(m, nn.Conv2D)]
    assert [c._out_channels for c in convs[:2]] == [96, 256]  # conv1, conv2 feed LRNs: kept
    assert [c._groups for c in convs] == [1, 2, 1, 2, 2]
    for name in ("features.10", "features.12"):  # conv4, conv5: each tower loses the same filters
        node = pruner.graph.node(name)
        lost = [int(b.sum()) for b in np.split(plan.removed[node.out_atoms], 2)]
        assert lost[0] == lost[1] > 0, (name, lost)


def test_shufflenet_concat_and_shuffle_stay_consistent():
    model = _build("shufflenet_v1_g3_x0_5")
    pruner = Pruner(model, "fpgm", SIZE)
    small = pruner.apply(pruner.uniform(0.3), arch=_arch("shufflenet_v1_g3_x0_5"))
    for unit in [u for stage in small.stages for u in stage]:
        mid = unit.compress[0]._out_channels
        assert mid % 3 == 0 and unit.depthwise[0]._groups == mid  # shuffle(3) and depthwise still fit
        branch = unit.expand[0]._out_channels
        if unit.shortcut is not None:  # stride 2: concat = shortcut (the input) + branch = next unit's input
            assert unit.compress[0]._in_channels + branch == small_next_in(small, unit)
    small(paddle.randn([1, *SIZE]))


def small_next_in(model, unit):
    units = [u for stage in model.stages for u in stage]
    i = units.index(unit)
    return units[i + 1].compress[0]._in_channels if i + 1 < len(units) else model.fc.weight.shape[0]


@pytest.mark.parametrize("criterion", ["l1_norm", "l2_norm", "fpgm", "bn_scale", "taylor"])
def test_criteria_remove_a_dead_filter_first(criterion):
    model = ppzoo.create_model("mobilenet_v1_x0_25", num_classes=10, small_input=True)  # its own init: live gradients
    model.eval()
    conv, bn = model.blocks[0][1][0], model.blocks[0][1][1]  # first pointwise conv and its BN: 16 channels
    w = conv.weight.numpy()
    w[5] = 0.0 if criterion != "fpgm" else w.mean(0)  # fpgm: the filter at the centre of the others
    conv.weight.set_value(w)
    for p in (bn.weight, bn.bias):  # a dead channel: its BN scale and shift are zero
        v = p.numpy()
        v[5] = 0.0
        p.set_value(v)
    calib = [(paddle.randn([4, *SIZE]), paddle.to_tensor(np.arange(4) % 10))] * 2
    pruner = Pruner(model, criterion, SIZE, calib=calib if criterion == "taylor" else None)
    plan = pruner.per_layer({"blocks.0.1.0": 1 / 16 + 1e-6})
    node = pruner.graph.node("blocks.0.1.0")
    assert np.flatnonzero(plan.removed[node.out_atoms]).tolist() == [5]


def test_sensitivity_meets_the_target_and_saves_curves(tmp_path):
    model = _build("mobilenet_v1_x0_25")
    pruner = Pruner(model, "l1_norm", SIZE)
    base = count_madds(model, SIZE)
    evaluate = lambda m: 80.0 * count_madds(m, SIZE) / base  # noqa: E731  (deterministic: accuracy ~ MAdds)
    sens = sensitivity(pruner, evaluate, (0.25, 0.5, 0.75))
    assert set(sens["groups"]) == set(pruner.group_names) and sens["baseline"] == 80.0
    plan = sensitivity_plan(pruner, sens, 0.5)
    assert pruner.madds(plan) <= 0.5 * base and pruner.madds(plan) > 0.35 * base
    uniform = pruner.uniform_for_madds(0.5)
    assert pruner.madds(uniform) <= 0.5 * base
    json.loads(open(save_sensitivity(sens, str(tmp_path / "s.json"))).read())
    assert (tmp_path / "p.png").exists() is False and plot_sensitivity(sens, str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_global_threshold_prunes_the_smallest_gammas_network_wide():
    model = _build("mobilenet_v1_x0_25")
    pruner = Pruner(model, "bn_scale", SIZE)
    plan = pruner.global_threshold(0.3)
    scores = np.concatenate([pruner.unit_scores[g] for g in pruner.group_names])
    threshold = np.quantile(scores, 0.3)
    for g in pruner.groups:
        removed = plan.removed[np.concatenate([pruner.analysis.unit_atoms[u] for u in g.units])]
        assert removed.sum() <= (pruner.unit_scores[g.name] < threshold).sum()
    assert abs(plan.removed.sum() / sum(g.size for g in pruner.groups) - 0.3) < 0.01


# ---------------------------------------------------------------------------- bad input, one line each

def test_ratio_outside_range():
    pruner = Pruner(_build("mobilenet_v1_x0_25"), "l1_norm", SIZE)
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match=r"pruned_ratio must be in \[0, 1\)"):
            pruner.uniform(bad)
    with pytest.raises(ConfigError, match=r"Slim.prune.pruned_ratio' must be in \[0, 1\), got 1.5"):
        check_prune({"name": "fpgm", "pruned_ratio": 1.5}, {})


def test_ratio_that_would_empty_a_grouped_layer_names_it_and_its_limit():
    pruner = Pruner(_build("shufflenet_v1_g3_x0_5"), "l1_norm", SIZE)
    most = pruner.max_ratio("stages.0.1.compress.0")
    assert 0.0 < most < 0.9
    with pytest.raises(ValueError, match=rf"'stages.0.1.compress.0'.*the most it can take is {most:.3f}"):
        pruner.per_layer({"stages.0.1.compress.0": 0.9})


def test_target_above_the_model():
    pruner = Pruner(_build("mobilenet_v1_x0_25"), "l1_norm", SIZE)
    with pytest.raises(ValueError, match="target_madds is the share of MAdds kept"):
        pruner.uniform_for_madds(1.5)
    with pytest.raises(ConfigError, match="cannot be met by pruning"):
        check_prune({"name": "l1_norm", "target_madds": 2.0}, {})


class _Gated(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2D(3, 8, 3, padding=1), nn.Conv2D(8, 8, 1)

    def forward(self, x):
        y = self.conv1(x)
        return self.conv2(y * paddle.nn.functional.sigmoid(y)).mean([2, 3])


def test_unmapped_operation_is_named():
    with pytest.raises(UnmappedOperation, match=r"(?i)input of 'conv2'.*'multiply'"):
        trace_channels(_Gated(), SIZE)


def test_unmapped_layer_is_named():
    model = nn.Sequential(nn.Conv2D(3, 4, 1), nn.PReLU(4), nn.Conv2D(4, 2, 1))
    with pytest.raises(UnmappedOperation, match=r"layer '1' \(PReLU\)"):
        trace_channels(model, SIZE)
