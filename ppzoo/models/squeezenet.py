"""SqueezeNet

Paper: SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size
- https://arxiv.org/abs/1602.07360 (Iandola et al., 2016)

``squeezenet1_0`` is the network of Table 1 / Fig. 2 (left): a 7x7/s2 conv with 96
filters, eight Fire modules and a 1x1 conv classifier, max-pools after conv1, fire4 and
fire8 (Sec. 3.3, strategy 3: downsample late). ``squeezenet1_1`` is the v1.1 of the
authors' repository (github.com/forresti/SqueezeNet): a 3x3 conv with 64 filters and the
pools moved after conv1, fire3 and fire5, 2.4x cheaper for the same accuracy.

Pooling: the authors' Caffe model pools with ceil mode (torchvision: ``ceil_mode=True``),
which gives 0.82 / 0.35 G MAdds. PaddleClas pools with floor mode and pads v1.1's conv1
(777 / 352 M MAdds, other map sizes, same parameters); ``layout="paddleclas"`` builds
that, which PaddleClas's weights need.
"""
from functools import partial
from typing import Callable, Optional

import paddle
import paddle.nn as nn
from paddle.nn.initializer import Constant, Normal

from ..layers import Fire, init_weights
from ..registry import register_model
from ._base import ClassifierModel
from ._paddleclas import map_in_order

__all__ = ["SqueezeNet"]

# s1x1, e1x1, e3x3 of each Fire module, "M" a 3x3/s2 max-pool  (Table 1; v1.1 from the authors' repository)
CONFIGS = {
    "1_0": {"stem": (96, 7, 0), "body": [
        "M", (16, 64, 64), (16, 64, 64), (32, 128, 128), "M",
        (32, 128, 128), (48, 192, 192), (48, 192, 192), (64, 256, 256), "M", (64, 256, 256)]},
    "1_1": {"stem": (64, 3, 0), "body": [
        "M", (16, 64, 64), (16, 64, 64), "M", (32, 128, 128), (32, 128, 128), "M",
        (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256)]},
}
LAYOUTS = ("reference", "paddleclas")


class SqueezeNet(ClassifierModel):
    """conv1 -> Fire modules with three max-pools -> dropout -> 1x1 conv to classes -> ReLU
    -> global average pool (Sec. 3.3: no fully connected layer).

    Args:
        version (str): ``"1_0"`` (the paper) or ``"1_1"``. Default: "1_0".
        num_classes (int): classifier outputs; 0 returns the pooled 512-d features. Default: 1000.
        in_channels (int): image channels. Default: 3.
        drop_rate (float): dropout before the classifier conv (after fire9, Sec. 3.3). Default: 0.5.
        small_input (bool): for 32x32 images (CIFAR): conv1 becomes 3x3/s1 with padding 1 and
            the three pools stay, so a 32x32 input ends on a 4x4 map (32 -> 16 -> 8 -> 4 with
            ceil-mode pooling). Default: False.
        layout (str): ``"reference"`` (ceil-mode pooling) or ``"paddleclas"`` (floor-mode
            pooling; v1.1's conv1 padded by 1). Default: "reference".
        norm_layer (callable, optional): norm after every conv of the Fire modules; ``None``
            for none, as in the paper. Default: None.
        act_layer (callable, optional): activation; ``None`` is ``nn.ReLU``. Default: None.
        se_layer (callable, optional): ``se_layer(channels)`` after every Fire module. Default: None.
    """

    def __init__(self, version: str = "1_0", num_classes: int = 1000, in_channels: int = 3, drop_rate: float = 0.5,
                 small_input: bool = False, layout: str = "reference", norm_layer: Optional[Callable] = None,
                 act_layer: Optional[Callable] = None, se_layer: Optional[Callable] = None):
        super().__init__(num_classes, in_channels, drop_rate, small_input)
        if version not in CONFIGS:
            raise ValueError(f"SqueezeNet: version must be one of {sorted(CONFIGS)}, got {version!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"SqueezeNet: layout must be one of {LAYOUTS}, got {layout!r}")
        act_layer = act_layer or nn.ReLU
        ceil = layout == "reference"
        c, k, pad = CONFIGS[version]["stem"]
        if layout == "paddleclas" and version == "1_1":
            pad = 1
        stride = 2
        if small_input:
            k, stride, pad = 3, 1, 1
        self.stem = nn.Sequential(nn.Conv2D(in_channels, c, k, stride, pad), act_layer())
        layers = []
        for item in CONFIGS[version]["body"]:
            if item == "M":
                layers.append(nn.MaxPool2D(3, stride=2, ceil_mode=ceil))
            else:
                s, e1, e3 = item
                layers.append(Fire(c, s, e1, e3, norm_layer=norm_layer, act_layer=act_layer, se_layer=se_layer))
                c = e1 + e3
        self.features = nn.Sequential(*layers)
        self.num_features = c
        self.act = act_layer()
        self.global_pool = nn.AdaptiveAvgPool2D(1)
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.reset_classifier(num_classes)
        init_weights(self)
        if num_classes > 0:  # Sec. 3.3 / the authors' prototxt: conv10 from N(0, 0.01)
            Normal(0.0, 0.01)(self.fc.weight)

    def reset_classifier(self, num_classes: int):
        """The classifier is conv10: a 1x1 conv to ``num_classes`` maps, ReLU, then the pool."""
        self.num_classes = num_classes
        if num_classes > 0:
            self.fc = nn.Conv2D(self.num_features, num_classes, 1, weight_attr=Normal(0.0, 0.01),
                                bias_attr=Constant(0.0))
        else:
            self.fc = nn.Identity()

    def forward_features(self, x):
        return self.features(self.stem(x))

    def forward_head(self, x, pre_logits: bool = False):
        if pre_logits or self.num_classes == 0:
            return paddle.flatten(self.global_pool(x), 1)
        return paddle.flatten(self.global_pool(self.act(self.fc(self.dropout(x)))), 1)


SQUEEZENET_DROPOUT = 0.5  # PaddleClas: Dropout(p=0.5, mode="downscale_in_infer") before conv10


def paddleclas_keys(model: SqueezeNet):
    """PaddleClas ``SqueezeNet1_0`` / ``SqueezeNet1_1`` names (ppcls/arch/backbone/model_zoo/squeezenet.py),
    our order: conv1, the eight Fire modules (squeeze, expand 1x1, expand 3x3), conv10."""
    keys = ["_conv.weight", "_conv.bias"]
    for i in range(1, 9):
        for part in ("_conv", "_conv_path1", "_conv_path2"):
            keys += [f"_conv{i}.{part}._conv.weight", f"_conv{i}.{part}._conv.bias"]
    return keys + ["_conv9.weight", "_conv9.bias"]


def checkpoint_filter_fn(state, model: SqueezeNet, source: str = "state dict"):
    """PaddleClas SqueezeNet -> ours. Layers are created in the same order; PaddleClas's dropout
    scales at inference ("downscale_in_infer"), so conv10's weight is multiplied by (1 - p)
    (its bias is added after the dropout and stays)."""
    scale = {"_conv9.weight": 1.0 - SQUEEZENET_DROPOUT}
    return map_in_order(state, model, paddleclas_keys(model), source, "SqueezeNet", classifier="_conv9.weight",
                        scale=scale)


# name: version, published params (M), MAdds (M), top-1 (%), PaddleClas name  (torchvision's counts and
# ImageNet top-1 of the authors' models; the paper's Table 2 gives 57.5 % for v1.0)
_VARIANTS = {
    "squeezenet1_0": ("1_0", 1.248424, 820, 57.5, "SqueezeNet1_0"),
    "squeezenet1_1": ("1_1", 1.235496, 350, 58.2, "SqueezeNet1_1"),
}

# PaddleClas's layout (floor-mode pooling; v1.1's padded conv1): ``<name>.paddleclas``, which
# PaddleClas's names build. MAdds (M) counted at 224; the parameters are the same.
_PADDLECLAS_MADDS = {"squeezenet1_0": 777.2, "squeezenet1_1": 349.5}

for _name, (_version, _params, _madds, _top1, _pc) in _VARIANTS.items():
    register_model(partial(SqueezeNet, version=_version), name=_name, family="squeezenet", paper="1602.07360",
                   params=_params, madds=_madds, top1=_top1)
    register_model(partial(SqueezeNet, version=_version, layout="paddleclas"), name=f"{_name}.paddleclas",
                   family="squeezenet", paper="1602.07360", params=_params, madds=_PADDLECLAS_MADDS[_name],
                   paddleclas_names=(_pc,), notes="PaddleClas's layout; MAdds counted, not published")
