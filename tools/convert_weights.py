"""Convert PaddleClas ImageNet weights to a ppzoo model.

    python tools/convert_weights.py --model mobilenet_v1_x1_0 --src MobileNetV1_pretrained.pdparams \
        --dst mobilenet_v1_x1_0.pdparams
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppzoo.utils.cli import run  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="ppzoo name (mobilenet_v2_x1_0) or PaddleClas name")
    parser.add_argument("--src", required=True, help="PaddleClas .pdparams file")
    parser.add_argument("--dst", required=True, help="where to write the converted .pdparams")
    parser.add_argument("--layout", choices=["reference", "paddleclas"],
                        help="MobileNetV2 only: PaddleClas weights need (and default to) 'paddleclas'")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args()

    from ppzoo.convert import convert_paddleclas_file

    if args.layout == "reference":
        raise ValueError("--layout reference: PaddleClas's MobileNetV2 weights only fit layout 'paddleclas' "
                         "(expansion conv in every block, unrounded widths)")
    kwargs = convert_paddleclas_file(args.model, args.src, args.dst)
    extra = "".join(f", {k}={v!r}" for k, v in kwargs.items())
    print(f"wrote {args.dst}\nload it with: ppzoo.create_model({args.model!r}{extra}, pretrained={args.dst!r})")


if __name__ == "__main__":
    run(main)
