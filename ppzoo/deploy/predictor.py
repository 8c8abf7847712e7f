"""Running an exported model with Paddle Inference: ``Predictor(model_dir)``.

    from ppzoo.inference import Predictor
    predictor = Predictor("inference/")                  # CPU, oneDNN, all cores
    predictor.predict(["cat.jpg", "dog.jpg"])            # top-k classes with names and scores
    predictor.benchmark(batch_size=1)                    # latency p50/p90 and throughput

The precision comes from the folder's ``inference.yml`` (``precision: fp32 | bf16 | int8``)
unless ``precision=`` overrides it: int8 runs oneDNN int8 kernels on CPU (TensorRT int8 on
GPU with ``tensorrt=True``), bf16 runs oneDNN bfloat16 kernels when the CPU has them and
falls back to float32 with a notice when it has not. Weights stored as float16
(``weights_dtype: float16``) are widened to float32 before loading.
"""
import contextlib
import logging
import os
import shutil
import sys
import tempfile
from typing import List, Optional, Sequence, Union

import numpy as np
import paddle
import paddle.inference as paddle_infer
from PIL import Image

from ..utils.timing import time_fn
from ..data import BadImageError, build_transforms
from ..data.datasets import IMAGE_EXTENSIONS, text_lines
from .export import ExportError, read_metadata

__all__ = ["Predictor", "collect_images", "accuracy", "bf16_supported"]

_log = logging.getLogger("ppzoo.deploy")


def bf16_supported() -> bool:
    """Does this CPU have the bfloat16 instructions oneDNN needs (AVX512-BF16 or AMX)?"""
    try:
        return bool(paddle.base.core.supports_bfloat16())
    except AttributeError:  # a Paddle build without the query
        return False


def _precision(meta: dict, asked: Optional[str], device: str, tensorrt: bool, onednn: bool, model_dir: str,
               quiet: bool) -> str:
    """The precision to run: the export's unless ``asked``; checks the combination."""
    stored = meta["precision"]
    precision = asked or stored
    if precision not in ("fp32", "bf16", "int8"):
        raise ValueError(f"precision must be fp32, bf16 or int8, got {precision!r}")
    if precision == "int8" and stored != "int8":
        raise ValueError(f"{model_dir} holds a {stored} program; int8 needs a quantized export "
                         "(tools/export.py --precision int8, or Slim.quant)")
    if stored == "int8" and precision != "int8":
        raise ValueError(f"{model_dir} is an int8 model; it runs only as int8 (export the float32 model separately)")
    if precision == "int8" and device == "cpu" and not onednn:
        raise ValueError("int8 runs on oneDNN kernels on CPU: drop --no-onednn")
    if precision == "int8" and device == "gpu" and not tensorrt:
        raise ValueError("int8 on GPU runs through TensorRT: add --tensorrt")
    if precision == "bf16":
        if device != "cpu":
            raise ValueError("bf16 is a CPU (oneDNN) precision here; on GPU use fp32 or TensorRT int8")
        if not onednn:
            raise ValueError("bf16 runs on oneDNN kernels: drop --no-onednn")
        if not bf16_supported():
            message = ("this CPU has no bfloat16 instructions (AVX512-BF16 / AMX); running the float32 program in "
                       "float32 instead of bf16")
            if not quiet:
                _log.warning(message)
                print(f"notice: {message}", flush=True)
            return "fp32"
    return precision


@contextlib.contextmanager
def _silenced_fds(fds=(1, 2)):
    """Send what C++ code writes to stdout/stderr to /dev/null meanwhile (Python's own
    streams are flushed first and restored after)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(null, fd)
        yield
    finally:
        for fd, copy in zip(fds, saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(null)


def _read_image(item) -> bytes:
    if isinstance(item, (bytes, bytearray)):
        return item
    if isinstance(item, (str, os.PathLike)):
        try:
            with open(item, "rb") as f:
                return f.read()
        except OSError as e:
            raise BadImageError(f"cannot read image: {e.strerror}") from None
    if isinstance(item, (Image.Image, np.ndarray)):
        return item  # DecodeImage accepts them
    raise BadImageError(f"expected a path, bytes, a PIL image or an HWC uint8 array, got {type(item).__name__}")


class Predictor:
    """An exported model folder behind ``paddle.inference``.

    Args:
        model_dir (str): folder written by ``tools/export.py`` / ``ppzoo.export.export_model``.
        device (str): "cpu" or "gpu" (needs ``paddlepaddle-gpu``). Default: "cpu".
        threads (int, optional): CPU math threads. Default: one per core.
        onednn (bool): oneDNN (MKL-DNN) kernels on CPU. Default: True.
        tensorrt (bool): TensorRT subgraphs on GPU (a Paddle build with TensorRT). Default: False.
        gpu_id (int): which GPU. Default: 0.
        precision (str, optional): "fp32", "bf16" or "int8". Default: the export's
            ``inference.yml`` ``precision``. A float32 export may run as bf16; an int8
            export runs only as int8.
        quiet (bool): no notice when bf16 falls back to float32. Default: False.
    """

    def __init__(self, model_dir: str, device: str = "cpu", threads: Optional[int] = None, onednn: bool = True,
                 tensorrt: bool = False, gpu_id: int = 0, precision: Optional[str] = None, quiet: bool = False):
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 (or None: one per core), got {threads}")
        self.meta = read_metadata(model_dir)
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
        self.precision = _precision(self.meta, precision, device, tensorrt, onednn, model_dir, quiet)
        files = self.meta["files"]
        program, params = os.path.join(model_dir, files["program"]), os.path.join(model_dir, files["params"])
        widened = None
        if self.meta["weights_dtype"] == "float16":  # the program wants float32 weights: widen them first
            from .params_file import widen_to_float32

            widened = tempfile.mkdtemp(prefix="ppzoo-fp16-")
            params = os.path.join(widened, "inference.pdiparams")
            widen_to_float32(os.path.join(model_dir, files["params"]), params)
        try:
            self._create(model_dir, program, params, device, threads, onednn, tensorrt, gpu_id)
        finally:
            if widened:
                shutil.rmtree(widened, ignore_errors=True)  # the predictor holds the weights in memory now
        self.settings = {"device": device, "threads": threads or os.cpu_count(), "onednn": onednn and device == "cpu",
                         "tensorrt": tensorrt, "precision": self.precision}
        self._input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self._output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])
        self.transform = build_transforms(self.meta["PreProcess"]["transform_ops"])
        self.class_names = self.meta.get("class_names")

    def _create(self, model_dir, program, params, device, threads, onednn, tensorrt, gpu_id) -> None:
        config = paddle_infer.Config(program, params)
        if device == "gpu":
            if not paddle.device.is_compiled_with_cuda():
                raise ValueError("device gpu needs a CUDA build of Paddle: pip install 'ppzoo[gpu]'")
            config.enable_use_gpu(256, gpu_id)
            if tensorrt:
                max_batch = self.meta["input"]["shape"][0] or 32
                # an int8 export carries its scales (quantize_linear ops): no TensorRT calibration
                mode = paddle_infer.PrecisionType.Int8 if self.precision == "int8" else paddle_infer.PrecisionType.Float32
                config.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=max_batch, min_subgraph_size=3,
                                              precision_mode=mode, use_static=False, use_calib_mode=False)
        else:
            if tensorrt:
                raise ValueError("TensorRT runs on GPU only: add --device gpu")
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(threads or os.cpu_count() or 1)
            if onednn:
                config.enable_onednn()
                if self.precision == "int8":
                    # an export may restrict the int8 op types (AlexNet: oneDNN has no int8 concat primitive
                    # for LRN's zero-padded window); the default is every type oneDNN quantizes
                    ops = (self.meta.get("quantization") or {}).get("onednn_int8_op_types")
                    config.enable_onednn_int8(set(ops) if ops else set())
                elif self.precision == "bf16":
                    config.enable_onednn_bfloat16()
            else:
                config.disable_onednn()
        config.disable_glog_info()
        try:
            # oneDNN's int8 passes print their op counts straight to the C++ streams
            with _silenced_fds() if self.precision == "int8" else contextlib.nullcontext():
                self.predictor = paddle_infer.create_predictor(config)
        except (RuntimeError, ValueError, OSError) as e:  # a corrupt program or weights file
            raise ExportError(f"paddle.inference cannot load {model_dir}: {str(e).strip().splitlines()[0]} "
                              "(export it again)") from None

    @property
    def input_shape(self) -> List[Optional[int]]:
        """[batch or None, C, H, W] of the exported program."""
        return list(self.meta["input"]["shape"])

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Raw outputs for a preprocessed NCHW float32 batch."""
        batch = np.ascontiguousarray(batch, dtype="float32")
        fixed, *chw = self.input_shape
        if batch.ndim != 4 or list(batch.shape[1:]) != chw:
            raise ValueError(f"the model takes input [N, {', '.join(map(str, chw))}], got {list(batch.shape)}")
        if fixed is not None and batch.shape[0] > fixed:
            raise ValueError(f"this model was exported with a fixed batch of {fixed}; got {batch.shape[0]} images "
                             "(split them, or export again without --batch-size for a dynamic batch)")
        if fixed is not None and batch.shape[0] < fixed:  # pad a short last batch
            pad = np.zeros([fixed - batch.shape[0], *chw], dtype="float32")
            return self.run(np.concatenate([batch, pad]))[:batch.shape[0]]
        self._input.reshape(list(batch.shape))
        self._input.copy_from_cpu(batch)
        self.predictor.run()
        return self._output.copy_to_cpu()

    def preprocess(self, images: Sequence) -> np.ndarray:
        """Images (paths, bytes, PIL images or HWC uint8 arrays) -> NCHW float32 batch."""
        arrays = []
        for item in images:
            try:
                out = self.transform(_read_image(item))
            except BadImageError as e:
                name = os.fspath(item) if isinstance(item, (str, os.PathLike)) else "image"
                raise BadImageError(f"{name}: {e}") from None
            out = np.asarray(out, dtype="float32")
            arrays.append(out if self.transform.chw else out.transpose(2, 0, 1))
        return np.stack(arrays)

    def predict(self, images: Union[Sequence, str], topk: Optional[int] = None, batch_size: int = 8) -> List[List[dict]]:
        """Top-k ``{"class_id", "label", "score"}`` per image (scores are softmax
        probabilities unless the model already ends in a softmax)."""
        if isinstance(images, (str, bytes, os.PathLike)):
            images = [images]
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if topk is not None and topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        topk = topk or self.meta["PostProcess"].get("topk", 5)
        fixed = self.input_shape[0]
        batch_size = min(batch_size, fixed) if fixed else batch_size
        results = []
        for start in range(0, len(images), batch_size):
            logits = self.run(self.preprocess(images[start:start + batch_size]))
            probs = logits if self.meta["output"].get("softmax") else _softmax(logits)
            for row in probs:
                order = np.argsort(-row)[:topk]
                results.append([{"class_id": int(i), "label": self._label(int(i)), "score": float(row[i])}
                                for i in order])
        return results

    def _label(self, class_id: int) -> str:
        names = self.class_names
        return names[class_id] if names and class_id < len(names) else str(class_id)

    def benchmark(self, batch_size: int = 1, warmup: int = 10, repeat: int = 50) -> dict:
        """Latency of ``run`` on a random batch: warm-up, then p50/p90 over ``repeat`` runs."""
        fixed, *chw = self.input_shape
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if fixed is not None and batch_size != fixed:
            raise ValueError(f"this model was exported with a fixed batch of {fixed}; benchmark batch {batch_size} "
                             f"is not possible")
        batch = np.random.default_rng(0).standard_normal([batch_size, *chw]).astype("float32")
        timing = time_fn(lambda: self.run(batch), repeat=repeat, warmup=warmup)
        ms = timing.as_dict()
        return {"batch_size": batch_size, "warmup": warmup, "runs": repeat, **self.settings, "p50_ms": ms["p50"],
                "p90_ms": ms["p90"], "mean_ms": ms["mean"], "images_per_s": batch_size / timing.median}


def collect_images(source: str, image_root: Optional[str] = None):
    """An image, a folder (searched recursively, sorted) or a label list (``path label``
    per line, paths relative to ``image_root`` or the list's folder) -> (paths, labels or None)."""
    if os.path.isdir(source):
        paths = sorted(os.path.join(d, f) for d, _, files in os.walk(source) for f in files
                       if f.lower().endswith(IMAGE_EXTENSIONS))
        if not paths:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {source}")
        return paths, None
    if not os.path.isfile(source):
        raise ValueError(f"input not found: {source}")
    if source.lower().endswith(IMAGE_EXTENSIONS):
        return [source], None
    if not source.lower().endswith((".txt", ".list", ".lst")):
        raise ValueError(f"{source}: expected an image ({', '.join(IMAGE_EXTENSIONS)}), a folder, or a label list "
                         "(.txt with 'path label' lines)")
    root = image_root or os.path.dirname(source)
    paths, labels = [], []
    for number, line in text_lines(source):  # a line that is not UTF-8 is an error naming it
        if line.strip():
            *path, label = line.split()
            if not path or not label.lstrip("-").isdigit():
                raise ValueError(f"{source}:{number}: expected 'relative/path.jpg label', got {line.strip()!r}")
            paths.append(os.path.join(root, " ".join(path)))
            labels.append(int(label))
    if not paths:
        raise ValueError(f"{source} lists no images")
    return paths, labels


def accuracy(predictions: List[List[dict]], labels: Sequence[int]) -> dict:
    """Top-1 and top-k (k = entries per prediction) accuracy in percent."""
    k = len(predictions[0])
    n = len(labels)
    top1 = sum(p[0]["class_id"] == y for p, y in zip(predictions, labels))
    topk = sum(y in [t["class_id"] for t in p] for p, y in zip(predictions, labels))
    return {"images": n, "top1": 100.0 * top1 / n, f"top{k}": 100.0 * topk / n}


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)

