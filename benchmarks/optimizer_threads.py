"""Does one optimizer step slow down every later kernel? (Paddle CPU thread pools.)

Seen while tuning the digits config: with 2 threads, training with AdamW ran markedly
slower than with Momentum, by more than AdamW's extra arithmetic. This script isolates it.
Each optimizer runs in a fresh process (thread pools are per process) on the same model
and batch:

1. median time of an eval forward pass (no gradients) before any optimizer step;
2. one ``optimizer.step()``;
3. the same forward pass again, and the median of full training steps.

The "after / before" ratio of the forward pass shows whether the step changed the speed of
kernels that have nothing to do with the optimizer.

    python benchmarks/optimizer_threads.py --json docs/results/optimizer_threads.json
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPTIMIZERS = ["Momentum", "AdamW", "none"]


def measure(optimizer_name: str, model_name: str, batch: int, size: int, threads: int, repeat: int) -> dict:
    """Runs inside the child process."""
    sys.path.insert(0, ROOT)
    import ppzoo  # noqa: F401  (first: silences paddle's import-time warnings)
    import paddle

    from ppzoo.analysis.timing import time_fn
    from ppzoo.utils.runtime import set_cpu_threads

    set_cpu_threads(threads)
    paddle.seed(0)
    model = ppzoo.create_model(model_name, num_classes=10, small_input=size < 64)
    x = paddle.randn([batch, 3, size, size])
    y = paddle.randint(0, 10, [batch, 1])
    params = model.parameters()
    optimizer = {"Momentum": lambda: paddle.optimizer.Momentum(0.01, parameters=params),
                 "AdamW": lambda: paddle.optimizer.AdamW(1e-3, parameters=params),
                 "none": lambda: None}[optimizer_name]()

    def forward():
        model.eval()
        with paddle.no_grad():
            model(x).numpy()

    def train_step():
        model.train()
        loss = paddle.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        if optimizer is not None:
            optimizer.step()
            optimizer.clear_grad()
        else:
            model.clear_gradients()
        float(loss)

    def median_ms(fn):
        return time_fn(fn, repeat=repeat, warmup=2).median * 1e3

    before = median_ms(forward)
    train_step()  # the first optimizer step
    after = median_ms(forward)
    return {"optimizer": optimizer_name, "forward_before_ms": before, "forward_after_ms": after,
            "forward_after_over_before": after / before, "train_step_ms": median_ms(train_step)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="shufflenet_v1_g3_x1_0")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=32, help="input size (below 64: small-input mode)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=2, help="fresh processes per optimizer, alternated")
    parser.add_argument("--json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.model, args.batch, args.size, args.threads, args.repeat)))
        return
    rows = []
    for round_ in range(args.rounds):
        for name in OPTIMIZERS:
            out = subprocess.run([sys.executable, __file__, "--child", name, "--model", args.model, "--batch",
                                  str(args.batch), "--size", str(args.size), "--threads", str(args.threads),
                                  "--repeat", str(args.repeat)], capture_output=True, text=True, check=True)
            rows.append({"round": round_, **json.loads(out.stdout.strip().splitlines()[-1])})
    print(f"{args.model}, batch {args.batch}, {args.size}x{args.size}, {args.threads} threads, "
          f"medians of {args.repeat} runs, {args.rounds} fresh processes per optimizer")
    print(f"{'optimizer':<10}{'round':>6}{'fwd before ms':>15}{'fwd after ms':>14}{'after/before':>14}"
          f"{'train step ms':>15}")
    for r in rows:
        print(f"{r['optimizer']:<10}{r['round']:>6}{r['forward_before_ms']:>15.2f}{r['forward_after_ms']:>14.2f}"
              f"{r['forward_after_over_before']:>14.2f}{r['train_step_ms']:>15.2f}")
    if args.json:
        import paddle

        with open(args.json, "w") as f:
            json.dump({"model": args.model, "batch": args.batch, "size": args.size, "threads": args.threads,
                       "repeat": args.repeat, "paddle": paddle.__version__, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
