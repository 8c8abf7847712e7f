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
        small_input (bool): the model was built for 32x32 images.
    """

    def __init__(self, num_classes: int, in_channels: int, drop_rate: float, small_input: bool = False):
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
        self.small_input = small_input

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
        try:
            features = self.forward_features(x)
        except (ValueError, RuntimeError):  # Paddle's error for a negative size names no layer
            if min(x.shape[2:]) > 0 and min(x.shape[2:]) < self.min_input_size():
                raise self._too_small(x) from None
            raise
        if 0 in features.shape[2:]:  # Paddle pools an empty map to zeros without complaint
            raise self._too_small(x)
        return self.forward_head(features)

    def _too_small(self, x) -> ValueError:
        size = self.min_input_size()
        hint = "" if self.small_input else " (small_input=True adapts the model to 32x32 images)"
        return ValueError(f"{type(self).__name__}: a {x.shape[2]}x{x.shape[3]} input leaves an empty feature map; "
                          f"the smallest input it takes is {size}x{size}{hint}")

    @paddle.no_grad()
    def min_input_size(self, limit: int = 1024) -> int:
        """Smallest square input whose last feature map is not empty (doubling, then bisection)."""
        was_training = self.training
        self.eval()

        def fits(size):
            try:
                shape = self.forward_features(paddle.zeros([1, self.in_channels, size, size])).shape
            except (ValueError, RuntimeError):  # negative sizes inside Paddle
                return False
            return 0 not in shape[2:]

        try:
            # start at the largest kernel: smaller inputs make MKL print errors before Paddle raises
            hi = max([layer._kernel_size[0] for layer in self.sublayers() if isinstance(layer, nn.Conv2D)] + [1])
            while not fits(hi):
                if hi >= limit:
                    raise ValueError(f"{type(self).__name__} takes no input up to {limit}x{limit}")
                hi *= 2
            lo = 1
            while lo < hi:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if fits(mid) else (mid + 1, hi)
        finally:
            if was_training:
                self.train()
        return lo

    def training_hooks(self, steps_per_epoch: int, epochs: int) -> list:
        """Hooks the trainer must run for this model: one per layer type that declares a
        ``training_hook(steps_per_epoch, epochs)`` (dynamic convolution's temperature
        annealing); none for most models."""
        types = {type(layer) for layer in self.sublayers() if callable(getattr(type(layer), "training_hook", None))}
        return [t.training_hook(steps_per_epoch, epochs) for t in sorted(types, key=lambda t: t.__name__)]

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
