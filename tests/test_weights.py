import numpy as np
import paddle
import pytest

import ppzoo
from ppzoo.utils.weights import WeightsError, load_weights


@pytest.fixture
def saved(tmp_path):
    model = ppzoo.create_model("mobilenet_v1_x0_25", num_classes=10)
    path = tmp_path / "w.pdparams"
    paddle.save(model.state_dict(), str(path))
    return model, path


def test_pretrained_round_trip_with_and_without_suffix(saved):
    model, path = saved
    x = paddle.rand([1, 3, 32, 32])
    model.eval()
    for p in (str(path), str(path)[: -len(".pdparams")]):
        loaded = ppzoo.create_model("mobilenet_v1_x0_25", num_classes=10, pretrained=p)
        loaded.eval()
        np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


def test_checkpoint_dict_with_model_key_loads(saved, tmp_path):
    model, _ = saved
    path = tmp_path / "ckpt.pdparams"
    paddle.save({"model": model.state_dict(), "epoch": 3}, str(path))
    ppzoo.create_model("mobilenet_v1_x0_25", num_classes=10, pretrained=str(path))


def test_shape_mismatch_names_the_tensor_and_both_shapes(saved):
    _, path = saved
    with pytest.raises(WeightsError, match=r"tensor 'fc.weight' has shape \[256, 10\] in the file but \[256, 1000\]"):
        ppzoo.create_model("mobilenet_v1_x0_25", pretrained=str(path))
    with pytest.raises(WeightsError, match=r"tensor 'stem.0.weight' has shape \[8, 3, 3, 3\] in the file but \[16, 3, 3, 3\]"):
        ppzoo.create_model("mobilenet_v1_x0_5", num_classes=10, pretrained=str(path))


def test_other_model_names_missing_and_unknown_tensors(saved):
    _, path = saved
    with pytest.raises(WeightsError, match=r"does not fit ShuffleNetV1: .*missing from the file \(first: 'stem.0.weight'\)"
                                          r"|does not fit ShuffleNetV1: .*unknown"):
        ppzoo.create_model("shufflenet_v1_g3_x0_25", num_classes=10, pretrained=str(path))


def test_classifier_of_another_size_can_be_skipped(saved):
    model, path = saved
    other = ppzoo.create_model("mobilenet_v1_x0_25", num_classes=3)
    own_head = other.fc.weight.numpy().copy()
    skipped = load_weights(other, str(path), skip_mismatched_classifier=True)
    assert skipped == ["fc.weight", "fc.bias"]
    model.eval(), other.eval()
    x = paddle.rand([2, 3, 32, 32])
    np.testing.assert_allclose(other.forward_head(other.forward_features(x), pre_logits=True).numpy(),
                               model.forward_head(model.forward_features(x), pre_logits=True).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(other.fc.weight.numpy(), own_head)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(WeightsError, match="weight file not found: .*nope"):
        ppzoo.create_model("mobilenet_v1_x0_25", pretrained=str(tmp_path / "nope.pdparams"))
    bad = tmp_path / "bad.pdparams"
    bad.write_bytes(b"not a pickle at all")
    with pytest.raises(WeightsError, match="cannot read weight file .*bad.pdparams"):
        ppzoo.create_model("mobilenet_v1_x0_25", pretrained=str(bad))
