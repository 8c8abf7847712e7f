"""Train a model from a config file.

    python tools/train.py -c configs/shufflenet.yaml
    python tools/train.py -c configs/cifar10/mobilenet_v2.yaml -o Global.epochs=30 -o Optimizer.lr.learning_rate=0.05
    python -m paddle.distributed.launch --nproc_per_node 2 tools/train.py -c configs/shufflenet.yaml
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppzoo.utils.cli import config_parser, run  # noqa: E402


def main():
    parser = config_parser(__doc__)
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
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
