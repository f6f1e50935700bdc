"""Check `nnc export --torch` against nnc: the exported train.py, run by
PyTorch in one process and under `torchrun --nproc-per-node 2`, must end
with the same final full-set loss as `nnc run --init-weights` from the same
initial weights, to 1e-5 relative.

    python3 peers/check_torch_export.py [--nnc target/release/nnc] [--markdown]

Tasks: the PEERS.md tasks iris_b16, digits_b16 and diabetes_b1 (initial
weights from numpy.random.default_rng(0), as peers/compare.py draws them),
and the article's per-neuron seed model (nnc's own initial weights, which
the export writes). No shuffling, no dropout. Every process is pinned to one
thread (OMP_NUM_THREADS=1). The trained weights train.py writes are then
loaded by `nnc predict`, whose loss must equal train.py's too.

Needs torch, safetensors and numpy. Exits 1 if any run misses.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "peers"))

from compare import initial_weights  # noqa: E402  (the PEERS.md initial weights)
from safetensors.numpy import save_file  # noqa: E402

TOLERANCE = 1e-5

# (task, model, data, layer sizes for numpy's init or None for nnc's own)
TASKS = (
    ("iris_b16", "iris", "iris", (4, 8, 3)),
    ("digits_b16", "digits", "digits", (64, 32, 10)),
    ("diabetes_b1", "diabetes", "diabetes", (10, 16, 1)),
    ("seed", "seed", "seed", None),
)


def run(command, env=None):
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, command))}\n{result.stdout}{result.stderr}")
    return result.stdout


def final_loss(text):
    match = re.search(r"final loss (\S+)", text)
    if not match:
        sys.exit(f"no final loss in:\n{text}")
    return float(match.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nnc", default=str(ROOT / "target" / "release" / "nnc"))
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    rows, failed = [], False
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for task, model, data, sizes in TASKS:
            nn, csv = f"examples/{model}.nn", f"examples/{data}.csv"
            project = tmp / task
            command = [args.nnc, "export", nn, "--torch", str(project)]
            if sizes:
                init = tmp / f"{task}.init.safetensors"
                save_file(initial_weights(sizes), str(init), metadata={"init": "numpy default_rng(0) xavier"})
                command += ["--weights", str(init)]
            run(command)
            initial = str(project / "initial.safetensors")
            nnc = json.loads(run([args.nnc, "run", nn, csv, "--init-weights", initial, "--json", "--quiet"]))
            nnc_loss = nnc["final_loss"]
            one_out, two_out = project / "one.safetensors", project / "two.safetensors"
            script = str(project / "train.py")
            started = time.time()
            one = final_loss(run([sys.executable, script, csv, "--out", str(one_out)], env))
            one_s = time.time() - started
            started = time.time()
            torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
            two = final_loss(run(torchrun + [script, csv, "--out", str(two_out)], env))
            two_s = time.time() - started
            # nnc reads what train.py wrote: its loss on the training set.
            predicted = subprocess.run(
                [args.nnc, "predict", csv, "--weights", str(one_out), "--out", str(tmp / "p.csv")],
                capture_output=True, text=True, cwd=ROOT,
            ).stderr
            predict_loss = float(re.search(r"loss (\S+?);", predicted).group(1))
            rel_one = abs(one - nnc_loss) / abs(nnc_loss)
            rel_two = abs(two - nnc_loss) / abs(nnc_loss)
            rel_predict = abs(predict_loss - one) / abs(one)
            ok = rel_one <= TOLERANCE and rel_two <= TOLERANCE and rel_predict <= 1e-5
            failed |= not ok
            rows.append((task, nnc["epochs"], nnc["batch"], nnc_loss, one, two, rel_one, rel_two, rel_predict,
                         one_s, two_s, "PASS" if ok else "FAIL"))
            print(f"{task}: nnc {nnc_loss:.9f}, torch {one:.9f} ({rel_one:.1e}), torchrun×2 {two:.9f} ({rel_two:.1e})",
                  file=sys.stderr, flush=True)
    header = ("task", "epochs", "batch", "nnc", "torch, 1 process", "torchrun, 2 processes", "rel 1", "rel 2",
              "nnc predict of torch's weights (rel)", "time 1 (s)", "time 2 (s)", "result")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
    for r in rows:
        cells = (r[0], str(r[1]), str(r[2]), f"{r[3]:.9f}", f"{r[4]:.9f}", f"{r[5]:.9f}", f"{r[6]:.1e}",
                 f"{r[7]:.1e}", f"{r[8]:.1e}", f"{r[9]:.0f}", f"{r[10]:.0f}", r[11])
        print(("| " + " | ".join(cells) + " |") if args.markdown else "  ".join(cells))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
