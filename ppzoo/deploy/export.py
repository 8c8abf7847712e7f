"""Export for deployment: a Paddle inference model (``paddle.jit.save``), its metadata and,
optionally, ONNX.

A model folder holds everything inference needs:

* ``inference.json`` + ``inference.pdiparams``: the program (Paddle 3's PIR format) and
  weights, with a dynamic batch dimension unless a fixed batch is asked for;
* ``inference.yml``: model name, input shape, the preprocessing ops (PaddleClas op names,
  run by ``ppzoo.data.build_transforms``), top-k post-processing and class names;
* ``model.onnx`` with ``--onnx`` (extra ``onnx``: paddle2onnx + onnxruntime).

After writing, the exported program is run by ``paddle.inference`` (and ONNX Runtime) on
a random batch and compared with the dygraph model; the differences go into the metadata.
"""
import json
import os
import subprocess
import sys
import tempfile
from typing import List, Optional, Sequence

import numpy as np
import paddle
import yaml
from paddle.static import InputSpec

from .._version import __version__
from ..layers.onnx_compat import onnx_compatible
from ..registry import DEFAULT_CROP_PCT, IMAGENET_MEAN, IMAGENET_STD, build_from_arch, model_info

__all__ = ["export_model", "export_from_config", "default_preprocess", "read_metadata", "ExportError", "REQUIRED_FILES"]

REQUIRED_FILES = ("inference.json", "inference.pdiparams", "inference.yml")
TOLERANCE = 1e-4  # max abs difference, scaled by the largest output when that exceeds 1


class ExportError(ValueError):
    """The model cannot be exported as asked, or an export folder is unusable."""


def default_preprocess(input_shape: Sequence[int], mean=IMAGENET_MEAN, std=IMAGENET_STD,
                       crop_pct: float = DEFAULT_CROP_PCT) -> list:
    """Decode, resize the short side to size / crop_pct (256 for 224), centre-crop, normalise."""
    size = int(input_shape[-1])
    ops = [{"DecodeImage": {"to_rgb": True}}]
    ops.append({"ResizeImage": {"resize_short": int(round(size / crop_pct))}} if size >= 64 else
               {"ResizeImage": {"size": size}})
    if size >= 64:
        ops.append({"CropImage": {"size": size}})
    ops.append({"NormalizeImage": {"scale": 1.0 / 255.0, "mean": list(mean), "std": list(std), "order": "chw"}})
    return ops


class _Softmax(paddle.nn.Layer):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return paddle.nn.functional.softmax(self.model(x), axis=-1)


def _predictor_output(model_dir: str, batch: np.ndarray) -> np.ndarray:
    from .predictor import Predictor

    return Predictor(model_dir, onednn=False).run(batch)


def _export_onnx(net, spec: InputSpec, folder: str, batch: np.ndarray, reference: np.ndarray) -> float:
    try:
        import onnxruntime  # noqa: F401
        import paddle2onnx  # noqa: F401
    except ImportError:
        raise ExportError("--onnx needs the onnx extra: pip install 'ppzoo[onnx]' (paddle2onnx, onnxruntime)") from None
    with tempfile.TemporaryDirectory() as tmp:
        with onnx_compatible():  # forms paddle2onnx converts correctly (channel shuffle, LRN)
            paddle.jit.save(net, os.path.join(tmp, "inference"), input_spec=[spec])
        onnx_file = os.path.join(folder, "model.onnx")
        # paddle2onnx aborts the whole process on an unsupported op: run it apart. Its default
        # optimiser, polygraphy, pip-installs packages at run time (upgrading numpy): use onnxoptimizer
        code = ("import paddle2onnx, sys; paddle2onnx.export(sys.argv[1], sys.argv[2], sys.argv[3], "
                "opset_version=13, enable_onnx_checker=True, optimize_tool=\"onnxoptimizer\")")
        result = subprocess.run([sys.executable, "-c", code, os.path.join(tmp, "inference.json"),
                                 os.path.join(tmp, "inference.pdiparams"), onnx_file], capture_output=True, text=True)
        if result.returncode != 0 or not os.path.isfile(onnx_file):
            lines = [line for line in result.stderr.splitlines() if "ERROR" in line or "rror" in line]
            raise ExportError(f"ONNX conversion failed: {(lines or result.stderr.splitlines() or ['?'])[-1].strip()}")
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
        output = session.run(None, {session.get_inputs()[0].name: batch})[0]
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ExportError(f"ONNX Runtime cannot run the converted model: {str(e).splitlines()[0]} (adaptive pooling "
                          "to a size larger than its input, e.g. AlexNet below 227x227, has no ONNX form)") from None
    return float(np.abs(output - reference).max())


def export_model(model: paddle.nn.Layer, save_dir: str, input_shape: Sequence[int] = (3, 224, 224), *,
                 name: Optional[str] = None, add_softmax: bool = False, batch_size: Optional[int] = None,
                 preprocess: Optional[list] = None, topk: int = 5, class_names: Optional[List[str]] = None,
                 onnx: bool = False, verify: bool = True) -> dict:
    """Export ``model`` to ``save_dir`` and return the metadata written to ``inference.yml``.

    Args:
        model: the model (its weights as they are).
        save_dir: the model folder; files of a previous export there are replaced.
        input_shape: (C, H, W) of one image.
        name: model name for the metadata. Default: the class name.
        add_softmax: append a softmax, so the outputs are probabilities (PaddleClas's
            ``Arch.infer_add_softmax``).
        batch_size: fix the batch dimension (``None``: dynamic).
        preprocess: transform ops for raw images. Default: :func:`default_preprocess`.
        topk: how many classes ``tools/infer.py`` reports by default.
        class_names: names by class id.
        onnx: also write ``model.onnx`` and check it with ONNX Runtime.
        verify: run the exported program and compare with the dygraph model.
    """
    input_shape = [int(v) for v in input_shape]
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ExportError(f"input_shape must be [C, H, W] with positive sizes, got {input_shape}")
    if batch_size is not None and batch_size < 1:
        raise ExportError(f"batch_size must be >= 1 or None (dynamic), got {batch_size}")
    was_training = model.training
    model.eval()
    try:
        return _export(model, save_dir, input_shape, name, add_softmax, batch_size, preprocess, topk, class_names,
                       onnx, verify)
    finally:
        if was_training:
            model.train()


def _export(model, save_dir, input_shape, name, add_softmax, batch_size, preprocess, topk, class_names, onnx,
            verify) -> dict:
    net = _Softmax(model) if add_softmax else model
    batch = np.random.default_rng(0).standard_normal([batch_size or 2, *input_shape]).astype("float32")
    try:
        with paddle.no_grad():
            reference = net(paddle.to_tensor(batch)).numpy()
    except ValueError as e:
        raise ExportError(f"the model cannot take input {input_shape}: {e}") from None
    spec = InputSpec([batch_size, *input_shape], "float32", "x")
    tolerance = TOLERANCE * max(1.0, float(np.abs(reference).max()))  # float32 rounding grows with the logits
    os.makedirs(save_dir, exist_ok=True)
    meta = {
        "model": name or type(model).__name__,
        "ppzoo_version": __version__,
        "paddle_version": paddle.__version__,
        "input": {"name": "x", "shape": [batch_size, *input_shape], "dtype": "float32"},
        "output": {"num_classes": int(reference.shape[-1]), "softmax": bool(add_softmax)},
        "PreProcess": {"transform_ops": preprocess or default_preprocess(input_shape)},
        "PostProcess": {"name": "Topk", "topk": int(topk)},
        "class_names": list(class_names) if class_names else None,
    }
    with tempfile.TemporaryDirectory(dir=save_dir) as tmp:  # write, check, then move into place
        try:
            paddle.jit.save(net, os.path.join(tmp, "inference"), input_spec=[spec])
        except Exception as e:  # tracing errors come in many types
            raise ExportError(f"paddle.jit.save cannot trace the model: {type(e).__name__}: "
                              f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}") from None
        missing = [f for f in REQUIRED_FILES[:2] if not os.path.isfile(os.path.join(tmp, f))]
        if missing:
            raise ExportError(f"paddle.jit.save wrote no {', '.join(missing)}: the model has no parameters or "
                              "could not be traced")
        _write_yaml(os.path.join(tmp, "inference.yml"), meta)
        if verify:
            diff = float(np.abs(_predictor_output(tmp, batch) - reference).max())
            if not diff <= tolerance:  # NaN fails too
                raise ExportError(f"the exported program disagrees with the model: max abs diff {diff:.2e} "
                                  f"(tolerance {tolerance:.1e})")
            meta["checks"] = {"paddle_inference_max_abs_diff": diff}
        if onnx:
            diff = _export_onnx(net, spec, tmp, batch, reference)
            if not diff <= tolerance:  # NaN fails too
                raise ExportError(f"model.onnx disagrees with the model: max abs diff {diff:.2e} "
                                  f"(tolerance {tolerance:.1e})")
            meta.setdefault("checks", {})["onnxruntime_max_abs_diff"] = diff
        _write_yaml(os.path.join(tmp, "inference.yml"), meta)
        for file in os.listdir(tmp):
            os.replace(os.path.join(tmp, file), os.path.join(save_dir, file))
    if not onnx and os.path.exists(os.path.join(save_dir, "model.onnx")):
        os.remove(os.path.join(save_dir, "model.onnx"))  # from an older export: would not match
    return meta


def _write_yaml(path: str, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, sort_keys=False)


def read_metadata(model_dir: str) -> dict:
    """Check a model folder and return its ``inference.yml``."""
    if not os.path.isdir(model_dir):
        raise ExportError(f"model folder not found: {model_dir}")
    missing = [f for f in REQUIRED_FILES if not os.path.isfile(os.path.join(model_dir, f))]
    if missing:
        raise ExportError(f"{model_dir} is incomplete: missing {', '.join(missing)} (write it with tools/export.py)")
    path = os.path.join(model_dir, "inference.yml")
    try:
        with open(path, encoding="utf-8") as f:
            meta = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ExportError(f"{path} is not valid YAML: {e}") from None
    required = {"model": str, "input": dict, "output": dict, "PreProcess": dict, "PostProcess": dict}
    wrong = [k for k, t in required.items() if not isinstance(meta, dict) or not isinstance(meta.get(k), t)]
    if wrong or "shape" not in meta["input"] or "transform_ops" not in meta["PreProcess"]:
        raise ExportError(f"{path} is not ppzoo export metadata (missing or malformed: "
                          f"{', '.join(wrong) or 'input.shape / PreProcess.transform_ops'}); export again")
    return meta


def _norm_crop(name: str):
    """The model's mean, std and crop ratio (ImageNet's for a path or an Arch kind)."""
    try:
        info = model_info(name)
    except ValueError:
        return IMAGENET_MEAN, IMAGENET_STD, DEFAULT_CROP_PCT
    return info.mean, info.std, info.crop_pct


def _eval_preprocess(cfg: dict) -> Optional[list]:
    """The eval set's transforms, made to start from encoded image bytes: what the model
    was validated with is the safest guess when the config has no ``Infer.transforms``."""
    ops = cfg.get("DataLoader", {}).get("Eval", {}).get("dataset", {}).get("transform_ops")
    if not ops:
        return None
    names = [next(iter(op)) for op in ops]
    return ops if names[0] == "DecodeImage" else [{"DecodeImage": {"to_rgb": True}}] + list(ops)


def export_from_config(cfg: dict, random_weights: bool = False, batch_size: Optional[int] = None,
                       onnx: bool = False, safetensors: bool = False) -> dict:
    """What ``tools/export.py`` does: build ``Arch``, load ``Global.pretrained_model``, take
    the input size from ``Global.image_shape``, preprocessing from ``Infer.transforms``
    (else the eval set's transforms, else resize/crop/normalise with the model's mean and
    std), class names from ``Infer.PostProcess.class_id_map_file`` (or the eval set's
    ``class_names_path``), and export to ``Global.save_inference_dir``. With
    ``safetensors`` the weights are also written there as ``model.safetensors`` (the
    format to publish: loading it runs no code), with the model name and config in its
    metadata."""
    from ..data.datasets import _read_class_names
    from ..utils.weights import load_weights, save_weights

    g, arch = cfg["Global"], cfg["Arch"]
    weights = g["pretrained_model"]
    if not weights and not random_weights:
        raise ExportError("no weights to export: set -o Global.pretrained_model=PATH (a .pdparams file or prefix), "
                          "or pass --random-weights to export an untrained model")
    model = build_from_arch(arch, for_inference=True)
    if weights:
        load_weights(model, weights)
    name = getattr(model, "registry_name", arch["name"])  # a DistillationModel deploys its infer_model_name model
    infer = cfg.get("Infer", {})
    post = infer.get("PostProcess") or {}
    preprocess = infer.get("transforms") or _eval_preprocess(cfg) or default_preprocess(g["image_shape"],
                                                                                          *_norm_crop(name))
    names_file = post.get("class_id_map_file") or (
        cfg.get("DataLoader", {}).get("Eval", {}).get("dataset", {}).get("class_names_path"))
    meta = export_model(model, g["save_inference_dir"], g["image_shape"], name=name,
                        add_softmax=arch.get("infer_add_softmax", False), batch_size=batch_size,
                        preprocess=preprocess,
                        topk=post.get("topk", 5), class_names=_read_class_names(names_file) if names_file else None,
                        onnx=onnx)
    if safetensors:
        # the training weights (for ppzoo.create_model(..., pretrained=...)), not the inference graph
        path = save_weights(model, os.path.join(g["save_inference_dir"], "model.safetensors"), metadata={
            "format": "ppzoo", "arch": json.dumps({k: v for k, v in arch.items() if v is not None}),
            "source": str(weights or "random weights")})
        meta["safetensors"] = path
    return meta
