"""Training and evaluation: builders, the loop, checkpoints, logging, and the trainer wiring them."""
from .trainer import evaluate_config, output_dir_of, train

__all__ = ["train", "evaluate_config", "output_dir_of"]
