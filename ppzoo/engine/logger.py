"""Console and file logging, the per-epoch progress display, VisualDL scalars."""
import logging
import os
import sys
import time
from typing import Optional

__all__ = ["setup_logger", "close_logger", "Progress", "ScalarWriter", "format_seconds"]


def setup_logger(log_file: Optional[str] = None, rank: int = 0) -> logging.Logger:
    """The ``ppzoo`` logger: INFO to stdout (rank 0 only) and to ``log_file``. Handlers of
    an enclosing run (a fine-tune inside tools/compress.py) are set aside until
    :func:`close_logger` puts them back."""
    logger = logging.getLogger("ppzoo")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    stack = getattr(logger, "_ppzoo_outer_handlers", [])
    stack.append(list(logger.handlers))
    logger._ppzoo_outer_handlers = stack
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    console = logging.StreamHandler(sys.stdout)
    console.setLevel(logging.INFO if rank == 0 else logging.ERROR)
    console.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(console)
    if log_file and rank == 0:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        logger.addHandler(file_handler)
    return logger


def close_logger(logger: logging.Logger) -> None:
    """Close and detach the handlers (the log file) of :func:`setup_logger`; restore the
    enclosing run's."""
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    stack = getattr(logger, "_ppzoo_outer_handlers", [])
    for handler in (stack.pop() if stack else []):
        if not getattr(handler, "stream", None) or not getattr(handler.stream, "closed", False):
            logger.addHandler(handler)


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """One epoch's progress: a tqdm bar on a terminal, a log line every ``every`` steps
    otherwise (CI, files). Shows loss, top-1, images/s and the ETA."""

    def __init__(self, total: int, desc: str, logger: logging.Logger, every: int, enabled: bool = True):
        self.total, self.desc, self.logger, self.every = total, desc, logger, every
        self.enabled = enabled
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, leave=True, dynamic_ncols=True, file=sys.stderr)
        self.start = time.perf_counter()

    def update(self, step: int, images: int, **values) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        speed = images / max(elapsed, 1e-9)
        eta = elapsed / step * (self.total - step)
        text = " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        if self.bar is not None:
            self.bar.set_postfix_str(f"{text} {speed:.0f} img/s", refresh=False)
            self.bar.update(1)
        elif step % self.every == 0 or step == self.total:
            self.logger.info(f"{self.desc} [{step}/{self.total}] {text} {speed:.0f} img/s eta {format_seconds(eta)}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class ScalarWriter:
    """VisualDL scalars under ``logdir`` when enabled (rank 0); a no-op otherwise."""

    def __init__(self, logdir: Optional[str]):
        self.writer = None
        if logdir:
            from visualdl import LogWriter

            self.writer = LogWriter(logdir=logdir)

    def add(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag=tag, value=float(value), step=step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
