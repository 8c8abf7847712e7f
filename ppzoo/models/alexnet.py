"""AlexNet

Paper: ImageNet Classification with Deep Convolutional Neural Networks
- Krizhevsky, Sutskever, Hinton, NeurIPS 2012 (no arXiv id);
  single-tower layout: One weird trick for parallelizing convolutional neural networks
- https://arxiv.org/abs/1404.5997 (Krizhevsky, 2014)

``alexnet`` is the original two-tower network of Sec. 3.5 and Fig. 2 written as one
network with grouped convolutions: conv2, conv4 and conv5 only see the half of their
input that was computed on "their" GPU, which is exactly ``groups=2``. Local response
normalisation (Sec. 3.3) follows the ReLU of conv1 and conv2, overlapping 3x3/s2 max-pools
(Sec. 3.4) follow the LRNs and conv5. ``alexnet_single`` is the single-tower 64-192-384-
256-256 layout of the 2014 paper, used by PaddleClas and paddle.vision.
"""
from functools import partial
from typing import Callable, Optional

import paddle
import paddle.nn as nn
from paddle.nn.initializer import KaimingNormal

from ..layers import LocalResponseNorm, init_weights
from ..registry import register_model
from ._base import ClassifierModel
from ._paddleclas import map_in_order

__all__ = ["AlexNet"]

NEURIPS_2012 = "https://papers.nips.cc/paper/4824-imagenet-classification-with-deep-convolutional-neural-networks"

# out channels, kernel, stride, padding, groups, LRN, max-pool  (one row per conv layer)
LAYOUTS = {
    "original": [  # Sec. 3.5 / Fig. 2: groups=2 where the two GPUs do not talk
        (96, 11, 4, 0, 1, True, True),
        (256, 5, 1, 2, 2, True, True),
        (384, 3, 1, 1, 1, False, False),
        (384, 3, 1, 1, 2, False, False),
        (256, 3, 1, 1, 2, False, True),
    ],
    "single": [  # arXiv 1404.5997, Sec. 5
        (64, 11, 4, 2, 1, False, True),
        (192, 5, 1, 2, 1, False, True),
        (384, 3, 1, 1, 1, False, False),
        (256, 3, 1, 1, 1, False, False),
        (256, 3, 1, 1, 1, False, True),
    ],
}


class AlexNet(ClassifierModel):
    """Five convolutions with ReLU, three max-pools, FC 4096-4096-classes with dropout.

    Args:
        layout (str): ``"original"`` (two towers as groups=2, LRN, 227x227 input) or
            ``"single"`` (one tower, no LRN, 224x224). Default: "original".
        num_classes (int): classifier outputs. Default: 1000.
        in_channels (int): image channels. Default: 3.
        drop_rate (float): dropout before fc6 and fc7 (Sec. 4.2). Default: 0.5.
        small_input (bool): for 32x32 images (CIFAR): conv1 stride 1 with same padding,
            and the classifier reads a 3x3 instead of a 6x6 map (32 -> 15 -> 7 -> 3 through
            the three max-pools). Default: False.
        norm_layer (callable, optional): norm after every conv; ``None`` for none, as in the
            paper (e.g. ``nn.BatchNorm2D`` for a BN AlexNet). Default: None.
        act_layer (callable, optional): activation factory; ``None`` is ``nn.ReLU``. Default: None.
        se_layer (callable, optional): ``se_layer(channels)`` after every conv's activation. Default: None.
    """

    def __init__(self, layout: str = "original", num_classes: int = 1000, in_channels: int = 3,
                 drop_rate: float = 0.5, small_input: bool = False, norm_layer: Optional[Callable] = None,
                 act_layer: Optional[Callable] = None, se_layer: Optional[Callable] = None):
        super().__init__(num_classes, in_channels, drop_rate, small_input)
        if layout not in LAYOUTS:
            raise ValueError(f"AlexNet: layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
        act_layer = act_layer or nn.ReLU
        layers, c = [], in_channels
        for i, (out_c, k, s, p, g, lrn, pool) in enumerate(LAYOUTS[layout]):
            if small_input and i == 0:
                s, p = 1, (k - 1) // 2
            layers.append(nn.Conv2D(c, out_c, k, s, p, groups=g, bias_attr=False if norm_layer else None))
            layers += [norm_layer(out_c)] if norm_layer is not None else []
            layers.append(act_layer())
            layers += [se_layer(out_c)] if se_layer is not None else []
            layers += [LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)] if lrn else []  # Sec. 3.3
            layers += [nn.MaxPool2D(3, stride=2)] if pool else []
            c = out_c
        self.features = nn.Sequential(*layers)
        pool = 3 if small_input else 6
        self.avgpool = nn.AdaptiveAvgPool2D(pool)
        dropout = (lambda: nn.Dropout(drop_rate)) if drop_rate > 0 else nn.Identity
        self.pre_logits = nn.Sequential(
            dropout(), nn.Linear(c * pool * pool, 4096), act_layer(),  # fc6
            dropout(), nn.Linear(4096, 4096), act_layer(),  # fc7
        )
        self.num_features = 4096
        self.reset_classifier(num_classes)  # fc8
        init_weights(self)
        # no batch norm to rescale activations: keep their variance through every ReLU layer with
        # He's fan-in init (arXiv 1502.01852, Eq. 10) for the convs and fc6/fc7; fc8 keeps N(0, 0.01)
        for layer in [*self.features, *self.pre_logits]:  # the SE blocks' convs are sublayers: not listed here
            if isinstance(layer, (nn.Conv2D, nn.Linear)):
                KaimingNormal(mode="fan_in")(layer.weight)

    def forward_features(self, x):
        return self.features(x)

    def forward_head(self, x, pre_logits: bool = False):
        x = self.pre_logits(paddle.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.fc(x)


register_model(partial(AlexNet, layout="original"), name="alexnet", family="alexnet", paper=NEURIPS_2012,
               input_size=(3, 227, 227), params=60.97, madds=724, top1=57.2,
               notes="original two-tower layout (NeurIPS 2012), towers as groups=2")
register_model(partial(AlexNet, layout="single"), name="alexnet_single", family="alexnet", paper="1404.5997",
               params=61.10, madds=714, top1=56.7, paddleclas_names=("AlexNet",))


ALEXNET_DROPOUT = 0.5  # PaddleClas AlexNetDY: Dropout(p=0.5, mode="downscale_in_infer")


def paddleclas_keys(model: AlexNet):
    """PaddleClas ``AlexNet`` names (ppcls/arch/backbone/model_zoo/alexnet.py), our order."""
    keys = []
    for i in range(1, 6):
        prefix = f"_conv{i}._conv" if i in (1, 2, 5) else f"_conv{i}"
        keys += [f"{prefix}.weight", f"{prefix}.bias"]
    return keys + [f"_fc{i}.{t}" for i in (6, 7, 8) for t in ("weight", "bias")]


def checkpoint_filter_fn(state, model: AlexNet, source: str = "state dict"):
    """PaddleClas ``AlexNet`` (the single tower) -> ``alexnet_single``. PaddleClas's dropout
    is ``downscale_in_infer`` (it halves fc6's and fc7's inputs at inference, ours scales
    while training): multiplying the fc6 and fc7 weights by (1 - p) makes both identical."""
    scale = {"_fc6.weight": 1.0 - ALEXNET_DROPOUT, "_fc7.weight": 1.0 - ALEXNET_DROPOUT}
    return map_in_order(state, model, paddleclas_keys(model), source, "AlexNet", classifier="_fc8.weight", scale=scale)
