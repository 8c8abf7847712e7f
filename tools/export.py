"""Export trained weights as a Paddle inference model (and optionally ONNX).

    python tools/export.py -c configs/shufflenet.yaml \
        -o Global.pretrained_model=output/shufflenet_v1_g3_x1_0/best_model -o Global.save_inference_dir=inference
    python tools/export.py -c configs/imagenet/mobilenet_v2.yaml --random-weights --onnx

The input size comes from Global.image_shape, preprocessing from Infer.transforms, class
names from Infer.PostProcess.class_id_map_file (or the eval set's class_names_path).

    python tools/export.py -c CFG -o Global.pretrained_model=W --weights-dtype float16   # half the weights file
    python tools/export.py -c CFG -o Global.pretrained_model=W --precision bf16          # run as oneDNN bf16
    python tools/export.py -c CFG -o Global.pretrained_model=W --precision int8 \
        -o Slim.quant.algo=hist -o Slim.quant.calib_batches=10                           # post-training int8

--precision and --weights-dtype default to Slim.export.precision / weights_dtype when the
config has them. int8 calibrates on DataLoader.Train images with the eval transforms
(Slim.quant: algo, calib_batches, batch_size; docs/compression.md, "Quantization").
"""
import sys

from _bootstrap import HELD  # noqa: E402  (first: sys.path, signals held while Paddle loads)
from ppzoo.utils.cli import config_parser, run  # noqa: E402


def main():
    parser = config_parser(__doc__)
    parser.add_argument("--random-weights", action="store_true", help="export untrained weights (no pretrained_model)")
    parser.add_argument("--batch-size", type=int, help="fix the batch dimension (default: dynamic)")
    parser.add_argument("--onnx", action="store_true", help="also write model.onnx and check it with ONNX Runtime")
    parser.add_argument("--safetensors", action="store_true", help="also write the weights as model.safetensors "
                        "(the format to publish: loading it runs no code)")
    parser.add_argument("--precision", choices=["fp32", "bf16", "int8"],
                        help="fp32, bf16 (oneDNN bfloat16) or int8 (post-training quantization with Slim.quant's "
                             "settings); default: Slim.export.precision, else fp32")
    parser.add_argument("--weights-dtype", choices=["float32", "float16"],
                        help="store the weights as float16 (half the file, loaded as float32); default: "
                             "Slim.export.weights_dtype, else float32")
    args = parser.parse_args()

    from ppzoo.config import load_config
    from ppzoo.deploy.export import export_from_config

    cfg = load_config(args.config, args.override)
    slim_export = cfg.get("Slim", {}).get("export", {})
    precision = args.precision or slim_export.get("precision", "fp32")
    weights_dtype = args.weights_dtype or slim_export.get("weights_dtype", "float32")
    if precision == "int8":
        if args.onnx or args.random_weights or args.safetensors:
            raise ValueError("--precision int8 exports a Paddle int8 program only: drop --onnx / --random-weights / "
                             "--safetensors")
        from ppzoo.compress.quant import quantize_from_config

        meta = quantize_from_config(cfg, batch_size=args.batch_size, weights_dtype=weights_dtype)
    else:
        meta = export_from_config(cfg, random_weights=args.random_weights, batch_size=args.batch_size, onnx=args.onnx,
                                  safetensors=args.safetensors, precision=precision, weights_dtype=weights_dtype)
    out = cfg["Global"]["save_inference_dir"]
    checks = ", ".join(f"{k} {v:.4g}" for k, v in meta.get("checks", {}).items() if isinstance(v, (int, float)))
    files = ", ".join([*meta["files"].values(), "inference.yml"] + (["model.onnx"] if args.onnx else [])
                      + (["model.safetensors"] if args.safetensors else []))
    print(f"exported {meta['model']} (input {meta['input']['shape']}, {meta['precision']}, weights "
          f"{meta['weights_dtype']}) to {out}: {files}; checked against the model: "
          f"{checks}\nnext: python tools/infer.py --model-dir {out} -i IMAGE_OR_FOLDER")
    return 0


if __name__ == "__main__":
    run(main, held_signals=HELD)
