"""The ``Infer`` section: preprocessing and top-k post-processing written into an export's
``inference.yml``."""
from typing import Optional

from ..config import ConfigError, check_keys, check_list, check_mapping, register_section
from ..data import TRANSFORMS

__all__ = ["POSTPROCESS", "INFER"]

POSTPROCESS = {"name": (str, "Topk"), "topk": (int, 5), "class_id_map_file": (Optional[str], None)}
INFER = {"infer_imgs": (Optional[str], None), "batch_size": (int, 1)}  # accepted, ignored (PADDLECLAS_IGNORED)


def check_infer(section, resolved: dict) -> dict:
    infer = check_mapping(section, "Infer")
    out = check_keys({k: v for k, v in infer.items() if k not in ("transforms", "PostProcess")}, INFER, "Infer")
    out["transforms"] = check_list(infer.get("transforms"), TRANSFORMS, "transform", "Infer.transforms")
    post = check_keys(infer.get("PostProcess"), POSTPROCESS, "Infer.PostProcess")
    if post["name"] != "Topk":
        raise ConfigError(f"'Infer.PostProcess.name' must be Topk, got {post['name']!r}", key="Infer.PostProcess.name")
    if post["topk"] < 1:
        raise ConfigError(f"'Infer.PostProcess.topk' must be >= 1, got {post['topk']}", key="Infer.PostProcess.topk")
    out["PostProcess"] = post
    return out


register_section("Infer", check_infer, order=80)
