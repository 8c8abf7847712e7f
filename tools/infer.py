"""Predict with an exported model (Paddle Inference), or measure its latency.

    python tools/infer.py --model-dir inference -i cat.jpg                 # one image
    python tools/infer.py --model-dir inference -i images/ --topk 3 --json # a folder, as JSON
    python tools/infer.py --model-dir inference -i val_list.txt --image-root data/  # a label list: also accuracy
    python tools/infer.py --model-dir inference --benchmark --batch-size 8 --threads 2
    python tools/infer.py --model-dir inference --precision bf16 --benchmark   # oneDNN bf16 on a float32 export

The precision is the export's (inference.yml: fp32, bf16 or int8) unless --precision says
otherwise; an int8 folder (tools/export.py --precision int8) runs oneDNN int8 kernels.
"""
import argparse
import json
import sys

from _bootstrap import HELD  # noqa: E402  (first: sys.path, signals held while Paddle loads)
from ppzoo.utils.cli import check_minimums, run  # noqa: E402

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True, help="folder written by tools/export.py")
    parser.add_argument("-i", "--input", help="an image, a folder of images, or a label list (.txt)")
    parser.add_argument("--image-root", help="folder the label list's paths are relative to (default: its folder)")
    parser.add_argument("--topk", type=int, help="classes to report (default: the export's PostProcess.topk)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--threads", type=int, help="CPU math threads (default: one per core)")
    parser.add_argument("--no-onednn", action="store_true", help="plain CPU kernels instead of oneDNN")
    parser.add_argument("--tensorrt", action="store_true", help="TensorRT on GPU (needs a TensorRT build of Paddle)")
    parser.add_argument("--precision", choices=["fp32", "bf16", "int8"],
                        help="run at this precision (default: the export's inference.yml)")
    parser.add_argument("--benchmark", action="store_true", help="measure latency and throughput on random input")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args()
    if not args.benchmark and not args.input:
        parser.error("give -i IMAGE/FOLDER/LIST, or --benchmark")
    check_minimums(args, {"topk": 1, "batch_size": 1, "threads": 1, "warmup": 0, "repeat": 1})

    from ppzoo.deploy.predictor import Predictor, accuracy, collect_images

    predictor = Predictor(args.model_dir, device=args.device, threads=args.threads, onednn=not args.no_onednn,
                          tensorrt=args.tensorrt, precision=args.precision)
    if args.benchmark:
        result = predictor.benchmark(args.batch_size, args.warmup, args.repeat)
        result["model"] = predictor.meta["model"]
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(f"{result['model']}: batch {result['batch_size']}, {result['device']}, {result['threads']} threads, "
                  f"oneDNN {'on' if result['onednn'] else 'off'}, {result['precision']}; {result['warmup']} warm-up + {result['runs']} runs: "
                  f"p50 {result['p50_ms']:.2f} ms, p90 {result['p90_ms']:.2f} ms, "
                  f"{result['images_per_s']:.1f} images/s")
        return 0

    paths, labels = collect_images(args.input, args.image_root)
    results = predictor.predict(paths, topk=args.topk, batch_size=args.batch_size)
    report = {"model": predictor.meta["model"], "predictions": [
        {"image": path, **({"label": labels[i]} if labels else {}), "topk": top}
        for i, (path, top) in enumerate(zip(paths, results))]}
    if labels:
        report["accuracy"] = accuracy(results, labels)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for item in report["predictions"]:
        best = ", ".join(f"{t['label']} ({t['class_id']}) {t['score']:.3f}" for t in item["topk"])
        truth = f" [label {item['label']}]" if "label" in item else ""
        print(f"{item['image']}{truth}: {best}")
    if labels:
        acc = report["accuracy"]
        print(" ".join(f"{k} {v:.2f}%" for k, v in acc.items() if k != "images") + f" over {acc['images']} images")
    return 0


if __name__ == "__main__":
    run(main, held_signals=HELD)
