"""`duetml --help` start-up time, beside a bare `python -c pass` measured in the same run.

python bench/bench_help.py [RUNS]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    bare = median_seconds([sys.executable, "-c", "pass"], runs)
    helped = median_seconds(
        [sys.executable, "-c", "from duetml.cli import main; main()", "--help"], runs
    )
    print(f"python -c pass (reference): {bare * 1000:6.0f} ms (median of {runs})")
    print(f"duetml --help:              {helped * 1000:6.0f} ms (target < 500 ms)")
    print(f"ratio:                      {helped / bare:6.1f}x the bare interpreter")


if __name__ == "__main__":
    main()
