"""Compress a trained model with the config's Slim stages (prune, lowrank, quant, export, ...).

    python tools/compress.py -c configs/compress/digits.yaml
    python tools/compress.py -c CFG -o Global.pretrained_model=output/x/best_model --latency-size 224

Writes output_dir/<arch>/compress/<k>_<stage>/ per stage and report.json / report.md
(docs/compression.md). A rerun resumes at the first unfinished stage.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppzoo.utils.cli import config_parser, run  # noqa: E402


def main():
    parser = config_parser(__doc__)
    parser.add_argument("--latency-size", type=int, default=None,
                        help="time the predictor at this square input (default: Global.image_shape)")
    parser.add_argument("--threads", type=int, default=2, help="predictor CPU threads for the latency (default 2)")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per stage and batch (default 20)")
    args = parser.parse_args()
    if args.latency_size is not None and args.latency_size < 1:
        raise ValueError(f"--latency-size must be >= 1, got {args.latency_size}")

    from ppzoo.config import load_config
    from ppzoo.engine.recipe import compress

    compress(load_config(args.config, args.override), config_path=args.config, latency_size=args.latency_size,
             threads=args.threads, repeat=args.repeat)
    return 0


if __name__ == "__main__":
    run(main)
