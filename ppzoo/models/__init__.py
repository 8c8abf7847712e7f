"""Model families; importing this package registers every variant."""
from .alexnet import AlexNet
from .mobilenet_v1 import MobileNetV1
from .mobilenet_v2 import MobileNetV2
from .shufflenet_v1 import ShuffleNetV1

__all__ = ["AlexNet", "MobileNetV1", "MobileNetV2", "ShuffleNetV1"]
