"""PaddleClas -> ppzoo weight conversion. With paddleclas installed, our outputs must equal
PaddleClas's; without it, synthetic state dicts under PaddleClas's tensor names check the
mechanics (shapes, AlexNet's dropout folding, the CLI, errors)."""
import numpy as np
import paddle
import pytest

import ppzoo
from ppzoo.convert import SUPPORTED_FAMILIES, convert_paddleclas
from ppzoo.utils.weights import WeightsError

from conftest import randomise_weights, run_tool



@pytest.fixture(scope="module")
def backbone():
    return pytest.importorskip("paddleclas.ppcls.arch.backbone", reason="paddleclas extra not installed")


def _check(pc_model, name, size=224, strip=""):
    state = {k.replace(strip, "") if strip else k: v for k, v in pc_model.state_dict().items()}
    converted, kwargs = convert_paddleclas(state, name)
    ours = ppzoo.create_model(name, **kwargs)
    ours.set_state_dict(converted)
    ours.eval()
    x = paddle.rand([2, 3, size, size])
    diff = np.abs(ours(x).numpy() - pc_model(x).numpy()).max()
    assert diff <= 1e-5, f"{name}: max abs diff {diff}"
    return kwargs


@pytest.mark.parametrize("pc_name,name", [
    ("MobileNetV1", "mobilenet_v1_x1_0"), ("MobileNetV1_x0_75", "mobilenet_v1_x0_75"),
    ("MobileNetV1_x0_5", "mobilenet_v1_x0_5"), ("MobileNetV1_x0_25", "mobilenet_v1_x0_25")])
def test_mobilenet_v1(backbone, pc_name, name):
    assert _check(randomise_weights(getattr(backbone, pc_name)(class_num=10)), name, size=96) == {"num_classes": 10}


def test_mobilenet_v2_both_widths(backbone):
    # PaddleClas's MobileNetV2 names its parameters globally: a second instance needs a prefix
    kwargs = _check(randomise_weights(backbone.MobileNetV2(class_num=10)), "mobilenet_v2_x1_0", size=96)
    assert kwargs == {"layout": "paddleclas", "num_classes": 10}
    _check(randomise_weights(backbone.MobileNetV2_x0_5(class_num=10, prefix_name="w05_")), "MobileNetV2_x0_5",
           size=96, strip="w05_")


def test_alexnet_folds_downscale_in_infer_dropout(backbone):
    _check(randomise_weights(backbone.AlexNet(class_num=10)), "alexnet_single")


def test_cli_writes_weights_that_create_model_loads(backbone, tmp_path):
    pc = randomise_weights(backbone.MobileNetV1_x0_25(class_num=10))
    src, dst = tmp_path / "pc.pdparams", tmp_path / "ours.pdparams"
    paddle.save(pc.state_dict(), str(src))
    result = run_tool("tools/convert_weights.py", "--model", "mobilenet_v1_x0_25", "--src", src, "--dst", dst)
    assert result.returncode == 0, result.stderr
    assert "create_model('mobilenet_v1_x0_25', num_classes=10" in result.stdout
    ours = ppzoo.create_model("mobilenet_v1_x0_25", num_classes=10, pretrained=str(dst))
    ours.eval()
    x = paddle.rand([1, 3, 64, 64])
    np.testing.assert_allclose(ours(x).numpy(), pc(x).numpy(), atol=1e-5)


def test_wrong_pairs_are_clear_errors(backbone, tmp_path):
    state = randomise_weights(backbone.MobileNetV1_x0_5(class_num=10)).state_dict()
    with pytest.raises(WeightsError, match=r"'conv.conv.weight' has shape \[16, 3, 3, 3\], but 'stem.0.weight' .*another width"):
        convert_paddleclas(state, "mobilenet_v1_x1_0")
    with pytest.raises(WeightsError, match="not a PaddleClas MobileNetV2 state dict"):
        convert_paddleclas(state, "mobilenet_v2_x1_0")
    with pytest.raises(ValueError, match="PaddleClas publishes no weights that fit 'shufflenet_v1_g3_x1_0'"):
        convert_paddleclas(state, "shufflenet_v1_g3_x1_0")
    result = run_tool("tools/convert_weights.py", "--model", "mobilenet_v1_x1_0", "--src", tmp_path / "none.pdparams",
                      "--dst", tmp_path / "o.pdparams")
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "weight file not found" in result.stderr


def synthetic_paddleclas_state(name, num_classes=10, **kwargs):
    """Random tensors under PaddleClas's names, shaped like our model's (same layer order)."""
    model = ppzoo.create_model(name, num_classes=num_classes, **kwargs)
    keys = list(SUPPORTED_FAMILIES[ppzoo.model_info(name).family][0]())
    rng = np.random.default_rng(0)
    return {k: rng.standard_normal(v.shape).astype("float32") for k, v in zip(keys, model.state_dict().values())}


@pytest.mark.parametrize("name,kwargs", [("mobilenet_v1_x0_25", {}), ("mobilenet_v2_x0_5", {"layout": "paddleclas"}),
                                         ("alexnet_single", {})])
def test_synthetic_conversion_maps_every_tensor(name, kwargs):
    state = synthetic_paddleclas_state(name, **kwargs)
    converted, out_kwargs = convert_paddleclas(state, name)
    assert out_kwargs == {**kwargs, "num_classes": 10}
    ours = list(converted)
    assert len(ours) == len(state)
    for (their_key, value), our_key in zip(state.items(), ours):
        expected = value * 0.5 if their_key in ("_fc6.weight", "_fc7.weight") else value  # downscale_in_infer
        np.testing.assert_array_equal(converted[our_key], expected, err_msg=their_key)
    ppzoo.create_model(name, **out_kwargs).set_state_dict(converted)


def test_synthetic_cli_and_errors(tmp_path):
    state = synthetic_paddleclas_state("mobilenet_v1_x0_25")
    src, dst = tmp_path / "pc.pdparams", tmp_path / "ours.pdparams"
    paddle.save(state, str(src))
    result = run_tool("tools/convert_weights.py", "--model", "MobileNetV1_x0_25", "--src", src, "--dst", dst)
    assert result.returncode == 0, result.stderr
    loaded = ppzoo.create_model("mobilenet_v1_x0_25", num_classes=10, pretrained=str(dst))
    np.testing.assert_array_equal(loaded.stem[0].weight.numpy(), state["conv.conv.weight"])
    missing = dict(state)
    del missing["blocks.3.pointwise_conv.bn._mean"]
    with pytest.raises(WeightsError, match="PaddleClas tensor 'blocks.3.pointwise_conv.bn._mean' .* is missing"):
        convert_paddleclas(missing, "mobilenet_v1_x0_25")
    with pytest.raises(WeightsError, match=r"1 tensors a PaddleClas MobileNetV1_x0_25 does not have \(first: 'extra'\)"):
        convert_paddleclas({**state, "extra": np.zeros(1)}, "mobilenet_v1_x0_25")
    with pytest.raises(WeightsError, match="another width"):
        convert_paddleclas(state, "mobilenet_v1_x0_5")
    result = run_tool("tools/convert_weights.py", "--model", "mobilenet_v2_x1_0", "--src", src, "--dst", dst,
                      "--layout", "reference")
    assert result.returncode == 2 and "only fit layout 'paddleclas'" in result.stderr
