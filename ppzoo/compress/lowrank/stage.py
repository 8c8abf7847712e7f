"""``Slim.lowrank``: the config key, its checker, and the stage ``tools/compress.py`` runs.

```yaml
Slim:
  lowrank:
    name: svd            # svd | spatial_svd | tucker2 | cp | pq
    layers: [pre_logits.*]   # name patterns, or auto (default)
    rank: 256            # or ratio: 0.2 (share of weights kept) | energy: 0.9 | vbmf: true
    fine_tune_epochs: 1  # the ordinary trainer on the config's data and optimizer
    calibration_images: 0  # svd, pq: > 0 fits the layers' responses on this many training images
```
pq takes ``subvector`` (d, default 4) or ``subspaces`` (M), and ``codebook`` (K, 2..256)
instead of a rank.
"""
import os
from typing import List, Optional, Union

from ...config import ConfigError, check_keys
from .decompose import decompose
from .factorize import METHODS
from .pq import product_quantize, save_pq

__all__ = ["check_lowrank", "run_lowrank", "SPEC", "NAMES"]

NAMES = (*METHODS, "pq")
SPEC = {
    "name": (str, None),
    "layers": (Union[str, List[str]], "auto"),
    "rank": (Optional[Union[int, List[int]]], None),
    "ratio": (Optional[float], None),
    "energy": (Optional[float], None),
    "vbmf": (bool, False),
    "subvector": (Optional[int], None),
    "subspaces": (Optional[int], None),
    "codebook": (int, 256),
    "min_speedup": (float, 1.05),
    "input_size": (Optional[List[int]], None),
    "fine_tune_epochs": (int, 0),
    "calibration_images": (int, 0),
}
_PQ_KEYS = ("subvector", "subspaces")
_W = "Slim.lowrank"


def _fail(message: str, key: str):
    raise ConfigError(message, key=f"{_W}.{key}" if key else _W)


def check_lowrank(section, resolved: dict) -> dict:
    """Check ``Slim.lowrank``; every error names its key and what would be valid."""
    p = check_keys(section, SPEC, _W)
    name = p["name"]
    if name not in NAMES:
        _fail(f"'{_W}.name' must be one of {', '.join(NAMES)}, got {name!r}", "name")
    layers = p["layers"]
    if isinstance(layers, str):
        layers = layers.strip()
        if not layers:
            _fail(f"'{_W}.layers' must be auto or a list of layer-name patterns, got an empty string", "layers")
        p["layers"] = layers if layers == "auto" else [layers]
    elif not layers or not all(isinstance(x, str) and x.strip() for x in layers):
        _fail(f"'{_W}.layers' must be auto or a non-empty list of layer-name patterns, got {layers!r}", "layers")
    rank = p["rank"]
    if rank is not None:
        ranks = [rank] if isinstance(rank, int) else rank
        if isinstance(rank, list) and (name != "tucker2" or len(rank) != 2):
            _fail(f"'{_W}.rank' must be an int{' or [R1, R2]' if name == 'tucker2' else ''} for {name}, got {rank}",
                  "rank")
        if min(ranks) < 1:
            _fail(f"'{_W}.rank' must be >= 1 (rank 0 removes the layer), got {rank}", "rank")
    for key, what in (("ratio", "share of the layer's weights kept"), ("energy", "share of the squared singular "
                                                                                  "values kept")):
        if p[key] is not None and not 0.0 < p[key] <= 1.0:
            _fail(f"'{_W}.{key}' must be in (0, 1] ({what}), got {p[key]}", key)
    chosen = [k for k in ("rank", "ratio", "energy") if p[k] is not None] + (["vbmf"] if p["vbmf"] else [])
    if name == "pq":
        if chosen:
            _fail(f"'{_W}.{chosen[0]}' does not apply to pq (pq takes subvector or subspaces, and codebook)",
                  chosen[0])
        if p["subvector"] is not None and p["subspaces"] is not None:
            _fail(f"'{_W}': give subvector (d) or subspaces (M) for pq, not both", "subspaces")
        for key in _PQ_KEYS:
            if p[key] is not None and p[key] < 1:
                _fail(f"'{_W}.{key}' must be >= 1, got {p[key]}", key)
        if not 2 <= p["codebook"] <= 256:
            _fail(f"'{_W}.codebook' must be in [2, 256] (codes are uint8), got {p['codebook']}", "codebook")
    else:
        for key in _PQ_KEYS:
            if p[key] is not None:
                _fail(f"'{_W}.{key}' applies to name: pq only, not {name}", key)
        allowed = ("rank", "ratio") if name == "cp" else ("rank", "ratio", "energy", "vbmf")
        if len(chosen) != 1 or chosen[0] not in allowed:
            got = f", got {', '.join(chosen)}" if chosen else ""
            _fail(f"'{_W}' needs exactly one of {', '.join(allowed)} for {name}{got}",
                  chosen[-1] if chosen else "rank")
    if p["min_speedup"] <= 0:
        _fail(f"'{_W}.min_speedup' must be > 0, got {p['min_speedup']}", "min_speedup")
    if p["fine_tune_epochs"] < 0:
        _fail(f"'{_W}.fine_tune_epochs' must be >= 0, got {p['fine_tune_epochs']}", "fine_tune_epochs")
    if p["calibration_images"] < 0 or (p["calibration_images"] and name not in ("svd", "pq")):
        _fail(f"'{_W}.calibration_images' fits svd or pq to the layers' responses: an int >= 0 with name: svd or "
              f"pq, got {p['calibration_images']} with name: {name}", "calibration_images")
    size = p["input_size"]
    if size is not None and (len(size) != 3 or min(size) < 1):
        _fail(f"'{_W}.input_size' must be [C, H, W] with positive sizes, got {size}", "input_size")
    return p


def run_lowrank(model, ctx):
    """The stage: factorise (or product-quantize) as ``Slim.lowrank`` says, then fine-tune
    for ``fine_tune_epochs``. pq also writes ``model.pq.npz`` (codes + codebooks) to the
    stage folder; its size is the stage's ``file_bytes`` (``info["file_bytes"]``)."""
    from ..base import StageResult

    p, log = ctx.params, ctx.logger.info
    where = f"Slim.{ctx.key}"
    data = None
    if p["calibration_images"]:
        from ...data import sample_images

        data = sample_images(ctx.cfg, p["calibration_images"], key=f"{where}.calibration_images")
    if p["name"] == "pq":
        report = product_quantize(model, p["layers"], p["subvector"], p["subspaces"], p["codebook"], arch=ctx.arch,
                                  where=where, log=log, data=data)
    else:
        size = p["input_size"] or ctx.cfg["Global"]["image_shape"]
        report = decompose(model, p["name"], p["layers"], p["rank"], p["ratio"], p["energy"], p["vbmf"], size,
                           p["min_speedup"], arch=ctx.arch, where=where, log=log, data=data)
    info = report.as_dict()
    if not report.layers:
        log(f"{where}: {p['name']} changed no layer")
    if p["fine_tune_epochs"] and report.layers:
        model = ctx.fine_tune(model, p["fine_tune_epochs"])
    if p["name"] == "pq" and report.layers:  # the stored form: codes + codebooks (the report's file size)
        info["pq_file"] = os.path.join(ctx.out_dir, "model.pq.npz")
        info["pq_file_bytes"] = info["file_bytes"] = save_pq(model, info["pq_file"])
    return StageResult(model=model, info=info)
