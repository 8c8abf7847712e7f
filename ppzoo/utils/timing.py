"""Wall-clock timing for noisy shared machines: warm-up, interleaved repeats, percentiles.

Report medians and ratios measured in the same run, never one absolute time.
"""
import time
from dataclasses import dataclass
from typing import Callable, Dict, List

import numpy as np

__all__ = ["Timing", "time_fn", "time_interleaved"]


@dataclass
class Timing:
    """Seconds per call over ``len(samples)`` timed calls."""

    samples: List[float]

    @property
    def median(self) -> float:
        return float(np.median(self.samples))

    @property
    def p90(self) -> float:
        return float(np.percentile(self.samples, 90))

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples))

    def as_dict(self, scale: float = 1e3) -> Dict[str, float]:
        """p50 (median), p90 and mean in milliseconds (``scale=1e3``), and the number of runs."""
        return {"p50": self.median * scale, "p90": self.p90 * scale, "mean": self.mean * scale,
                "runs": len(self.samples)}


def time_fn(fn: Callable[[], object], repeat: int = 30, warmup: int = 5) -> Timing:
    """Time ``fn()`` ``repeat`` times after ``warmup`` untimed calls."""
    return time_interleaved({"fn": fn}, repeat, warmup)["fn"]


def time_interleaved(fns: Dict[str, Callable[[], object]], repeat: int = 30, warmup: int = 5) -> Dict[str, Timing]:
    """Time several functions in round-robin order so that machine noise hits all alike."""
    if repeat < 1 or warmup < 0:
        raise ValueError(f"timing needs repeat >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: Timing(s) for name, s in samples.items()}
