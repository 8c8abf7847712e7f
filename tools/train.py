"""Train a model from a config file.

    python tools/train.py -c configs/shufflenet.yaml
    python tools/train.py -c configs/cifar10/mobilenet_v2.yaml -o Global.epochs=30 -o Optimizer.lr.learning_rate=0.05
    python -m paddle.distributed.launch --nproc_per_node 2 tools/train.py -c configs/shufflenet.yaml
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppzoo.cli import run  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="YAML config (PaddleClas schema)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. -o Global.epochs=5 (repeatable)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args()

    from ppzoo.config import dump_config, load_config

    cfg = load_config(args.config, args.override)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    from ppzoo.engine import train

    train(cfg, config_path=args.config)
    return 0


if __name__ == "__main__":
    run(main)
