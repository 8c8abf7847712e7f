"""The faster forms of LRN and channel shuffle (issue 16) compute what the previous
implementation computed: reference forms kept here, compared on random inputs, in
dygraph and in the exported predictor."""
import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest

import ppzoo
from ppzoo.deploy.export import export_model
from ppzoo.deploy.predictor import Predictor
from ppzoo.layers import ChannelShuffle, LocalResponseNorm, channel_shuffle

from conftest import randomise_weights


def reference_lrn(layer, x):
    """The previous forward: Paddle's pad3d + avg_pool3d + pow form."""
    return F.local_response_norm(x, layer.size, layer.alpha, layer.beta, layer.k)


def reference_shuffle(x, groups):
    """The previous dygraph forward: Paddle's fused kernel."""
    return F.channel_shuffle(x, groups)


@pytest.mark.parametrize("channels,size,beta,k", [(96, 5, 0.75, 2.0), (7, 5, 0.75, 2.0), (10, 4, 0.6, 1.0),
                                                  (3, 5, 0.75, 2.0), (1, 3, 0.5, 1.0)])
def test_lrn_equals_paddle_form(channels, size, beta, k):
    lrn = LocalResponseNorm(size=size, alpha=1e-3, beta=beta, k=k)
    x = paddle.to_tensor(np.random.default_rng(channels).standard_normal([2, channels, 5, 6]).astype("float32") * 20)
    expected = reference_lrn(lrn, x).numpy()
    np.testing.assert_allclose(lrn(x).numpy(), expected, rtol=2e-6, atol=1e-7)
    assert not np.allclose(expected, x.numpy(), rtol=1e-3)  # the normalisation is not a no-op here


@pytest.mark.parametrize("shape,groups", [([2, 12, 5, 5], 3), ([1, 240, 7, 7], 3), ([3, 16, 4, 2], 8)])
def test_exported_shuffle_is_the_transpose_form_and_equals_the_fused_kernel(tmp_path, shape, groups):
    x = paddle.rand(shape)
    np.testing.assert_array_equal(channel_shuffle(x, groups).numpy(), reference_shuffle(x, groups).numpy())
    layer = ChannelShuffle(groups)
    paddle.jit.save(layer, str(tmp_path / "m"), input_spec=[paddle.static.InputSpec([None, *shape[1:]], "float32")])
    program = (tmp_path / "m.json").read_text()
    assert "transpose" in program and "channel_shuffle" not in program


def _reference_shuffle_forward(self, x):
    return reference_shuffle(x, self.groups)


class _Reference:
    """Swap the previous forwards in while exporting the 'before' model."""

    def __enter__(self):
        self.lrn, self.shuffle = LocalResponseNorm.forward, ChannelShuffle.forward
        LocalResponseNorm.forward = nn.LocalResponseNorm.forward
        ChannelShuffle.forward = _reference_shuffle_forward

    def __exit__(self, *exc):
        LocalResponseNorm.forward, ChannelShuffle.forward = self.lrn, self.shuffle


@pytest.mark.parametrize("name,shape", [("alexnet", [3, 67, 67]), ("shufflenet_v1_g3_x0_25", [3, 32, 32])])
def test_models_match_the_previous_forms_in_dygraph_and_predictor(tmp_path, name, shape):
    model = randomise_weights(ppzoo.create_model(name, num_classes=10))
    x = np.random.default_rng(1).standard_normal([2, *shape]).astype("float32")
    with paddle.no_grad():
        new = model(paddle.to_tensor(x)).numpy()
        with _Reference():
            old = model(paddle.to_tensor(x)).numpy()
            export_model(model, str(tmp_path / "old"), shape, verify=False)
    export_model(model, str(tmp_path / "new"), shape, verify=False)
    scale = np.abs(old).max()
    assert scale > 1e-3
    np.testing.assert_allclose(new, old, rtol=0, atol=1e-5 * scale)
    before = Predictor(str(tmp_path / "old"), threads=1).run(x)
    after = Predictor(str(tmp_path / "new"), threads=1).run(x)
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(after, new, rtol=0, atol=1e-5 * scale)
