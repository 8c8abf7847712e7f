"""Train a model from a config file.

    python tools/train.py -c configs/shufflenet.yaml
    python tools/train.py -c configs/cifar10/mobilenet_v2.yaml -o Global.epochs=30 -o Optimizer.lr.learning_rate=0.05
    python -m paddle.distributed.launch --nproc_per_node 2 tools/train.py -c configs/shufflenet.yaml
"""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Ctrl-C and kill are held while Paddle loads (raised inside its import, they would read as a
# broken install); run() acts on them first, then both end the tool as an interruption.
HELD = []
for _sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(_sig, lambda signum, frame: HELD.append(signum))
from ppzoo.cli import config_parser, run  # noqa: E402


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
    run(main, held_signals=HELD)
