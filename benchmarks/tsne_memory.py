"""Peak memory of one t-SNE fit per library, each in a fresh process (same data, 2 threads).

    python benchmarks/tsne_memory.py [--data mix10000] [--impls leafrbm,opentsne-bh,opentsne-fft,sklearn]

Reports the child's peak resident set size (ru_maxrss) and the baseline of a process that only
loaded the data, so the difference is what the fit itself needed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = """
import json, resource, sys
sys.path.insert(0, {here!r})
import numpy as np
from bench_tsne import fit, load_dataset
X = load_dataset({data!r})
X = X[0] if isinstance(X, tuple) else X
import leafrbm, sklearn.manifold, openTSNE  # the same imports in every child
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if {impl!r} != "baseline":
    fit({impl!r}, X)
print(json.dumps({{"impl": {impl!r}, "before_mib": before / 1024,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mix10000")
    parser.add_argument("--impls", default="baseline,leafrbm,opentsne-bh,opentsne-fft,sklearn")
    args = parser.parse_args()
    print(f"| library | peak RSS MiB | above baseline MiB |  ({args.data})")
    print("|---|---|---|")
    baseline = None
    for impl in args.impls.split(","):
        code = CHILD.format(here=str(HERE), data=args.data, impl=impl)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        if impl == "baseline":
            baseline = result["peak_mib"]
        extra = result["peak_mib"] - baseline if baseline is not None else float("nan")
        print(f"| {impl} | {result['peak_mib']:.0f} | {extra:.0f} |", flush=True)


if __name__ == "__main__":
    main()
