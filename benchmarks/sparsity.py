"""Sparsity during training on CIFAR-10: gradual magnitude pruning (GMP) and network slimming.

From one trained small-input model (``tools/train.py -c configs/cifar10/<family>.yaml`` on the
10k-image subset), every arm fine-tunes through the ordinary trainer on train_10k_list.txt
for the same ``--epochs`` at ``--lr`` and is tested on test_2k_list.txt:

* **GMP** (Zhu & Gupta, arXiv 1710.01878): ``Slim.sparsity: {name: gmp, final_sparsity: S}``
  for S in ``--gmp`` (0.8, 0.9), sparsity ramped by the cubic schedule from step 0 to 3/4 of
  the run, masks updated every ``steps/40`` steps, the classifier dense. Reported: top-1 of
  the final (fully sparse) model, the measured sparsity of the pruned weights, and the file
  bytes dense vs sparse storage (bitmask + float32 values, and + 8-bit values).
* **Network slimming** (Liu et al., arXiv 1708.06519): the same fine-tune with the L1 penalty
  on BN gamma (``Slim.sparsity: {name: bn_l1, coeff: C}``) and without it, then both pruned
  to the same width by one global |gamma| threshold (``--slim-ratio`` of the channels, the
  paper's rule: ``Pruner.global_threshold``), then ``--slim-ft-epochs`` of fine-tuning each.
  Reported: top-1 after the penalty run, right after pruning, after the fine-tune, the share
  of gammas near zero, params and MAdds. The paper trains 160 epochs with coeff 1e-4 (CIFAR,
  lr 0.1 / 0.01 / 0.001 over halves and quarters): a total L1 shrinkage of sum(lr x coeff)
  = 0.33 per gamma. Unless ``--slim-coeff`` is given, the coefficient is scaled so the short
  run applies the same total shrinkage (0.33 / (lr x steps)); at 1e-4 a 2-epoch run would
  move gammas by 1.6e-4 and prove nothing.

    python benchmarks/sparsity.py --arch shufflenet_v1_g3_x0_5 --config configs/cifar10/shufflenet_v1.yaml \\
        --weights /work/artifacts/cifar10/shufflenet_v1_g3_x0_5/best_model.pdparams \\
        --json docs/results/sparsity_shufflenet_v1_g3_x0_5.json
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ppzoo  # noqa: E402  (first: it silences paddle's import-time warnings)
import numpy as np  # noqa: E402
import paddle  # noqa: E402

from _cifar10 import cifar10_overrides, find_cifar10  # noqa: E402
from ppzoo.analysis import profile_model  # noqa: E402
from ppzoo.compress import save_compressed  # noqa: E402
from ppzoo.compress.prune import Pruner  # noqa: E402
from ppzoo.compress.prune.sparsity import prunable_weights, save_sparse  # noqa: E402
from ppzoo.config import load_config  # noqa: E402
from ppzoo.data import build_dataloader  # noqa: E402
from ppzoo.engine import train  # noqa: E402
from ppzoo.engine.builders import build_loss  # noqa: E402
from ppzoo.engine.loop import evaluate as engine_evaluate  # noqa: E402
from ppzoo.utils.weights import load_weights  # noqa: E402

BATCH = 128  # the configs' batch (drop_last)


def run(args, data, name, extra, arch_name=None, weights=None, epochs=None):
    out = os.path.join(args.work, name)
    cfg = load_config(args.config, [f"Arch.name={arch_name or args.arch}", f"Global.pretrained_model={weights or args.weights}",
                                    f"Global.epochs={epochs or args.epochs}", f"Global.output_dir={out}",
                                    f"Optimizer.lr.learning_rate={args.lr}", "Optimizer.lr.warmup_epoch=0",
                                    "Global.print_batch_step=40", f"Global.cpu_threads={args.threads}",
                                    *cifar10_overrides(data, train_list=args.train_list), *extra], quiet=True)
    summary = train(cfg, config_path=args.config)
    # the last epoch's weights (GMP's masks applied once more: final_model, when a hook finalizes)
    final = os.path.join(summary["output_dir"], "final_model")
    if not os.path.exists(final + ".pdparams"):
        final = os.path.join(summary["output_dir"], "latest")
    print(f"{name}: top-1 {summary['last']['top1']:.2f} %", flush=True)
    return summary, final, cfg


def evaluate(model, cfg):
    """Top-1 (%) on DataLoader.Eval, by the trainer's own evaluation."""
    loader = build_dataloader(cfg["DataLoader"]["Eval"], False, cfg["Arch"]["class_num"])
    return engine_evaluate(model, loader, build_loss(cfg["Loss"]["Eval"]), [1])["top1"]


def gammas(model):
    values = [layer.weight.numpy() for layer in model.sublayers() if isinstance(layer, paddle.nn.BatchNorm2D)]
    return np.abs(np.concatenate(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--data", default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--gmp", nargs="*", type=float, default=[0.8, 0.9])
    parser.add_argument("--slim-coeff", type=float, default=None, help="default: the paper's total shrinkage")
    parser.add_argument("--slim-ratio", type=float, default=0.4)
    parser.add_argument("--slim-ft-epochs", type=int, default=1)
    parser.add_argument("--train-images", type=int, default=10000,
                        help="a fixed random subset of train_10k_list.txt (fewer: a smoke run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default="/tmp/ppzoo_sparsity_bench")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    data = find_cifar10(args.data)
    os.makedirs(args.work, exist_ok=True)
    args.train_list = "train_10k_list.txt"
    if args.train_images < 10000:
        lines = [x for x in open(os.path.join(data, "train_10k_list.txt")).read().split("\n") if x.strip()]
        order = np.random.default_rng(0).permutation(len(lines))[:args.train_images]
        args.train_list = os.path.join(args.work, "train_subset.txt")  # absolute: os.path.join keeps it
        with open(args.train_list, "w") as f:
            f.write("\n".join(lines[i] for i in order) + "\n")
    result = {"command": "python benchmarks/sparsity.py " + " ".join(sys.argv[1:]), "arch": args.arch,
              "weights": args.weights, "epochs": args.epochs, "lr": args.lr, "gmp": [], "slimming": []}

    def save():
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)

    base = ppzoo.create_model(args.arch, num_classes=10, small_input=True, pretrained=args.weights)
    probe_cfg = load_config(args.config, [f"Arch.name={args.arch}", *cifar10_overrides(data)], quiet=True)
    result["baseline_top1"] = evaluate(base, probe_cfg)
    dense_state = {k: v.numpy() for k, v in base.state_dict().items()}
    result["baseline_bytes"] = {"sparse": save_sparse(dense_state, os.path.join(args.work, "base.sparse"))}
    steps = (args.train_images // BATCH) * args.epochs
    if args.slim_coeff is None:
        paper = 1e-4 * (0.5 * 0.1 + 0.25 * 0.01 + 0.25 * 0.001) * 160 * (50000 // 128)
        args.slim_coeff = float(f"{paper / (args.lr * steps):.3g}")
    result["slim_coeff"] = args.slim_coeff
    for s in args.gmp:
        summary, final, cfg = run(args, data, f"gmp_{int(s * 100)}", [
            f"Slim.sparsity={{name: gmp, final_sparsity: {s}, begin_step: 0, end_step: {int(0.75 * steps)}, "
            f"frequency: {max(1, steps // 40)}, exclude: [fc]}}"])
        model = ppzoo.create_model(args.arch, num_classes=10, small_input=True, pretrained=final + ".pdparams")
        weights = prunable_weights(model)
        pruned = [k for k in weights if not k.startswith("fc")]
        zeros = sum(int((weights[k].numpy() == 0).sum()) for k in pruned)
        total = sum(int(np.prod(weights[k].shape)) for k in pruned)
        state = {k: v.numpy() for k, v in model.state_dict().items()}
        prefix = os.path.join(args.work, f"gmp_{int(s * 100)}_weights")
        paddle.save(model.state_dict(), prefix + ".pdparams")
        row = {"final_sparsity": s, "measured_sparsity": zeros / total, "top1": evaluate(model, cfg),
               "trainer_last_top1": summary["last"]["top1"], "dense_bytes": os.path.getsize(prefix + ".pdparams"),
               "sparse_bytes": save_sparse(state, prefix + ".sparse"),
               "sparse8_bytes": save_sparse(state, prefix + ".sparse8", bits=8)}
        result["gmp"].append(row)
        save()
    for label, extra in (("slimming (L1 on gamma)", [f"Slim.sparsity={{name: bn_l1, coeff: {args.slim_coeff}}}"]),
                         ("no penalty", [])):
        tag = "slim" if extra else "plain"
        summary, final, cfg = run(args, data, f"{tag}_train", extra)
        model = ppzoo.create_model(args.arch, num_classes=10, small_input=True, pretrained=final + ".pdparams")
        g = gammas(model)
        trained_top1 = evaluate(model, cfg)
        pruner = Pruner(model, "bn_scale", (3, 32, 32))
        plan = pruner.global_threshold(args.slim_ratio)
        pruned = pruner.apply(plan, arch=cfg["Arch"])
        pruned_top1 = evaluate(pruned, cfg)
        arch_file = save_compressed(pruned, os.path.join(args.work, f"{tag}_pruned"), cfg["Arch"])
        ft_summary, ft_final, _ = run(args, data, f"{tag}_ft", [], arch_name=arch_file,
                                      weights=os.path.join(args.work, f"{tag}_pruned.pdparams"), epochs=args.slim_ft_epochs)
        tuned = ppzoo.create_model(arch_file, pretrained=ft_final + ".pdparams")
        stats, base_stats = profile_model(pruned, (3, 32, 32)), profile_model(base, (3, 32, 32))
        result["slimming"].append({
            "arm": label, "coeff": args.slim_coeff if extra else 0.0, "top1_trained": trained_top1,
            "gamma_below_1e-2": float((g < 1e-2).mean()), "gamma_median": float(np.median(g)),
            "pruned_ratio": args.slim_ratio, "top1_pruned": pruned_top1, "top1_fine_tuned": evaluate(tuned, cfg),
            "params": stats.params, "params_share": stats.params / base_stats.params,
            "madds_share": stats.madds / base_stats.madds})
        save()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
