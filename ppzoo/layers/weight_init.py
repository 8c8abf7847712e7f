"""Weight initialisation shared by all models."""
import paddle.nn as nn
from paddle.nn.initializer import Constant, KaimingNormal, Normal

__all__ = ["init_weights"]


def init_weights(model: nn.Layer) -> None:
    """He-normal (fan-out) convolutions, unit/zero norm layers, N(0, 0.01) classifiers.

    He et al., "Delving Deep into Rectifiers" (arXiv 1502.01852) for the ReLU networks;
    the same scheme as torchvision's MobileNet and ShuffleNet.
    """
    for layer in model.sublayers():
        if isinstance(layer, nn.Conv2D):
            KaimingNormal(mode="fan_out")(layer.weight)
            if layer.bias is not None:
                Constant(0.0)(layer.bias)
        elif isinstance(layer, (nn.BatchNorm2D, nn.BatchNorm, nn.GroupNorm, nn.LayerNorm)):
            if layer.weight is not None:
                Constant(1.0)(layer.weight)
            if layer.bias is not None:
                Constant(0.0)(layer.bias)
        elif isinstance(layer, nn.Linear):
            Normal(0.0, 0.01)(layer.weight)
            if layer.bias is not None:
                Constant(0.0)(layer.bias)
