"""The layer that runs a teacher (frozen) and one or more trained models on the same batch.

PaddleClas's ``DistillationModel`` keeps every model as a sublayer and freezes some; here a
frozen model is held *outside* the layer's sublayers, so that it

* is not in ``parameters()`` (the optimizer, weight decay and gradient clipping never see it),
* is not in ``state_dict()`` (checkpoints hold the trained models only: the teacher is
  already in its own weight file),
* stays in eval mode whatever ``train()``/``eval()`` the trainer calls (its batch-norm
  statistics and dropout never change),
* runs under ``paddle.no_grad()``, so no graph is kept for it.

Trained models are sublayers under their names, so the state dict reads like PaddleClas's
(``Student.conv1.weight``, ``Student1.fc.bias``); feature adapters sit under ``adapters``.
"""
import time
from typing import Dict, List, Sequence

import paddle
import paddle.nn as nn

__all__ = ["DistillationModel", "freeze"]


def freeze(model: nn.Layer) -> nn.Layer:
    """Eval mode and ``stop_gradient`` on every parameter."""
    model.eval()
    for p in model.parameters():
        p.stop_gradient = True
    return model


class DistillationModel(nn.Layer):
    """Teacher(s) and trained model(s) side by side.

    In training mode ``forward(x)`` returns ``{name: {"logits": ..., "features": ...}}`` for
    every model (``features``: the ``forward_features`` map, for the models listed in
    ``feature_models``; ``features_to_<other>``: that map through the adapter towards
    ``other``); in eval mode it returns the logits of ``eval_model_name`` only, so the
    ordinary evaluation loop measures that model.

    Args:
        models (dict of str to nn.Layer): the models in config order.
        frozen (sequence of str): names of the models to freeze (teachers).
        infer_model_name (str): the model that is deployed and evaluated by default.
    """

    def __init__(self, models: Dict[str, nn.Layer], frozen: Sequence[str], infer_model_name: str):
        super().__init__()
        unknown = sorted(set(frozen) - set(models)) + ([infer_model_name] if infer_model_name not in models else [])
        if unknown:
            raise ValueError(f"'{unknown[0]}' is not one of the models ({', '.join(models)})")
        if all(name in frozen for name in models):
            raise ValueError("every model is frozen: nothing would be trained")
        self.model_names: List[str] = list(models)
        self.frozen_names: List[str] = [n for n in models if n in frozen]
        self._frozen: Dict[str, nn.Layer] = {}  # a plain dict: not sublayers (see the module docstring)
        for name, model in models.items():
            if name in frozen:
                self._frozen[name] = freeze(model)
            else:
                self.add_sublayer(name, model)
        self.adapters = nn.LayerDict()
        self.infer_model_name = infer_model_name
        self.eval_model_name = infer_model_name
        self.feature_models: set = set()
        self.frozen_seconds = 0.0  # time spent in the frozen models' forward passes (reset by the caller)

    @property
    def trained_names(self) -> List[str]:
        return [n for n in self.model_names if n not in self._frozen]

    def model(self, name: str) -> nn.Layer:
        """The model called ``name`` (trained or frozen)."""
        return self._frozen[name] if name in self._frozen else self._sub_layers[name]

    def add_adapter(self, source: str, target: str, in_channels: int, out_channels: int) -> nn.Layer:
        """A 1x1 convolution (FitNets' regressor) from ``source``'s feature map to ``target``'s width."""
        adapter = nn.Conv2D(in_channels, out_channels, 1, bias_attr=False)
        self.adapters[f"{source}__{target}"] = adapter
        return adapter

    def _run(self, name: str, x) -> Dict[str, paddle.Tensor]:
        model = self.model(name)
        if name in self.feature_models:
            features = model.forward_features(x)
            return {"logits": model.forward_head(features), "features": features}
        return {"logits": model(x)}

    def forward(self, x):
        if not self.training:
            return self.model(self.eval_model_name)(x)
        out = {}
        for name in self.model_names:
            if name in self._frozen:
                start = time.perf_counter()
                with paddle.no_grad():
                    out[name] = {k: v.detach() for k, v in self._run(name, x).items()}
                self.frozen_seconds += time.perf_counter() - start
            else:
                out[name] = self._run(name, x)
        for key, adapter in self.adapters.items():
            source, target = key.split("__")
            out[source][f"features_to_{target}"] = adapter(out[source]["features"])
        return out
