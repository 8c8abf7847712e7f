"""PaddleClas -> ppzoo weight conversion: outputs must equal PaddleClas's (needs paddleclas)."""
import numpy as np
import paddle
import pytest

import ppzoo
from ppzoo.convert import convert_paddleclas
from ppzoo.weights import WeightsError

from conftest import run_tool

backbone = pytest.importorskip("paddleclas.ppcls.arch.backbone", reason="paddleclas extra not installed")


def _randomise(model, seed=0):
    """Random weights everywhere, BN running statistics included, so a swapped tensor shows."""
    rng = np.random.default_rng(seed)
    state = {}
    for k, v in model.state_dict().items():
        shape = list(v.shape)
        value = rng.random(shape) + 0.5 if k.endswith("_variance") else rng.standard_normal(shape) * 0.1
        state[k] = value.astype("float32")
    model.set_state_dict(state)
    model.eval()
    return model


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
def test_mobilenet_v1(pc_name, name):
    assert _check(_randomise(getattr(backbone, pc_name)(class_num=10)), name, size=96) == {"num_classes": 10}


def test_mobilenet_v2_both_widths():
    # PaddleClas's MobileNetV2 names its parameters globally: a second instance needs a prefix
    kwargs = _check(_randomise(backbone.MobileNetV2(class_num=10)), "mobilenet_v2_x1_0", size=96)
    assert kwargs == {"layout": "paddleclas", "num_classes": 10}
    _check(_randomise(backbone.MobileNetV2_x0_5(class_num=10, prefix_name="w05_")), "MobileNetV2_x0_5",
           size=96, strip="w05_")


def test_alexnet_folds_downscale_in_infer_dropout():
    _check(_randomise(backbone.AlexNet(class_num=10)), "alexnet_single")


def test_cli_writes_weights_that_create_model_loads(tmp_path):
    pc = _randomise(backbone.MobileNetV1_x0_25(class_num=10))
    src, dst = tmp_path / "pc.pdparams", tmp_path / "ours.pdparams"
    paddle.save(pc.state_dict(), str(src))
    result = run_tool("tools/convert_weights.py", "--model", "mobilenet_v1_x0_25", "--src", src, "--dst", dst)
    assert result.returncode == 0, result.stderr
    assert "create_model('mobilenet_v1_x0_25', num_classes=10" in result.stdout
    ours = ppzoo.create_model("mobilenet_v1_x0_25", num_classes=10, pretrained=str(dst))
    ours.eval()
    x = paddle.rand([1, 3, 64, 64])
    np.testing.assert_allclose(ours(x).numpy(), pc(x).numpy(), atol=1e-5)


def test_wrong_pairs_are_clear_errors(tmp_path):
    state = _randomise(backbone.MobileNetV1_x0_5(class_num=10)).state_dict()
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
