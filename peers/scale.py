#!/usr/bin/env python3
"""Cost as the work grows: nnc against PyTorch, pandas and polars on the
tasks users graduate to (issue 12). One run prints every table the issue
asks for.

Data (written once into --data-dir, from `numpy.random.default_rng(0)`):

  tall_<rows>.csv  rows × 20 normal features and a 3-class label from a random
                   linear map plus noise, written with %.6g (185 MB per 10⁶ rows)
  wide.csv         20 000 × 784 uniform features and a 10-class label, %.4g

Tasks, each run in its own process, one run each (read ratios, not absolute
times; the load average is printed beside every table, and what two CPUs
gave just before it: two pinned busy loops against one, a rough figure, 2.0
for two whole cores; on this shared VM it drops towards 1.3 at times, and a
2-thread figure taken then is low by as much):

  ingest   load + bind the CSV: `nnc check` on one core (`taskset -c 0`) and
           on every core vs pandas.read_csv (C engine) and polars.read_csv
           (1 and 2 threads): wall time, CPU time, peak RSS against the
           target of 1.5 × the bound f32 data + 30 MB. nnc's time is given
           twice: the whole process as this script sees it, and in process
           (`nnc check --json`: from the start of the check to the bound
           data), the span the peers' figures cover
  parquet  the same for the tall file as Parquet (written from the CSV with
           pandas.DataFrame.to_parquet: snappy, dictionary pages first), up to
           --parquet-max-rows: `nnc check` on 1 core and every core vs
           pandas.read_parquet (pyarrow on 1 and every thread),
           polars.read_parquet and the floor (peers/c/parquet_floor.c: only
           the memory work no reader can avoid, built with the system's C
           compiler); median of --repeat rounds of every reader in turn.
           nnc's time is given twice, as above. Run first: after the 10⁷-row
           cases, first touches of new memory are slow for a while, whoever
           makes them
  rows     20-64-64-3 relu/softmax, batch 256, 1 epoch, at every row count
           (10⁵, 10⁶, 10⁷ by default): nnc vs PyTorch eager, 1 and 2 threads;
           training rows/s, the 2-thread speed-up, whole-process wall time and
           peak RSS per 10⁵ rows (linear growth shows as constant figures);
           "batches on the team" is the share of batches nnc ran on its team
           of threads (`kernel::parallel`; the rest ran on one thread, which
           was faster at the time: `Compiled::call` times both as it goes);
           each nnc case runs --repeat times (default 3) and the table gives
           the median run and the range of rows/s
  widths   20-W-W-3 for W = 64, 256, 1024 on --width-rows rows
  wide     784-256-10 relu/softmax, batch 64, 1 epoch on wide.csv; also in
           CPU seconds per epoch (nnc: 2 epochs minus 1; PyTorch: process_time
           of its loop), which a loaded machine does not inflate as it does
           wall time
  process  `nnc run` start → trained model vs PyTorch's import torch +
           pandas.read_csv + one epoch, on 10⁶ rows (item 6)
  compile  nnc's JIT compile time (train + evaluation kernels, from `--json`)
           for every model

PyTorch runs with torch.set_num_threads(N), optim.SGD, batches sliced from one
tensor in file order; its rows/s cover the training loop only, as nnc's do.
Peak RSS comes from /usr/bin/time (`%M`).

    cargo build --release
    python3 peers/scale.py --markdown                      # everything, ≈ 15 min
    python3 peers/scale.py --rows 100000,1000000 --no-torch  # ≈ 2 min

On a quiet 2-core machine the default run takes about 15 minutes, most of it
writing the 10⁷-row file (1.9 GB, first run only, ≈ 4 min) and PyTorch's
pandas.read_csv and epoch on it; the files stay in --data-dir for the next run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
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


def tall_parquet(data_dir: Path, rows: int) -> Path:
    """The tall CSV as Parquet, as pandas writes it (`DataFrame.to_parquet`:
    pyarrow, snappy, dictionary pages first, 1 row group)."""
    path = data_dir / f"tall_{rows}.parquet"
    if not path.exists():
        import pandas

        tmp = path.with_suffix(".tmp")
        pandas.read_csv(tall_data(data_dir, rows)).to_parquet(tmp, index=False)
        tmp.rename(path)
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

def run_measured(cmd: list[str], env: dict | None = None) -> dict:
    """Wall seconds, the child's CPU seconds (user + system) and peak RSS in
    MB, and its stdout. CPU and RSS come from /usr/bin/time (a small parent:
    a child forked from this Python process would report this process's
    size too) when it is installed."""
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".time") as time_file:
        timed = cmd
        if Path("/usr/bin/time").exists():
            timed = ["/usr/bin/time", "-f", "%M %U %S", "-o", time_file.name, *cmd]
        start = time.perf_counter()
        proc = subprocess.run(timed, capture_output=True, env={**os.environ, **(env or {})})
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{proc.stderr.decode()[-2000:]}")
        fields = (time_file.read().strip().splitlines() or [""])[-1].split()
        rss, cpu = float("nan"), float("nan")
        if len(fields) == 3:
            rss, cpu = int(fields[0]) / 1024, float(fields[1]) + float(fields[2])
    return {"wall": wall, "cpu": cpu, "rss": rss, "out": proc.stdout.decode()}


def nnc_run(model: Path, data: Path, threads: int, epochs: int = 1) -> dict:
    cmd = [str(NNC), "run", str(model), str(data), "--json", "--quiet", "--threads", str(threads),
           "--epochs", str(epochs)]
    run = run_measured(cmd)
    result = json.loads(run["out"])
    return {**run, "rows_per_s": result["samples_per_second"], "compile_ms": result["timings_ms"]["compile"],
            "timings": result["timings_ms"], "team": result.get("team"), "cmd": shlex.join(cmd)}


def nnc_ingest(model: Path, data: Path, cores: int | None) -> dict:
    """`nnc check --json` (read, bind, one-hot the labels), on `cores` CPUs
    (`taskset`; None: every core). Its reader uses every core it may run on.
    `wall` is the whole process as this script sees it (start, exit, and
    /usr/bin/time and taskset around it); `inproc` nnc's own time from the
    start of the check to the bound data, the span pandas' and polars'
    figures cover (timed in their process, after the imports)."""
    cmd = [str(NNC), "check", "--json", str(model), str(data)]
    if cores is not None:
        cmd = ["taskset", "-c", ",".join(str(c) for c in range(cores)), *cmd]
    run = run_measured(cmd)
    return {**run, "inproc": json.loads(run["out"])["timings_ms"]["total"] / 1e3}


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
c2 = time.process_time()
for start in range(0, rows, batch):
    xb, yb = x[start:start + batch], y[start:start + batch]
    opt.zero_grad()
    loss = loss_fn(model(xb), yb)
    loss.backward()
    opt.step()
t_train = time.perf_counter() - t2
cpu_train = time.process_time() - c2
print(json.dumps({"import": t_import, "read": t_read, "train": t_train, "rows_per_s": rows / t_train,
                  "train_cpu": cpu_train,
                  "whole": time.perf_counter() - t0}))
"""


def torch_run(data: Path, hidden: list[int], classes: int, batch: int, threads: int) -> dict:
    cmd = [sys.executable, "-c", TORCH_SCRIPT, str(data), json.dumps(hidden), str(classes), str(batch), str(threads)]
    env = {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    run = run_measured(cmd, env)
    return {**run, **json.loads(run["out"].strip().splitlines()[-1])}


READ_SCRIPT = r"""
import sys, time
t0 = time.perf_counter()
lib = sys.argv[1]
if lib == "pandas":
    import pandas
    t1, c1 = time.perf_counter(), time.process_time(); pandas.read_csv(sys.argv[2], engine="c")
else:
    import polars
    t1, c1 = time.perf_counter(), time.process_time(); polars.read_csv(sys.argv[2])
print(time.perf_counter() - t1, time.process_time() - c1)
"""


PARQUET_SCRIPT = r"""
import sys, time
lib, path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
if lib == "pandas":
    import pandas, pyarrow, pyarrow.parquet
    pyarrow.set_cpu_count(threads); pyarrow.set_io_thread_count(threads)
    t1, c1 = time.perf_counter(), time.process_time(); pandas.read_parquet(path)
else:
    import polars
    t1, c1 = time.perf_counter(), time.process_time(); polars.read_parquet(path)
print(time.perf_counter() - t1, time.process_time() - c1)
"""


def read_parquet(lib: str, data: Path, threads: int) -> dict:
    """pandas.read_parquet (pyarrow on `threads` threads) or
    polars.read_parquet, timed in a fresh process after the imports."""
    env = {"POLARS_MAX_THREADS": str(threads)}
    run = run_measured([sys.executable, "-c", PARQUET_SCRIPT, lib, str(data), str(threads)], env)
    wall, cpu = (float(x) for x in run["out"].split())
    return {"read": wall, "cpu": cpu, "rss": run["rss"]}


def parquet_floor(data_dir: Path) -> Path | None:
    """peers/c/parquet_floor.c built into data_dir, or None without a C
    compiler."""
    source = Path(__file__).resolve().parent / "c" / "parquet_floor.c"
    binary = data_dir / "parquet_floor"
    if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
        return binary
    for cc in ("cc", "gcc", "clang"):
        if shutil.which(cc):
            built = subprocess.run([cc, "-O3", "-march=native", "-pthread", str(source), "-o", str(binary)])
            return binary if built.returncode == 0 else None
    return None


def floor_read(floor: Path, data: Path, rows: int, threads: int) -> dict:
    """The floor's time (in-process, from open() on) on `threads` threads,
    pinned to as many CPUs."""
    cpus = ",".join(str(c) for c in range(threads))
    run = run_measured(["taskset", "-c", cpus, str(floor), str(data), str(rows), str(threads)])
    return {"read": float(run["out"].split()[0]) / 1e3, "cpu": run["cpu"], "rss": run["rss"]}


def median_run(runs: list[dict], key: str) -> dict:
    """The run with the median `key` of several."""
    return sorted(runs, key=lambda r: r[key])[len(runs) // 2]


def read_csv(lib: str, data: Path, threads: int) -> dict:
    env = {"POLARS_MAX_THREADS": str(threads)}
    run = run_measured([sys.executable, "-c", READ_SCRIPT, lib, str(data)], env)
    wall, cpu = (float(x) for x in run["out"].split())
    return {"read": wall, "cpu": cpu, "rss": run["rss"]}


SPIN = "x = 0\nfor i in range(6_000_000): x += i"


def two_cpus() -> float | None:
    """How much two CPUs give at the moment: a fixed busy loop in two
    processes pinned to CPUs 0 and 1 at once, against one alone (2.0: two
    whole cores; on a shared VM it can drop to ≈ 1.3 for tens of seconds,
    as if both vCPUs shared one physical core: a 2-thread figure taken then
    is low by as much)."""
    if (os.cpu_count() or 1) < 2:
        return None

    def spin(cpus: list[int]) -> float:
        start = time.perf_counter()
        procs = [subprocess.Popen(["taskset", "-c", str(c), sys.executable, "-c", SPIN]) for c in cpus]
        for p in procs:
            p.wait()
        return time.perf_counter() - start

    # The best of two runs each: a run is short and the VM noisy.
    alone = min(spin([0]), spin([1]))
    together = min(spin([0, 1]), spin([0, 1]))
    return 2 * alone / together


def load() -> str:
    """The load average over the last minute and what two CPUs give now
    (`two_cpus`), for the tables' titles."""
    capacity = two_cpus()
    return f"load {os.getloadavg()[0]:.1f}" + (f", 2 CPUs give {capacity:.2f}×" if capacity else "")


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
    parser.add_argument("--rows", default="100000,1000000,10000000", help="comma-separated row counts of the tall task")
    parser.add_argument("--widths", default="64,256,1024")
    parser.add_argument("--width-rows", type=int, default=100_000, help="rows for the widths table")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each nnc training case; the tables give the median run by rows/s and the range "
                             "(a team's speed varies from run to run on a shared VM far more than one thread's)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--parquet-max-rows", type=int, default=1_000_000,
                        help="the Parquet ingest table for row counts up to this (the file is written from the CSV "
                             "with pandas the first time)")
    parser.add_argument("--torch-max-rows", type=int, default=None,
                        help="run PyTorch only on files of at most this many rows (on a loaded machine its "
                             "2-thread runs crawl: 10⁷ rows can take half an hour)")
    parser.add_argument("--markdown", action="store_true", help="markdown tables, also written to DATA_DIR/scale.md")
    parser.add_argument("--nnc", type=Path, default=NNC, help="the nnc binary (default: the release build)")
    args = parser.parse_args()
    globals()["NNC"] = args.nnc.resolve()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    rows_list = [int(r) for r in args.rows.split(",")]
    widths = [int(w) for w in args.widths.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    torch_ok = not args.no_torch and have("torch")
    pandas_ok, polars_ok = have("pandas"), have("polars")
    if not NNC.exists():
        sys.exit(f"build nnc first: cargo build --release ({NNC} is missing)")
    began = time.perf_counter()

    lines: list[str] = []

    def table(title: str, header: list[str], rows: list[list[str]]) -> None:
        lines.append("")
        lines.append(f"#### {title}" if args.markdown else f"== {title}")
        if args.markdown:
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "---|" * len(header))
            lines.extend("| " + " | ".join(r) + " |" for r in rows)
        else:
            widths_ = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
            for r in [header, *rows]:
                lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths_)))
        print("\n".join(lines[-(len(rows) + 3):]), flush=True)

    def attempt(what: str, run):
        """A peer's run, or None (with the reason printed) when it fails."""
        try:
            return run()
        except (RuntimeError, ValueError, json.JSONDecodeError) as e:
            print(f"{what} failed: {str(e)[-500:]}", file=sys.stderr)
            return None

    k = lambda x: f"{x / 1e3:.0f} k" if x < 1e6 else f"{x / 1e6:.2f} M"  # noqa: E731
    compile_ms: dict[str, list[float]] = {}
    model64 = model_file(args.data_dir, 20, [64, 64], 3, 256)

    # Parquet ingest, as pandas writes the file; median of --repeat rounds,
    # each running every reader once (a read of 0.1 s varies by a third from
    # run to run on this VM, and its state drifts: rounds share it). Run
    # before the CSV tables: after the 10⁷-row cases have taken and freed
    # gigabytes, every reader's first touch of new memory is slow for a while.
    # pandas and polars use every core unless told otherwise. The floor is
    # peers/c/parquet_floor.c: only the memory work no reader can avoid.
    cores = os.cpu_count() or 1
    floor = parquet_floor(args.data_dir)
    parquet_rows = []
    for rows in [r for r in rows_list if r <= args.parquet_max_rows]:
        data = tall_parquet(args.data_dir, rows)
        bound = rows * (20 + 3) * 4 / 1e6
        with open(data, "rb") as warm:
            while warm.read(1 << 24):
                pass
        readers = {
            ("nnc", 1): lambda: nnc_ingest(model64, data, 1),
            ("nnc", cores): lambda: nnc_ingest(model64, data, None),
        }
        for lib, ok in (("pandas", pandas_ok and have("pyarrow")), ("polars", polars_ok)):
            for t in (1, cores):
                if ok:
                    readers[lib, t] = lambda lib=lib, t=t: attempt(lib, lambda: read_parquet(lib, data, t))
        if floor:
            for t in (1, cores):
                readers["floor", t] = lambda t=t: attempt("floor", lambda: floor_read(floor, data, rows, t))
        runs: dict = {key: [] for key in readers}
        for _ in range(max(1, args.repeat)):
            for key, read in readers.items():
                runs[key].append(read())
        median = {key: median_run([r for r in rs if r], "wall" if key[0] == "nnc" else "read") if any(rs) else None
                  for key, rs in runs.items()}
        # nnc's in-process time: the median of its own (not the one of the
        # median wall run).
        for t in (1, cores):
            median["nnc", t] = {**median["nnc", t], "inproc": statistics.median(r["inproc"] for r in runs["nnc", t])}
        one, every = median["nnc", 1], median["nnc", cores]
        peer = lambda lib, t: median.get((lib, t))  # noqa: E731
        # pandas' reads are bimodal on this VM (0.11 s, or 0.3–0.5 s when
        # fresh memory is slow to come): its fastest round as well.
        fastest = lambda lib, t: min((r for r in runs.get((lib, t), []) if r), key=lambda r: r["read"],  # noqa: E731
                                     default=None)
        fmt = lambda r, key: f"{r[key]:.3f} s ({r['cpu']:.3f} s CPU), {r['rss']:.0f} MB" if r else "—"  # noqa: E731
        fmt_nnc = lambda r: (f"{r['wall']:.3f} s, in process {r['inproc']:.3f} s ({r['cpu']:.3f} s CPU), "  # noqa: E731
                             f"{r['rss']:.0f} MB")
        ratio = lambda p, nnc, key="wall": f"{p['read'] / nnc[key]:.2f}×" if p else "—"  # noqa: E731
        parquet_rows.append([
            f"{rows:,}", f"{data.stat().st_size / 1e6:.0f} MB", f"{bound:.0f} MB / {1.5 * bound + 30:.0f} MB",
            fmt_nnc(one), fmt_nnc(every),
            fmt(peer("pandas", 1), "read"), fmt(peer("pandas", cores), "read"),
            f"{ratio(peer('pandas', 1), one)} / {ratio(peer('pandas', cores), every)} / "
            f"{ratio(peer('pandas', cores), one)}",
            f"{ratio(peer('pandas', 1), one, 'inproc')} / {ratio(peer('pandas', cores), every, 'inproc')} / "
            f"{ratio(fastest('pandas', cores), every, 'inproc')}",
            " / ".join(f"{p['read']:.3f} s" if p else "—" for p in (peer("polars", 1), peer("polars", cores))),
            " / ".join(f"{p['read']:.3f} s" if p else "—" for p in (peer("floor", 1), peer("floor", cores))),
            f"{peer('pandas', cores)['read'] / peer('floor', cores)['read']:.2f}×"
            if peer("pandas", cores) and peer("floor", cores) else "—",
        ])
    if parquet_rows:
        table(f"ingest: load + bind the tall file as Parquet ({load()}); median of {max(1, args.repeat)} rounds; "
              "pandas / nnc > 1 means nnc is faster",
              ["rows", "file", "bound f32 / RSS target", "nnc check, 1 core", f"nnc check, {cores} cores",
               "pandas.read_parquet, 1 thread", f"pandas.read_parquet, {cores} threads",
               f"pandas / nnc wall (1 / 1, {cores} / {cores}, {cores} / 1)",
               f"pandas / nnc in process (1 / 1, {cores} / {cores}, pandas' fastest {cores} / {cores})",
               f"polars 1 / {cores} threads",
               f"floor 1 / {cores} threads", f"pandas {cores} threads / floor {cores} threads"],
              parquet_rows)

    # Ingest.
    ingest_rows = []
    for rows in rows_list:
        data = tall_data(args.data_dir, rows)
        size = data.stat().st_size / 1e6
        bound = rows * (20 + 3) * 4 / 1e6
        # Every reader is timed on a file in the page cache: the first read
        # after a while can come from disk (the VM reclaims cold pages),
        # which would charge the first tool timed with the disk.
        with open(data, "rb") as warm:
            while warm.read(1 << 24):
                pass
        one = nnc_ingest(model64, data, 1)
        every = nnc_ingest(model64, data, None)
        pandas_t = attempt("pandas", lambda: read_csv("pandas", data, 1)) if pandas_ok else None
        polars = [attempt("polars", lambda: read_csv("polars", data, t)) if polars_ok else None for t in (1, 2)]
        ratio = lambda peer, nnc: f"{peer / nnc:.2f}×"  # noqa: E731
        ingest_rows.append([
            f"{rows:,}", f"{size:.0f} MB", f"{bound:.0f} MB / {1.5 * bound + 30:.0f} MB",
            f"{one['wall']:.2f} s, in process {one['inproc']:.2f} s ({one['cpu']:.2f} s CPU), {one['rss']:.0f} MB",
            f"{every['wall']:.2f} s, in process {every['inproc']:.2f} s ({every['cpu']:.2f} s CPU), "
            f"{every['rss']:.0f} MB",
            f"{pandas_t['read']:.2f} s ({pandas_t['cpu']:.2f} s CPU), {pandas_t['rss']:.0f} MB" if pandas_t else "—",
            f"{ratio(pandas_t['read'], one['wall'])} / {ratio(pandas_t['read'], every['wall'])}" if pandas_t else "—",
            f"{ratio(pandas_t['read'], one['inproc'])} / {ratio(pandas_t['read'], every['inproc'])}"
            if pandas_t else "—",
            f"{ratio(pandas_t['cpu'], every['cpu'])}" if pandas_t else "—",
            " / ".join(f"{p['read']:.2f} s" if p else "—" for p in polars),
        ])
    table(f"ingest: load + bind the tall file ({load()}); pandas / nnc > 1 means nnc is faster",
          ["rows", "file", "bound f32 / RSS target", "nnc check, 1 core", f"nnc check, {cores} cores",
           "pandas.read_csv (one thread)", f"pandas / nnc wall (1 / {cores} cores)",
           f"pandas / nnc in process (1 / {cores} cores)", "pandas / nnc CPU",
           "polars 1 / 2 threads"],
          ingest_rows)

    # Rows and widths.
    def training(title: str, cases: list[tuple[Path, Path, list[int], int, int, int]]) -> None:
        out = []
        for model, data, hidden, classes, batch, rows in cases:
            first = None
            for t in threads:
                runs = sorted((nnc_run(model, data, t) for _ in range(max(1, args.repeat))),
                              key=lambda run: run["rows_per_s"])
                nnc = runs[len(runs) // 2]
                spread = f"{k(runs[0]['rows_per_s'])}–{k(runs[-1]['rows_per_s'])}" if len(runs) > 1 else "—"
                compile_ms.setdefault(model.stem, []).extend(run["compile_ms"] for run in runs)
                first = first or nnc
                peer = None
                if torch_ok and rows <= (args.torch_max_rows or rows):
                    peer = attempt("PyTorch", lambda: torch_run(data, hidden, classes, batch, t))
                per = rows / 1e5
                out.append([
                    model.stem, f"{rows:,}", str(t), k(nnc["rows_per_s"]), spread,
                    f"{nnc['rows_per_s'] / first['rows_per_s']:.2f}×",
                    f"{nnc['team']['share_of_batches'] * 100:.0f}%" if nnc.get("team") else "—",
                    f"{nnc['wall']:.2f} s ({nnc['wall'] / per:.2f})", f"{nnc['rss']:.0f} MB ({nnc['rss'] / per:.1f})",
                    f"{nnc['compile_ms']:.1f} ms",
                    k(peer["rows_per_s"]) if peer else "—",
                    f"{nnc['rows_per_s'] / peer['rows_per_s']:.2f}×" if peer else "—",
                    f"{peer['rss']:.0f} MB" if peer else "—",
                ])
        table(f"{title} ({load()})",
              ["model", "rows", "threads", f"nnc rows/s (median of {max(1, args.repeat)})", "range",
               f"vs {threads[0]} thread", "batches on the team",
               "nnc wall (per 10⁵ rows)",
               "nnc peak RSS (per 10⁵ rows)", "nnc compile", "PyTorch rows/s", "nnc / PyTorch", "PyTorch RSS"], out)

    training("rows: 20-64-64-3, batch 256, 1 epoch",
             [(model64, tall_data(args.data_dir, r), [64, 64], 3, 256, r) for r in rows_list])
    wr = args.width_rows
    training(f"widths: 20-W-W-3, batch 256, 1 epoch, {wr:,} rows",
             [(model_file(args.data_dir, 20, [w, w], 3, 256), tall_data(args.data_dir, wr), [w, w], 3, 256, wr)
              for w in widths])
    training("wide: 784-256-10, batch 64, 1 epoch, 20,000 rows",
             [(model_file(args.data_dir, 784, [256], 10, 64), wide_data(args.data_dir), [256], 10, 64, 20_000)])

    # The wide task in CPU time, which the machine's load does not inflate:
    # one epoch's CPU = the process's CPU with two epochs minus with one.
    if torch_ok:
        model = model_file(args.data_dir, 784, [256], 10, 64)
        data = wide_data(args.data_dir)
        out = []
        for t in threads:
            one, two = nnc_run(model, data, t, 1), nnc_run(model, data, t, 2)
            peer = attempt("PyTorch", lambda: torch_run(data, [256], 10, 64, t))
            epoch_cpu = two["cpu"] - one["cpu"]
            if peer and epoch_cpu > 0:
                out.append([str(t), f"{epoch_cpu:.2f} s", f"{peer['train_cpu']:.2f} s",
                            f"{peer['train_cpu'] / epoch_cpu:.2f}×",
                            f"{k(one['rows_per_s'])} / {k(peer['rows_per_s'])}"])
        table(f"wide: one epoch's CPU time, 784-256-10, batch 64, 20,000 rows ({load()})",
              ["threads", "nnc (2 epochs − 1 epoch)", "PyTorch (process_time of the loop)",
               "PyTorch CPU / nnc CPU", "rows/s nnc / PyTorch (wall)"], out)

    # Whole process on 10⁶ rows.
    if 1_000_000 in rows_list and torch_ok:
        data = tall_data(args.data_dir, 1_000_000)
        out = []
        for t in threads:
            nnc = nnc_run(model64, data, t)
            peer = attempt("PyTorch", lambda: torch_run(data, [64, 64], 3, 256, t))
            if peer:
                out.append([str(t), f"{nnc['wall']:.2f} s",
                            f"{peer['import']:.2f} + {peer['read']:.2f} + {peer['train']:.2f} s",
                            f"{peer['wall']:.2f} s", f"{nnc['wall'] / peer['wall']:.2f}"])
        table(f"whole process, 10⁶ rows, 20-64-64-3: nnc run vs python (import torch + read_csv + 1 epoch) ({load()})",
              ["threads", "nnc run", "PyTorch import + read + epoch", "PyTorch process", "nnc / PyTorch"], out)

    table("JIT compile time of each model (train + evaluation kernels, every run)",
          ["model", "compile ms", "worst"],
          [[m, ", ".join(f"{v:.1f}" for v in ms), f"{max(ms):.1f} ms"] for m, ms in compile_ms.items()])
    lines.append("")
    lines.append(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
                 f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {load()} at the end; "
                 f"{(time.perf_counter() - began) / 60:.1f} min; "
                 f"command: python3 peers/scale.py {shlex.join(sys.argv[1:])}")
    print(lines[-1])
    if args.markdown:
        Path(args.data_dir / "scale.md").write_text("\n".join(lines) + "\n")
        print(f"(markdown in {args.data_dir / 'scale.md'})")


if __name__ == "__main__":
    main()
