"""Per-scene render CPU time: mean over seeds of the best of 5 runs (filters out other load).

Usage: ``OMP_NUM_THREADS=1 python bench/scene_speed.py [opencv_threads]``
"""

import sys
import time

import cv2
import numpy as np

from gradgroup.deploy.scenes import render_scene


def bench(size: tuple[int, int], seeds=range(20), reps: int = 5) -> tuple[float, float, float]:
    """(mean, median, max) over seeds of the best-of-``reps`` CPU ms per scene."""
    render_scene(0, size)  # warm the noise bank
    best = []
    for s in seeds:
        times = []
        for _ in range(reps):
            t = time.process_time()
            render_scene(s, size)
            times.append(time.process_time() - t)
        best.append(min(times))
    return 1e3 * np.mean(best), 1e3 * np.median(best), 1e3 * np.max(best)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        cv2.setNumThreads(int(sys.argv[1]))
    for size in [(256, 512), (512, 1024)]:
        mean, med, worst = bench(size)
        print(f"{size[0]}x{size[1]}: mean {mean:.1f} ms  median {med:.1f} ms  max {worst:.1f} ms")
