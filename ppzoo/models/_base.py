"""The interface every zoo model shares (as timm's models do).

``forward_features`` gives the last feature map, ``forward_head`` pools and classifies,
``num_features`` is the classifier's input width, ``reset_classifier`` swaps the head.
Tools (training, analysis, export, distillation) rely on these and never special-case a
family.
"""
import paddle
import paddle.nn as nn
from paddle.nn.initializer import Constant, Normal

__all__ = ["ClassifierModel"]


class ClassifierModel(nn.Layer):
    """Base class: global average pool -> dropout -> linear classifier.

    Args:
        num_classes (int): classifier outputs; 0 returns the pooled features.
        in_channels (int): image channels the stem expects.
        drop_rate (float): dropout before the classifier.
    """

    def __init__(self, num_classes: int, in_channels: int, drop_rate: float):
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be an int >= 0, got {num_classes!r}")
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.drop_rate = drop_rate

    def _init_head(self, num_features: int):
        """Create ``global_pool``, ``dropout`` and ``fc`` for a ``num_features``-wide map."""
        self.num_features = num_features
        self.global_pool = nn.AdaptiveAvgPool2D(1)
        self.dropout = nn.Dropout(self.drop_rate) if self.drop_rate > 0 else nn.Identity()
        self.reset_classifier(self.num_classes)

    def forward_features(self, x):
        raise NotImplementedError

    def forward_head(self, x, pre_logits: bool = False):
        x = paddle.flatten(self.global_pool(x), 1)
        x = self.dropout(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] not in (-1, self.in_channels):
            raise ValueError(f"{type(self).__name__} expects input of shape [N, {self.in_channels}, H, W], "
                             f"got {list(x.shape)}")
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Layer:
        return self.fc

    def reset_classifier(self, num_classes: int):
        """Replace the classifier with a freshly initialised one of ``num_classes`` outputs."""
        self.num_classes = num_classes
        if num_classes > 0:
            self.fc = nn.Linear(self.num_features, num_classes, weight_attr=Normal(0.0, 0.01),
                                bias_attr=Constant(0.0))
        else:
            self.fc = nn.Identity()
