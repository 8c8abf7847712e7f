"""Export trained weights as a Paddle inference model (and optionally ONNX).

    python tools/export.py -c configs/shufflenet.yaml \
        -o Global.pretrained_model=output/shufflenet_v1_g3_x1_0/best_model -o Global.save_inference_dir=inference
    python tools/export.py -c configs/imagenet/mobilenet_v2.yaml --random-weights --onnx

The input size comes from Global.image_shape, preprocessing from Infer.transforms, class
names from Infer.PostProcess.class_id_map_file (or the eval set's class_names_path).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppzoo.utils.cli import config_parser, run  # noqa: E402


def main():
    parser = config_parser(__doc__)
    parser.add_argument("--random-weights", action="store_true", help="export untrained weights (no pretrained_model)")
    parser.add_argument("--batch-size", type=int, help="fix the batch dimension (default: dynamic)")
    parser.add_argument("--onnx", action="store_true", help="also write model.onnx and check it with ONNX Runtime")
    args = parser.parse_args()

    from ppzoo.config import load_config
    from ppzoo.deploy.export import export_from_config

    cfg = load_config(args.config, args.override)
    meta = export_from_config(cfg, random_weights=args.random_weights, batch_size=args.batch_size, onnx=args.onnx)
    out = cfg["Global"]["save_inference_dir"]
    checks = ", ".join(f"{k} {v:.1e}" for k, v in meta.get("checks", {}).items())
    files = "inference.json, inference.pdiparams, inference.yml" + (", model.onnx" if args.onnx else "")
    print(f"exported {meta['model']} (input {meta['input']['shape']}) to {out}: {files}; checked against the model: "
          f"{checks}\nnext: python tools/infer.py --model-dir {out} -i IMAGE_OR_FOLDER")
    return 0


if __name__ == "__main__":
    run(main)
