"""Export for deployment: a Paddle inference model (``paddle.jit.save``), its metadata and,
optionally, ONNX.

A model folder holds everything inference needs:

* ``inference.json`` + ``inference.pdiparams``: the program (Paddle 3's PIR format) and
  weights, with a dynamic batch dimension unless a fixed batch is asked for;
* ``inference.yml``: model name, input shape, the preprocessing ops (PaddleClas op names,
  run by ``ppzoo.data.build_transforms``), top-k post-processing, class names, the
  ``precision`` the predictor runs it at (``fp32``, ``bf16``: oneDNN bfloat16 on the float32
  program, ``int8``: a quantized program from ``ppzoo.compress.quant``), the ``files`` of the
  program and weights, and ``weights_dtype`` (``float16``: the weights file stores halves,
  widened to float32 when loaded; Paddle has no CPU float16 kernels);
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

__all__ = ["export_model", "export_from_config", "default_preprocess", "read_metadata", "ExportError", "REQUIRED_FILES",
           "PRECISIONS", "WEIGHTS_DTYPES", "store_weights_as", "cosine", "export_settings", "build_metadata",
           "write_metadata"]

REQUIRED_FILES = ("inference.json", "inference.pdiparams", "inference.yml")  # a float32 PIR export
PROGRAM_FILES = ("inference.json", "inference.pdmodel")  # PIR, legacy (int8 models)
PRECISIONS = ("fp32", "bf16", "int8")
WEIGHTS_DTYPES = ("float32", "float16")
FP16_PARAMS = "inference.fp16.pdiparams"
TOLERANCE = 1e-4  # max abs difference, scaled by the largest output when that exceeds 1
FP16_MIN_COSINE = 0.999  # float16 storage keeps ~3 decimal digits per weight


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


def _predictor_output(model_dir: str, batch: np.ndarray, precision: str = "fp32") -> np.ndarray:
    from .predictor import Predictor

    return Predictor(model_dir, onednn=precision != "fp32", precision=precision, quiet=True).run(batch)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays, flattened (1.0 for two zero arrays)."""
    a, b = np.asarray(a, "float64").ravel(), np.asarray(b, "float64").ravel()
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norm) if norm > 0 else float(np.array_equal(a, b))


def store_weights_as(folder: str, meta: dict, weights_dtype: str, batch: np.ndarray, reference: np.ndarray) -> dict:
    """Rewrite the weights file of the export in ``folder`` (whose ``inference.yml`` is
    ``meta``) with float tensors stored as ``weights_dtype``, check the result against
    ``reference`` (outputs on ``batch``) and return the updated metadata."""
    from .params_file import cast_file

    if weights_dtype not in WEIGHTS_DTYPES:
        raise ExportError(f"weights dtype must be one of {', '.join(WEIGHTS_DTYPES)}, got {weights_dtype!r}")
    if weights_dtype == "float32":
        return meta
    files = meta["files"]
    src = os.path.join(folder, files["params"])
    cast_file(src, os.path.join(folder, FP16_PARAMS), "float32", "float16")
    os.remove(src)
    meta = {**meta, "files": {**files, "params": FP16_PARAMS}, "weights_dtype": "float16"}
    _write_yaml(os.path.join(folder, "inference.yml"), meta)
    output = _predictor_output(folder, batch, meta.get("precision", "fp32"))
    cos = cosine(output, reference)
    if not cos >= FP16_MIN_COSINE:
        raise ExportError(f"float16 weights change the outputs too much: cosine {cos:.5f} to the float32 export "
                          f"(minimum {FP16_MIN_COSINE}); keep --weights-dtype float32")
    checks = {**meta.get("checks", {}), "float16_weights_cosine": cos,
              "float16_weights_max_abs_diff": float(np.abs(output - reference).max())}
    meta["checks"] = checks
    _write_yaml(os.path.join(folder, "inference.yml"), meta)
    return meta


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
                 onnx: bool = False, verify: bool = True, precision: str = "fp32",
                 weights_dtype: str = "float32") -> dict:
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
        precision: what the predictor runs: "fp32" or "bf16" (oneDNN bfloat16 kernels on
            the float32 program; the CPU must support bf16). int8 needs calibration or
            quantization-aware training: ``ppzoo.compress.quant``. Default: "fp32".
        weights_dtype: "float32", or "float16" to store the weights as halves (half the
            file; loaded back as float32, checked to cosine >= 0.999). Default: "float32".
    """
    if precision not in ("fp32", "bf16"):
        raise ExportError(f"export precision must be fp32 or bf16, got {precision!r}" + (
            " (int8 needs calibration: tools/export.py --precision int8, or Slim.quant in tools/compress.py)"
            if precision == "int8" else ""))
    if weights_dtype not in WEIGHTS_DTYPES:
        raise ExportError(f"weights dtype must be one of {', '.join(WEIGHTS_DTYPES)}, got {weights_dtype!r}")
    input_shape = [int(v) for v in input_shape]
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ExportError(f"input_shape must be [C, H, W] with positive sizes, got {input_shape}")
    if batch_size is not None and batch_size < 1:
        raise ExportError(f"batch_size must be >= 1 or None (dynamic), got {batch_size}")
    was_training = model.training
    model.eval()
    try:
        return _export(model, save_dir, input_shape, name, add_softmax, batch_size, preprocess, topk, class_names,
                       onnx, verify, precision, weights_dtype)
    finally:
        if was_training:
            model.train()


def _export(model, save_dir, input_shape, name, add_softmax, batch_size, preprocess, topk, class_names, onnx,
            verify, precision="fp32", weights_dtype="float32") -> dict:
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
    meta = build_metadata(name or type(model).__name__, [batch_size, *input_shape], int(reference.shape[-1]),
                          add_softmax, preprocess or default_preprocess(input_shape), topk, class_names, precision)
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
        if weights_dtype != "float32":
            meta = store_weights_as(tmp, meta, weights_dtype, batch, reference)
        if verify and precision == "bf16":
            meta["checks"]["bf16_cosine"] = cosine(_predictor_output(tmp, batch, "bf16"), reference)
            _write_yaml(os.path.join(tmp, "inference.yml"), meta)
        for name in (*PROGRAM_FILES, "inference.pdiparams", FP16_PARAMS, "inference.pdiparams.info"):
            if os.path.exists(os.path.join(save_dir, name)) and not os.path.exists(os.path.join(tmp, name)):
                os.remove(os.path.join(save_dir, name))  # from an older export of another kind: would mix
        for file in os.listdir(tmp):
            os.replace(os.path.join(tmp, file), os.path.join(save_dir, file))
    if not onnx and os.path.exists(os.path.join(save_dir, "model.onnx")):
        os.remove(os.path.join(save_dir, "model.onnx"))  # from an older export: would not match
    return meta


def build_metadata(name: str, shape: Sequence, num_classes: int, softmax: bool, preprocess: list, topk: int,
                   class_names: Optional[List[str]], precision: str = "fp32",
                   files: Optional[dict] = None) -> dict:
    """The content of ``inference.yml`` (``shape`` includes the batch, ``None`` = dynamic)."""
    return {
        "model": name,
        "ppzoo_version": __version__,
        "paddle_version": paddle.__version__,
        "input": {"name": "x", "shape": list(shape), "dtype": "float32"},
        "output": {"num_classes": int(num_classes), "softmax": bool(softmax)},
        "PreProcess": {"transform_ops": preprocess},
        "PostProcess": {"name": "Topk", "topk": int(topk)},
        "class_names": list(class_names) if class_names else None,
        "precision": precision,
        "weights_dtype": "float32",
        "files": files or {"program": "inference.json", "params": "inference.pdiparams"},
    }


def write_metadata(folder: str, meta: dict) -> None:
    """Write ``meta`` as ``folder/inference.yml``."""
    _write_yaml(os.path.join(folder, "inference.yml"), meta)


def _write_yaml(path: str, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, sort_keys=False)


def read_metadata(model_dir: str) -> dict:
    """Check a model folder and return its ``inference.yml`` (with ``precision``,
    ``weights_dtype`` and ``files`` filled for exports older than those keys)."""
    if not os.path.isdir(model_dir):
        raise ExportError(f"model folder not found: {model_dir}")
    path = os.path.join(model_dir, "inference.yml")
    if not os.path.isfile(path):
        expected = REQUIRED_FILES if not os.path.isfile(os.path.join(model_dir, "inference.pdmodel")) else (
            "inference.pdmodel", "inference.pdiparams", "inference.yml")
        missing = [f for f in expected if not os.path.isfile(os.path.join(model_dir, f))]
        raise ExportError(f"{model_dir} is incomplete: missing {', '.join(missing)} (write it with tools/export.py)")
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
    meta.setdefault("precision", "fp32")
    meta.setdefault("weights_dtype", "float32")
    meta.setdefault("files", {"program": "inference.json", "params": "inference.pdiparams"})
    if meta["precision"] not in PRECISIONS:
        raise ExportError(f"{path}: precision {meta['precision']!r} is not one of {', '.join(PRECISIONS)}")
    files = meta["files"]
    missing = [files[k] for k in ("program", "params") if not os.path.isfile(os.path.join(model_dir, files[k]))]
    if missing:
        raise ExportError(f"{model_dir} is incomplete: missing {', '.join(missing)} (inference.yml lists them; "
                          "export again)")
    others = [f for f in (*PROGRAM_FILES, "inference.pdiparams", FP16_PARAMS)
              if f not in files.values() and os.path.isfile(os.path.join(model_dir, f))]
    if others:
        raise ExportError(f"{model_dir} mixes two exports: inference.yml describes a {meta['precision']} model in "
                          f"{files['program']} + {files['params']}, but {', '.join(others)} lie beside them; "
                          "export each precision to its own folder")
    if meta["precision"] == "int8":
        with open(os.path.join(model_dir, files["program"]), "rb") as f:
            if b"quantize_linear" not in f.read():
                raise ExportError(f"{model_dir}: inference.yml says int8, but {files['program']} holds no quantize "
                                  "ops (a float32 program); quantize it again with ppzoo.compress.quant")
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
                       onnx: bool = False, safetensors: bool = False, precision: str = "fp32",
                       weights_dtype: str = "float32") -> dict:
    """What ``tools/export.py`` does: build ``Arch``, load ``Global.pretrained_model``, take
    the input size from ``Global.image_shape``, preprocessing from ``Infer.transforms``
    (else the eval set's transforms, else resize/crop/normalise with the model's mean and
    std), class names from ``Infer.PostProcess.class_id_map_file`` (or the eval set's
    ``class_names_path``), and export to ``Global.save_inference_dir`` at ``precision``
    (fp32 or bf16; int8 is ``ppzoo.compress.quant``) with ``weights_dtype`` storage. With
    ``safetensors`` the weights are also written there as ``model.safetensors`` (the
    format to publish: loading it runs no code), with the model name and config in its
    metadata."""
    from ..utils.weights import load_weights, save_weights

    g, arch = cfg["Global"], cfg["Arch"]
    weights = g["pretrained_model"]
    if not weights and not random_weights:
        raise ExportError("no weights to export: set -o Global.pretrained_model=PATH (a .pdparams file or prefix), "
                          "or pass --random-weights to export an untrained model")
    model = build_from_arch(arch, for_inference=True)
    if weights:
        load_weights(model, weights)
    meta = export_model(model, g["save_inference_dir"], batch_size=batch_size, onnx=onnx, precision=precision,
                        weights_dtype=weights_dtype, **export_settings(cfg, getattr(model, "registry_name", None)))
    if safetensors:
        # the training weights (for ppzoo.create_model(..., pretrained=...)), not the inference graph
        path = save_weights(model, os.path.join(g["save_inference_dir"], "model.safetensors"), metadata={
            "format": "ppzoo", "arch": json.dumps({k: v for k, v in arch.items() if v is not None}),
            "source": str(weights or "random weights")})
        meta["safetensors"] = path
    return meta


def export_settings(cfg: dict, name: Optional[str] = None) -> dict:
    """The ``export_model`` keywords a config implies: input shape, name (``name``, else
    ``Arch.name``; a DistillationModel deploys its ``infer_model_name`` model), softmax,
    preprocessing, top-k and class names (see :func:`export_from_config`)."""
    from ..data.datasets import _read_class_names

    g, arch = cfg["Global"], cfg["Arch"]
    name = name or arch["name"]
    infer = cfg.get("Infer", {})
    post = infer.get("PostProcess") or {}
    preprocess = infer.get("transforms") or _eval_preprocess(cfg) or default_preprocess(g["image_shape"],
                                                                                          *_norm_crop(name))
    names_file = post.get("class_id_map_file") or (
        cfg.get("DataLoader", {}).get("Eval", {}).get("dataset", {}).get("class_names_path"))
    return {"input_shape": g["image_shape"], "name": name, "add_softmax": arch.get("infer_add_softmax", False),
            "preprocess": preprocess, "topk": post.get("topk", 5),
            "class_names": _read_class_names(names_file) if names_file else None}
