"""Building blocks reused by every model in the zoo."""
from .binary import BinaryConv2D, BinaryLinear, binarize_weight, sign_ste
from .channel_shuffle import ChannelShuffle, channel_shuffle
from .conv_norm_act import ConvNormAct
from .depthwise_separable import DepthwiseSeparableConv
from .dynamic_conv import DynamicConv2D, TemperatureAnnealing, set_temperature, temperature_at
from .fire import Fire
from .helpers import divisors, make_divisible, resolve_groups
from .inverted_residual import InvertedResidual
from .lrn import LocalResponseNorm
from .onnx_compat import onnx_compatible
from .residual import BasicBlock, Bottleneck
from .shuffle_unit import ShuffleUnit
from .squeeze_excite import SqueezeExcite
from .weight_init import init_weights

__all__ = [
    "BinaryConv2D", "BinaryLinear", "binarize_weight", "sign_ste",
    "ChannelShuffle", "channel_shuffle", "ConvNormAct", "DepthwiseSeparableConv", "InvertedResidual",
    "LocalResponseNorm", "ShuffleUnit", "divisors", "make_divisible", "resolve_groups", "init_weights",
    "onnx_compatible", "SqueezeExcite", "DynamicConv2D", "set_temperature", "temperature_at", "TemperatureAnnealing",
    "Fire", "BasicBlock", "Bottleneck",
]
