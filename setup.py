"""ppzoo: a PaddlePaddle model zoo for lightweight CNNs.

Paddle itself is an extra: ``paddlepaddle`` (CPU) and ``paddlepaddle-gpu`` both install
the ``paddle`` module and must never be installed together, so pick exactly one of
``pip install -e ".[cpu]"`` or ``pip install -e ".[gpu]"``.
"""
from pathlib import Path

from setuptools import find_packages, setup

PADDLE = ">=3.0,<4"

setup(
    name="ppzoo",
    version="0.1.0",
    description="PaddlePaddle model zoo for lightweight CNNs: train, measure, compress, deploy",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["ppzoo", "ppzoo.*"]),
    install_requires=[
        "numpy",
        "pyyaml",
        "tqdm",
        "pillow",
        "visualdl",
        # the built-in default data set (8x8 handwritten digits) ships inside scikit-learn
        "scikit-learn",
        # the weight format that runs no code when loaded (export --safetensors, weights from
        # strangers); a required dependency because the safe path must work in every install
        "safetensors>=0.4",
        # the lock that keeps two trainings out of one output folder
        "filelock>=3.12",
    ],
    extras_require={
        "cpu": [f"paddlepaddle{PADDLE}"],
        "gpu": [f"paddlepaddle-gpu{PADDLE}"],
        # PaddleClas 2.6 pins numpy 1.24 and has no wheels past Python 3.11
        "paddleclas": ['paddleclas==2.6.0; python_version < "3.12"'],
        "onnx": ["paddle2onnx>=2.0", "onnxruntime"],
        "plot": ["matplotlib"],
        # Tucker-2 and CP factorisation (ppzoo.compress.lowrank); SVD and PQ need only numpy/scikit-learn
        "lowrank": ["tensorly>=0.8"],
        "test": [
            "pytest>=7",
            'paddleclas==2.6.0; python_version < "3.12"',
            "paddle2onnx>=2.0",
            "onnxruntime",
            "matplotlib",
            "tensorly>=0.8",
            # the layer contract in setup.cfg (tests/test_architecture.py runs lint-imports)
            "import-linter>=2.0",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
