#!/usr/bin/env python3
"""The wide task of peers/scale.py as an A/B: rounds of `nnc --threads 1`,
`nnc --threads 2` and PyTorch eager on 1 thread, each in its own process,
round-robin, medians of the training rows/s (784-256-10, batch 64, 20 000
rows, 1 epoch). On a shared machine, rounds taken together are the fairest
comparison this repository has.

    python3 peers/scale_ab.py [ROUNDS]      # default 3
"""

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale  # noqa: E402

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
data_dir = Path("/tmp/nnc-scale")
data_dir.mkdir(parents=True, exist_ok=True)
model = scale.model_file(data_dir, 784, [256], 10, 64)
data = scale.wide_data(data_dir)
results = {"nnc1": [], "nnc2": [], "torch1": []}
for r in range(rounds):
    results["nnc1"].append(scale.nnc_run(model, data, 1)["rows_per_s"])
    results["nnc2"].append(scale.nnc_run(model, data, 2)["rows_per_s"])
    results["torch1"].append(scale.torch_run(data, [256], 10, 64, 1)["rows_per_s"])
    print(r, {k: round(v[-1]) for k, v in results.items()}, flush=True)
median = {k: statistics.median(v) for k, v in results.items()}
print("median", {k: round(v) for k, v in median.items()},
      f"nnc1/torch1 {median['nnc1'] / median['torch1']:.2f}  nnc2/nnc1 {median['nnc2'] / median['nnc1']:.2f}")
