#!/usr/bin/env python3
"""Cost as the work grows: nnc against PyTorch, pandas and polars on the
tasks users graduate to (issue 12).

Data (written once into --data-dir, from `numpy.random.default_rng(0)`):

  tall_<rows>.csv  rows × 20 normal features and a 3-class label from a random
                   linear map plus noise, written with %.6g
  wide.csv         20 000 × 784 uniform features and a 10-class label, %.4g

Tasks, each run in its own process, one run each (the machine is shared:
read ratios, not absolute times):

  ingest   load + bind the CSV: `nnc check` vs pandas.read_csv (C engine) vs
           polars.read_csv (1 and 2 threads); wall time and peak RSS
  rows     20-64-64-3 relu/softmax, batch 256, 1 epoch, at every row count:
           nnc vs PyTorch eager, 1 and 2 threads; training rows/s, whole
           process wall time and peak RSS
  widths   20-W-W-3 for W = 64, 256, 1024 on the first row count
  wide     784-256-10 relu/softmax, batch 64, 1 epoch on wide.csv
  process  `nnc run` start → trained model vs PyTorch's import torch +
           pandas.read_csv + one epoch, on 10⁶ rows (item 6)

nnc's JIT compile time (from `--json`) is printed for every model. PyTorch
runs with torch.set_num_threads(N), optim.SGD, batches sliced from one
tensor in file order; its rows/s cover the training loop only, as nnc's do.

    python3 peers/scale.py                         # 10⁵ and 10⁶ rows
    python3 peers/scale.py --rows 100000,1000000,10000000 --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NNC = ROOT / "target" / "release" / "nnc"


# ---- data ---------------------------------------------------------------------------

def write_csv(path: Path, header: list[str], features, labels, fmt: str) -> None:
    """Write features and an integer label column, in blocks (bounded memory)."""
    import numpy as np

    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(",".join(header) + "\n")
        for start in range(0, len(labels), 100_000):
            block = np.column_stack([features[start:start + 100_000], labels[start:start + 100_000]])
            row_fmt = ",".join([fmt] * features.shape[1] + ["%d"])
            np.savetxt(f, block, fmt=row_fmt.split(","), delimiter=",")
    tmp.rename(path)


def tall_data(data_dir: Path, rows: int) -> Path:
    path = data_dir / f"tall_{rows}.csv"
    if not path.exists():
        import numpy as np

        rng = np.random.default_rng(0)
        x = rng.standard_normal((rows, 20)).astype(np.float32)
        w = rng.standard_normal((20, 3)).astype(np.float32)
        logits = x @ w + 0.5 * rng.standard_normal((rows, 3)).astype(np.float32)
        y = logits.argmax(axis=1)
        write_csv(path, [f"f{i}" for i in range(20)] + ["label"], x, y, "%.6g")
    return path


def wide_data(data_dir: Path) -> Path:
    path = data_dir / "wide.csv"
    if not path.exists():
        import numpy as np

        rng = np.random.default_rng(0)
        x = rng.uniform(size=(20_000, 784)).astype(np.float32)
        y = rng.integers(0, 10, size=20_000)
        write_csv(path, [f"p{i}" for i in range(784)] + ["label"], x, y, "%.4g")
    return path


def model_file(data_dir: Path, inputs: int, hidden: list[int], classes: int, batch: int) -> Path:
    name = "-".join(str(n) for n in [inputs, *hidden, classes]) + f"_b{batch}.nn"
    layers, source = [], "x"
    for i, width in enumerate(hidden):
        layers.append(f"  h{i} = dense({source}, {width}, relu)")
        source = f"h{i}"
    layers.append(f"  out = dense({source}, {classes}, softmax)")
    text = (
        f"data {{ input x[{inputs}]  target y = one_hot({classes}) }}\n"
        "model {\n" + "\n".join(layers) + "\n}\n"
        "loss cross_entropy(out, y)\n"
        f"train {{ optimizer = sgd(lr = 0.01)  epochs = 1  batch = {batch} }}\n"
    )
    path = data_dir / name
    path.write_text(text)
    return path


# ---- running a child ----------------------------------------------------------------

def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Wall seconds, the child's peak RSS in MB and its stdout. The RSS comes
    from /usr/bin/time (a small parent: a child forked from this Python
    process would report this process's size too) when it is installed."""
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        timed = ["/usr/bin/time", "-f", "%M", "-o", rss_file.name, *cmd] if Path("/usr/bin/time").exists() else cmd
        start = time.perf_counter()
        proc = subprocess.run(timed, capture_output=True, env={**os.environ, **(env or {})})
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{proc.stderr.decode()[-2000:]}")
        text = rss_file.read().strip().splitlines()
        rss = int(text[-1]) / 1024 if text and text[-1].isdigit() else float("nan")
    return wall, rss, proc.stdout.decode()


def nnc_run(model: Path, data: Path, threads: int) -> dict:
    cmd = [str(NNC), "run", str(model), str(data), "--json", "--quiet", "--threads", str(threads)]
    wall, rss, out = run_measured(cmd)
    result = json.loads(out)
    return {"wall": wall, "rss": rss, "rows_per_s": result["samples_per_second"],
            "compile_ms": result["timings_ms"]["compile"], "timings": result["timings_ms"], "cmd": shlex.join(cmd)}


def nnc_ingest(model: Path, data: Path) -> dict:
    cmd = [str(NNC), "check", str(model), str(data)]
    wall, rss, _ = run_measured(cmd)
    return {"wall": wall, "rss": rss}


TORCH_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import torch, pandas
t_import = time.perf_counter() - t0
path, hidden, classes, batch, threads = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
t1 = time.perf_counter()
frame = pandas.read_csv(path)
t_read = time.perf_counter() - t1
values = frame.to_numpy(dtype="float32")
x = torch.from_numpy(values[:, :-1].copy())
y = torch.from_numpy(values[:, -1].astype("int64"))
torch.manual_seed(0)
layers, width = [], x.shape[1]
for h in hidden:
    layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
    width = h
layers.append(torch.nn.Linear(width, classes))
model = torch.nn.Sequential(*layers)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
loss_fn = torch.nn.CrossEntropyLoss()
rows = x.shape[0]
t2 = time.perf_counter()
for start in range(0, rows, batch):
    xb, yb = x[start:start + batch], y[start:start + batch]
    opt.zero_grad()
    loss = loss_fn(model(xb), yb)
    loss.backward()
    opt.step()
t_train = time.perf_counter() - t2
print(json.dumps({"import": t_import, "read": t_read, "train": t_train, "rows_per_s": rows / t_train,
                  "whole": time.perf_counter() - t0}))
"""


def torch_run(data: Path, hidden: list[int], classes: int, batch: int, threads: int) -> dict:
    cmd = [sys.executable, "-c", TORCH_SCRIPT, str(data), json.dumps(hidden), str(classes), str(batch), str(threads)]
    env = {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    wall, rss, out = run_measured(cmd, env)
    return {"wall": wall, "rss": rss, **json.loads(out.strip().splitlines()[-1])}


READ_SCRIPT = r"""
import sys, time
t0 = time.perf_counter()
lib = sys.argv[1]
if lib == "pandas":
    import pandas
    t1 = time.perf_counter(); pandas.read_csv(sys.argv[2], engine="c")
else:
    import polars
    t1 = time.perf_counter(); polars.read_csv(sys.argv[2])
print(time.perf_counter() - t1)
"""


def read_csv(lib: str, data: Path, threads: int) -> dict:
    env = {"POLARS_MAX_THREADS": str(threads)}
    wall, rss, out = run_measured([sys.executable, "-c", READ_SCRIPT, lib, str(data)], env)
    return {"read": float(out.strip()), "rss": rss}


def have(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


# ---- the tables ---------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/nnc-scale"))
    parser.add_argument("--rows", default="100000,1000000", help="comma-separated row counts of the tall task")
    parser.add_argument("--widths", default="64,256,1024")
    parser.add_argument("--width-rows", type=int, default=100_000, help="rows for the widths table")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    rows_list = [int(r) for r in args.rows.split(",")]
    widths = [int(w) for w in args.widths.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    torch_ok = not args.no_torch and have("torch")
    pandas_ok, polars_ok = have("pandas"), have("polars")
    if not NNC.exists():
        sys.exit(f"build nnc first: cargo build --release ({NNC} is missing)")

    lines: list[str] = []

    def table(title: str, header: list[str], rows: list[list[str]]) -> None:
        lines.append("")
        lines.append(f"### {title}" if args.markdown else f"== {title}")
        if args.markdown:
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "---|" * len(header))
            lines.extend("| " + " | ".join(r) + " |" for r in rows)
        else:
            widths_ = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
            for r in [header, *rows]:
                lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths_)))
        print("\n".join(lines[-(len(rows) + 3):]), flush=True)

    k = lambda x: f"{x / 1e3:.0f} k" if x < 1e6 else f"{x / 1e6:.2f} M"  # noqa: E731
    compile_ms: list[tuple[str, float]] = []

    # Ingest.
    ingest_rows = []
    for rows in rows_list:
        data = tall_data(args.data_dir, rows)
        model = model_file(args.data_dir, 20, [64, 64], 3, 256)
        size = data.stat().st_size / 1e6
        bound = rows * 23 * 4 / 1e6
        pandas_t = read_csv("pandas", data, 1)["read"] if pandas_ok else None
        nnc = nnc_ingest(model, data)
        for t in threads:
            polars = read_csv("polars", data, t) if polars_ok else None
            ingest_rows.append([
                f"{rows:,}", f"{size:.0f} MB", str(t), f"{nnc['wall']:.2f} s", f"{nnc['rss']:.0f} MB",
                f"{bound:.0f} MB",
                f"{pandas_t:.2f} s ({pandas_t / nnc['wall']:.2f}×)" if pandas_t else "—",
                f"{polars['read']:.2f} s ({polars['read'] / nnc['wall']:.2f}×)" if polars else "—",
            ])
    table("ingest: load + bind (nnc check, its own threads) vs read_csv; (×) = peer time / nnc time",
          ["rows", "file", "polars threads", "nnc", "nnc peak RSS", "bound f32", "pandas (1 thread)", "polars"],
          ingest_rows)

    # Rows and widths.
    def training(title: str, cases: list[tuple[Path, Path, list[int], int, int, int]]) -> None:
        out = []
        for model, data, hidden, classes, batch, rows in cases:
            for t in threads:
                nnc = nnc_run(model, data, t)
                compile_ms.append((model.name, nnc["compile_ms"]))
                peer = torch_run(data, hidden, classes, batch, t) if torch_ok else None
                per = rows / 1e5
                out.append([
                    model.stem, f"{rows:,}", str(t), k(nnc["rows_per_s"]),
                    f"{nnc['wall']:.2f} s ({nnc['wall'] / per:.2f} s/10⁵)", f"{nnc['rss']:.0f} MB",
                    f"{nnc['compile_ms']:.1f} ms",
                    k(peer["rows_per_s"]) if peer else "—",
                    f"{nnc['rows_per_s'] / peer['rows_per_s']:.2f}×" if peer else "—",
                    f"{peer['rss']:.0f} MB" if peer else "—",
                ])
        table(title, ["model", "rows", "threads", "nnc rows/s", "nnc wall", "nnc RSS", "nnc compile", "PyTorch rows/s",
                      "nnc / PyTorch", "PyTorch RSS"], out)

    model64 = model_file(args.data_dir, 20, [64, 64], 3, 256)
    training("rows: 20-64-64-3, batch 256, 1 epoch",
             [(model64, tall_data(args.data_dir, r), [64, 64], 3, 256, r) for r in rows_list])
    wr = args.width_rows
    training(f"widths: 20-W-W-3, batch 256, 1 epoch, {wr:,} rows",
             [(model_file(args.data_dir, 20, [w, w], 3, 256), tall_data(args.data_dir, wr), [w, w], 3, 256, wr)
              for w in widths])
    training("wide: 784-256-10, batch 64, 1 epoch, 20,000 rows",
             [(model_file(args.data_dir, 784, [256], 10, 64), wide_data(args.data_dir), [256], 10, 64, 20_000)])

    # Whole process on 10⁶ rows.
    if 1_000_000 in rows_list and torch_ok:
        data = tall_data(args.data_dir, 1_000_000)
        out = []
        for t in threads:
            nnc = nnc_run(model64, data, t)
            peer = torch_run(data, [64, 64], 3, 256, t)
            out.append([str(t), f"{nnc['wall']:.2f} s", f"{peer['import']:.2f} + {peer['read']:.2f} + {peer['train']:.2f} s",
                        f"{peer['wall']:.2f} s", f"{nnc['wall'] / peer['wall']:.2f}"])
        table("whole process, 10⁶ rows, 20-64-64-3: nnc run vs python (import torch + read_csv + 1 epoch)",
              ["threads", "nnc run", "PyTorch import + read + epoch", "PyTorch process", "nnc / PyTorch"], out)

    worst = max(compile_ms, key=lambda c: c[1])
    lines.append("")
    lines.append(f"JIT compile time (train + eval kernels): at most {worst[1]:.1f} ms ({worst[0]}) over "
                 f"{len(compile_ms)} runs")
    lines.append("")
    lines.append(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
                 f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
                 f"command: python3 peers/scale.py {shlex.join(sys.argv[1:])}")
    print("\n".join(lines[-3:]))
    if args.markdown:
        Path(args.data_dir / "scale.md").write_text("\n".join(lines) + "\n")
        print(f"(markdown in {args.data_dir / 'scale.md'})")


if __name__ == "__main__":
    main()
