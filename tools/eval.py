"""Evaluate trained weights on the config's DataLoader.Eval set.

    python tools/eval.py -c configs/shufflenet.yaml -o Global.pretrained_model=output/shufflenet_v1_g3_x1_0/best_model
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppzoo.utils.cli import config_parser, run  # noqa: E402


def main():
    parser = config_parser(__doc__)
    parser.add_argument("--json", metavar="PATH", help="where to write the figures as JSON "
                        "(default: <output_dir>/<Arch.name>/eval_metrics.json)")
    args = parser.parse_args()

    from ppzoo.config import load_config
    from ppzoo.engine import evaluate_config, output_dir_of
    from ppzoo.utils.fileio import write_json

    cfg = load_config(args.config, args.override)
    result = evaluate_config(cfg)
    topk = sorted(int(k[3:]) for k in result if k.startswith("top"))
    print(f"{result['arch']} on {result['images']} images: "
          + " ".join(f"top{k} {result[f'top{k}']:.2f}%" for k in topk) + f" loss {result['loss']:.4f}"
          + (f" ({result['skipped']} unreadable images skipped)" if result["skipped"] else ""))
    path = args.json or os.path.join(output_dir_of(cfg), "eval_metrics.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_json(path, result)
    print(f"figures written to {path}")
    return 0


if __name__ == "__main__":
    run(main)
