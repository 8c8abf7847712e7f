"""ResNet and SE-ResNet

Papers:
- Deep Residual Learning for Image Recognition, https://arxiv.org/abs/1512.03385 (He et al., 2015)
- Squeeze-and-Excitation Networks, https://arxiv.org/abs/1709.01507 (Hu et al., 2017)

Implements Table 1 of the ResNet paper: a 7x7/s2 conv, 3x3/s2 max-pool, four stages of
residual blocks (64, 128, 256, 512 channels; stride 2 at the first block of stages 3-5),
global average pool, one FC. ResNet-18/34 use :class:`~ppzoo.layers.BasicBlock`,
ResNet-50 :class:`~ppzoo.layers.Bottleneck` with the stride on its 3x3 conv (the
torchvision / PaddleClas "v1.5" layout). Shortcuts are identities, with a 1x1 projection
where the shape changes (option B, Sec. 3.3). ``se_resnet50`` adds an SE block
(r = 16) to every bottleneck's branch before the addition (SENet Fig. 3, Table 2).

``layout="paddleclas"`` gives PaddleClas's variant, which builds a projection shortcut
in the first block of every stage, also where ResNet-18/34 keep the shape (stage 2):
4,224 more parameters and 12.8 M more MAdds. Its weights need it.
"""
from functools import partial
from typing import Callable, Optional, Sequence

import paddle.nn as nn

from ..layers import BasicBlock, Bottleneck, ConvNormAct, SqueezeExcite, init_weights
from ..registry import register_model
from ._base import ClassifierModel
from ._paddleclas import conv_bn_keys, map_in_order

__all__ = ["ResNet"]

STAGE_CHANNELS = (64, 128, 256, 512)  # Table 1: conv2_x ... conv5_x
DEPTHS = {  # depth: block, blocks per stage  (Table 1)
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
LAYOUTS = ("reference", "paddleclas")


class ResNet(ClassifierModel):
    """Stem, four stages of residual blocks, global average pool, FC.

    Args:
        depth (int): 18, 34, 50, 101 or 152 (Table 1). Default: 50.
        num_classes (int): classifier outputs. Default: 1000.
        in_channels (int): image channels. Default: 3.
        drop_rate (float): dropout before the FC (the paper uses none). Default: 0.
        small_input (bool): for 32x32 images (CIFAR): a 3x3/s1 stem conv and no max-pool,
            the usual CIFAR ResNet-18 (stages at 32, 16, 8, 4 pixels). Default: False.
        layout (str): ``"reference"`` or ``"paddleclas"`` (see module doc). Default: "reference".
        norm_layer (callable, optional): norm factory; ``None`` is ``nn.BatchNorm2D``. Default: None.
        act_layer (callable, optional): activation factory; ``None`` is ``nn.ReLU``. Default: None.
        se_layer (callable, optional): ``se_layer(channels)`` on every block's branch. Default: None.
    """

    def __init__(self, depth: int = 50, num_classes: int = 1000, in_channels: int = 3, drop_rate: float = 0.0,
                 small_input: bool = False, layout: str = "reference", norm_layer: Optional[Callable] = None,
                 act_layer: Optional[Callable] = None, se_layer: Optional[Callable] = None):
        super().__init__(num_classes, in_channels, drop_rate, small_input)
        if depth not in DEPTHS:
            raise ValueError(f"ResNet: depth must be one of {sorted(DEPTHS)}, got {depth!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"ResNet: layout must be one of {LAYOUTS}, got {layout!r}")
        norm_layer, act_layer = norm_layer or nn.BatchNorm2D, act_layer or nn.ReLU
        block, repeats = DEPTHS[depth]
        self.depth = depth
        if small_input:
            self.stem = ConvNormAct(in_channels, 64, 3, 1, norm_layer=norm_layer, act_layer=act_layer)
            self.maxpool = nn.Identity()
        else:
            self.stem = ConvNormAct(in_channels, 64, 7, 2, norm_layer=norm_layer, act_layer=act_layer)
            self.maxpool = nn.MaxPool2D(3, stride=2, padding=1)
        c, stages = 64, []
        for i, (width, n) in enumerate(zip(STAGE_CHANNELS, repeats)):
            blocks = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(c, width, stride, norm_layer=norm_layer, act_layer=act_layer, se_layer=se_layer,
                                    force_projection=layout == "paddleclas" and j == 0))
                c = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self._init_head(c)
        init_weights(self)

    def forward_features(self, x):
        return self.stages(self.maxpool(self.stem(x)))


def paddleclas_keys(model: ResNet):
    """PaddleClas ``ResNet18/34/50`` tensor names (ppcls/arch/backbone/legendary_models/resnet.py)
    in our order: the stem, then per block conv0, conv1 (, conv2) and the projection ``short``."""
    keys = list(conv_bn_keys("stem.0", "conv", "bn"))
    i = 0
    for stage in model.stages:
        for blk in stage:
            for j in range(len(blk.branch)):
                keys += conv_bn_keys(f"blocks.{i}.conv{j}", "conv", "bn")
            if isinstance(blk.shortcut, ConvNormAct):
                keys += conv_bn_keys(f"blocks.{i}.short", "conv", "bn")
            i += 1
    return keys + ["fc.weight", "fc.bias"]


def checkpoint_filter_fn(state, model: ResNet, source: str = "state dict"):
    """PaddleClas ``ResNet{18,34,50}`` -> ours (same tensors, same order)."""
    return map_in_order(state, model, paddleclas_keys(model), source, f"ResNet{model.depth}", classifier="fc.weight")


# name: depth, published params (M), MAdds (G -> M), top-1 (%), PaddleClas name  (torchvision's counts
# and ImageNet top-1 of the v1.5 layout; the paper's Table 3 gives 10-crop errors)
_VARIANTS = {
    "resnet18": (18, 11.69, 1820, 69.8, "ResNet18"),
    "resnet34": (34, 21.80, 3670, 73.3, "ResNet34"),
    "resnet50": (50, 25.56, 4090, 76.1, "ResNet50"),
}

# PaddleClas's layout where it differs (a projection shortcut opening stage 2 of the basic-block
# nets): ``<name>.paddleclas``, which PaddleClas's names build. params (M), MAdds (M) counted at 224.
_PADDLECLAS = {"resnet18": (11.69, 1826.9), "resnet34": (21.80, 3676.6)}

for _name, (_depth, _params, _madds, _top1, _pc) in _VARIANTS.items():
    tagged = _PADDLECLAS.get(_name)
    register_model(partial(ResNet, depth=_depth), name=_name, family="resnet", paper="1512.03385",
                   params=_params, madds=_madds, top1=_top1, paddleclas_names=() if tagged else (_pc,))
    if tagged:
        register_model(partial(ResNet, depth=_depth, layout="paddleclas"), name=f"{_name}.paddleclas",
                       family="resnet", paper="1512.03385", params=tagged[0], madds=tagged[1], paddleclas_names=(_pc,),
                       notes="PaddleClas's layout; params and MAdds counted, not published")


@register_model(name="se_resnet50", family="resnet", paper="1709.01507", params=28.09, madds=4100, top1=76.71,
                notes="SE block (r = 16) on every bottleneck's branch before the addition (SENet Fig. 3)")
def se_resnet50(se_ratio: float = 0.0625, **kwargs):
    """SE-ResNet-50 (SENet Table 2: 28.09 M params, 3.87 GFLOPs in Caffe's layout, 23.29 % top-1 error).

    Args:
        se_ratio (float): SE bottleneck width as a fraction of the block's channels. Default: 1/16.
        **kwargs: passed to :class:`ResNet`.
    """
    return ResNet(depth=50, se_layer=partial(SqueezeExcite, se_ratio=se_ratio), **kwargs)
