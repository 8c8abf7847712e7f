"""Binary networks on CIFAR-10: binary weights and fully binary (weights + activations)
fine-tuned from a trained float32 checkpoint, against that checkpoint; bit-packed sizes.

Each arm converts the trained model (``Slim.quant: {name: binary}``: first conv and last
Linear kept in full precision) and fine-tunes it through the ordinary trainer for
``--epochs`` epochs on ``--images`` training images, then evaluates on ``test_2k_list.txt``
(dygraph; Paddle has no 1-bit kernels, so there is no speed to measure).

    python benchmarks/binary.py --json docs/results/binary.json
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ppzoo  # noqa: E402,F401
import numpy as np  # noqa: E402
import paddle  # noqa: E402

from ppzoo.data import build_dataloader  # noqa: E402
from ppzoo.engine import train  # noqa: E402
from ppzoo.engine.builders import build_loss  # noqa: E402
from ppzoo.engine.loop import evaluate  # noqa: E402
from ppzoo.registry import build_from_arch  # noqa: E402
from ppzoo.utils.weights import load_weights  # noqa: E402

from quant import config_for  # noqa: E402  (benchmarks/quant.py)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="shufflenet_v1_g3_x0_5")
    parser.add_argument("--artifacts", default="/work/artifacts/cifar10")
    parser.add_argument("--data", default="/work/shared/datasets/cifar10")
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arms", nargs="+", default=["binary_weights", "binary_weights_activations"])
    parser.add_argument("--json")
    args = parser.parse_args()
    arch = args.model
    weights = os.path.join(args.artifacts, arch, "best_model.pdparams")
    results = {"command": "python benchmarks/binary.py " + " ".join(sys.argv[1:]), "model": arch, "weights": weights,
               "fine_tune": {"images": args.images, "epochs": args.epochs, "lr": args.lr}, "arms": {}}
    with tempfile.TemporaryDirectory() as work:
        cfg = config_for(arch, args.data, work, weights)
        loss = build_loss(cfg["Loss"]["Eval"])
        loader = build_dataloader(cfg["DataLoader"]["Eval"], False, 10)
        model = build_from_arch(cfg["Arch"], for_inference=True)
        load_weights(model, weights)
        results["arms"]["fp32"] = {"top1": evaluate(model, loader, loss, [1])["top1"],
                                   "params_bytes": sum(4 * int(np.prod(p.shape)) for p in model.state_dict().values())}
        lines = [line for line in open(os.path.join(args.data, "train_10k_list.txt")).read().split("\n") if line]
        subset = os.path.join(work, "list.txt")
        with open(subset, "w") as f:
            f.write("\n".join(lines[i] for i in np.random.default_rng(0).permutation(len(lines))[:args.images]))
        for name, activations in (("binary_weights", False), ("binary_weights_activations", True)):
            if name not in args.arms:
                continue
            out = os.path.join(work, name)
            cfg = config_for(arch, args.data, out, weights, [
                f"DataLoader.Train.dataset.cls_label_path={subset}", f"Global.epochs={args.epochs}",
                "Global.eval_during_train=False", f"Optimizer.lr.learning_rate={args.lr}",
                "Optimizer.lr.warmup_epoch=0", f"Global.cpu_threads={args.threads}", "Slim.quant.name=binary",
                f"Slim.quant.activations={activations}", "DataLoader.Train.sampler.batch_size=64"])
            start = time.perf_counter()
            train(cfg)
            folder = os.path.join(out, arch)
            binary = ppzoo.create_model(os.path.join(folder, "binary_model.arch.json"))
            binary.set_state_dict(paddle.load(os.path.join(folder, "binary_model.pdparams")))
            size = json.load(open(os.path.join(folder, "binary_model.size.json")))
            results["arms"][name] = {"top1": evaluate(binary, loader, loss, [1])["top1"], "size": size,
                                     "seconds": time.perf_counter() - start}
            print(name, results["arms"][name])
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(results, f, indent=1)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
