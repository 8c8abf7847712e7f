"""Exponential moving average of model weights (Polyak averaging), for evaluation."""
import copy

import paddle

from ..utils.hooks import Hook

__all__ = ["ModelEMA", "EMAHook"]


class ModelEMA:
    """Keeps ``ema = d * ema + (1 - d) * weights`` after every step, with the warm-up
    ``d = min(decay, (1 + n) / (10 + n))`` so short runs are not dominated by the random
    initial weights. BN running statistics are copied, not averaged.

    Args:
        model: the trained model (unwrapped, not ``DataParallel``).
        decay (float): the target decay. Default: 0.9999.
    """

    def __init__(self, model: paddle.nn.Layer, decay: float = 0.9999):
        self.module = copy.deepcopy(model)
        self.module.eval()
        for p in self.module.parameters():
            p.stop_gradient = True
        self.decay, self.updates = decay, 0

    @paddle.no_grad()
    def update(self, model: paddle.nn.Layer) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        own = self.module.state_dict()
        for name, value in model.state_dict().items():
            target = own[name]
            if value.dtype in (paddle.float32, paddle.float16, paddle.bfloat16) and not name.endswith(
                    ("_mean", "_variance")):
                target.set_value(target * d + value.astype(target.dtype) * (1.0 - d))
            else:
                target.set_value(value)

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def set_state_dict(self, state: dict) -> None:
        self.module.set_state_dict(state["module"])
        self.updates = state["updates"]


class EMAHook(Hook):
    """Keeps a :class:`ModelEMA` of the weights after every step and
    evaluates (and saves as ``best_model``) the average instead of the raw weights."""

    name = "ema"

    def __init__(self, decay: float):
        self.decay = decay
        self.ema = None

    def prepare(self, model):
        self.ema = ModelEMA(model, self.decay)
        return model

    def after_step(self, model, step: int) -> None:
        self.ema.update(getattr(model, "_layers", model))

    def before_eval(self, model):
        return self.ema.module

    def state_dict(self) -> dict:
        return self.ema.state_dict()

    def set_state_dict(self, state: dict) -> None:
        self.ema.set_state_dict(state)
