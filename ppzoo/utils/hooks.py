"""The seams of the training loop: a step function and hooks (the protocol only; the loop
is ``ppzoo.engine.loop``, and compression methods below the engine implement hooks).

``step_fn(model, images, targets) -> StepOutput(loss, logits, extras)`` computes the loss
of one batch (:class:`ClassificationStep` is plain cross-entropy; distillation supplies its
own). A :class:`Hook` may implement any of these methods; the loop calls them in this order
(hooks in list order):

================================  ==========================================================
``prepare(model) -> model``        once, before the optimizer is built (QAT wraps the model)
``before_epoch(model, epoch)``     at the start of every epoch
``after_backward(model)``          after ``loss.backward()``, before the optimizer step
                                   (network slimming adds its L1 sub-gradient)
``after_step(model, step)``        after every optimizer step; ``step`` counts from 1 over
                                   the whole run (pruning masks, EMA, temperature schedules)
``before_eval(model) -> model``    before each evaluation; a hook may return the model to
                                   evaluate instead (EMA returns its average)
``after_epoch(model, epoch, record)``  after the epoch's record (train/eval figures) is made
``state_dict() / set_state_dict()``    saved in and restored from the checkpoint, so a resumed
                                   run continues exactly
``finalize(model) -> model``       once, after the last epoch (convert, strip masks); the
                                   result is saved as ``final_model.pdparams``
================================  ==========================================================
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, Sequence

import paddle

__all__ = ["StepOutput", "ClassificationStep", "Hook", "HookList"]


@dataclass
class StepOutput:
    """What a step function returns: the loss to minimise, the logits that the accuracy is
    measured on, and any named extras (e.g. separate loss terms, logged per epoch)."""

    loss: paddle.Tensor
    logits: paddle.Tensor
    extras: Dict[str, paddle.Tensor] = field(default_factory=dict)


class ClassificationStep:
    """``loss_fn(model(images), targets)``: the plain supervised step."""

    def __init__(self, loss_fn: Callable):
        self.loss_fn = loss_fn

    def __call__(self, model, images, targets) -> StepOutput:
        logits = model(images)
        return StepOutput(self.loss_fn(logits, targets), logits)


class Hook:
    """Base class with every method a no-op; override what you need. ``name`` keys the
    hook's state in the checkpoint (default: the class name)."""

    @property
    def name(self) -> str:
        return type(self).__name__

    def prepare(self, model):
        return model

    def before_epoch(self, model, epoch: int) -> None:
        pass

    def after_backward(self, model) -> None:
        pass

    def after_step(self, model, step: int) -> None:
        pass

    def before_eval(self, model):
        return None

    def after_epoch(self, model, epoch: int, record: dict) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def set_state_dict(self, state: dict) -> None:
        pass

    def finalize(self, model):
        return model


def _implements(hook, method: str) -> bool:
    own = getattr(type(hook), method, None)
    return callable(getattr(hook, method, None)) and own is not getattr(Hook, method, None)


class HookList:
    """Calls each method on every hook that defines it, in order. Hooks need not inherit
    :class:`Hook`: any object with some of its methods works."""

    def __init__(self, hooks: Sequence = ()):
        self.hooks = list(hooks)
        names = [self._name(h) for h in self.hooks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"two hooks share the name '{dup[0]}'; give one a distinct .name (it keys the checkpoint)")

    @staticmethod
    def _name(hook) -> str:
        return getattr(hook, "name", type(hook).__name__)

    def _each(self, method: str):
        """Bound ``method`` of every hook that implements it (a :class:`Hook` subclass's
        inherited no-ops are skipped)."""
        return [getattr(h, method) for h in self.hooks if _implements(h, method)]

    def prepare(self, model):
        for fn in self._each("prepare"):
            model = fn(model)
        return model

    def before_epoch(self, model, epoch: int) -> None:
        for fn in self._each("before_epoch"):
            fn(model, epoch)

    def after_backward(self, model) -> None:
        for fn in self._each("after_backward"):
            fn(model)

    def after_step(self, model, step: int) -> None:
        for fn in self._each("after_step"):
            fn(model, step)

    def before_eval(self, model):
        for fn in self._each("before_eval"):
            replacement = fn(model)
            if replacement is not None:
                model = replacement
        return model

    def after_epoch(self, model, epoch: int, record: dict) -> None:
        for fn in self._each("after_epoch"):
            fn(model, epoch, record)

    def finalize(self, model):
        for fn in self._each("finalize"):
            model = fn(model)
        return model

    @property
    def finalizes(self) -> bool:
        """Does any hook change the model after training?"""
        return bool(self._each("finalize"))

    def state_dict(self) -> dict:
        out = {}
        for hook in self.hooks:
            fn = getattr(hook, "state_dict", None)
            state = fn() if callable(fn) else None
            if state:
                out[self._name(hook)] = state
        return out

    def set_state_dict(self, states: dict) -> None:
        for hook in self.hooks:
            name = self._name(hook)
            if name in states and callable(getattr(hook, "set_state_dict", None)):
                hook.set_state_dict(states[name])

    def unused_states(self, states: dict) -> list:
        """Names of saved hook states that no hook of this run takes."""
        return sorted(set(states) - {self._name(h) for h in self.hooks})
