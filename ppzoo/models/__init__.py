"""Model families; importing this package registers every variant."""
from .alexnet import AlexNet
from .mobilenet_v1 import MobileNetV1
from .mobilenet_v2 import MobileNetV2
from .resnet import ResNet
from .shufflenet_v1 import ShuffleNetV1
from .squeezenet import SqueezeNet

__all__ = ["AlexNet", "MobileNetV1", "MobileNetV2", "ResNet", "ShuffleNetV1", "SqueezeNet"]
