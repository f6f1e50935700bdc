#!/usr/bin/env python3
"""Peer comparison for nnc's training: same weights, same data, same SGD.

For each PEERS.md task (iris_b16, digits_b16, diabetes_b1, and iris_b1 over its
first 3 epochs) this script

1. builds the initial weights the PEERS.md way and writes them to a
   safetensors file with nnc's tensor names (`h.w`, `h.b`, `out.w`, `out.b`);
2. trains the same network from those weights in numpy, in float32 and in
   float64 (and in PyTorch float32 if `import torch` works);
3. runs `nnc run examples/<task>.nn examples/<data>.csv --init-weights FILE
   --json --quiet` and reads `final_loss`;
4. prints a table and exits non-zero if nnc misses the target on any task.

See peers/README.md for the conventions. Run from anywhere:

    python3 peers/compare.py                 # text table
    python3 peers/compare.py --markdown      # Markdown table
    python3 peers/compare.py --json          # JSON
    python3 peers/compare.py --numpy-only    # check the numpy peer against PEERS.md

Exit codes: 0 every target task passes; 1 a target task fails (or the numpy
peer disagrees with PEERS.md, which would mean this script is wrong);
2 the comparison could not run (nnc missing, a model file missing, no
`--init-weights` flag, a usage error).
"""

from __future__ import annotations

import os

# One thread for every BLAS numpy or torch may use: reproducible summation
# order, and PEERS.md measured single-threaded. Set before importing numpy.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"  # PEERS.md's `../shared/data`

# Layer names of the nnc example models, in order (input side first).
LAYERS = ("h", "out")

# The seed of the initial weights (PEERS.md: "Xavier-uniform from numpy seed 0").
INIT_SEED = 0


@dataclass(frozen=True)
class Task:
    name: str
    model: str  # file in examples/
    data: str  # CSV name (in examples/, else ../shared/data)
    sizes: tuple[int, ...]  # inputs, hidden, outputs
    hidden: str  # "tanh" | "relu"
    output: str  # "softmax" | "identity"
    loss: str  # "cross_entropy" | "mse"
    lr: float
    batch: int
    epochs: int
    preprocess: str  # "none" | "div16" | "standardise"
    target: float  # relative tolerance of nnc vs numpy float64
    gating: bool  # False: reported only, never fails the run
    peers_ref: float | None  # PEERS.md's final loss (6 decimals), if any
    nnc_flags: tuple[str, ...] = field(default=())


TASKS = (
    Task("iris_b16", "iris.nn", "iris.csv", (4, 8, 3), "tanh", "softmax", "cross_entropy",
         0.05, 16, 200, "none", 1e-5, True, 0.133338),
    Task("digits_b16", "digits.nn", "digits.csv", (64, 32, 10), "relu", "softmax", "cross_entropy",
         0.01, 16, 50, "div16", 1e-5, True, 0.152281),
    Task("diabetes_b1", "diabetes.nn", "diabetes.csv", (10, 16, 1), "tanh", "identity", "mse",
         0.01, 1, 200, "standardise", 1e-5, True, 0.316935),
    # Chaotic (per-sample SGD on raw, class-sorted iris): only the first 3
    # epochs are compared, and only reported.
    Task("iris_b1", "iris.nn", "iris.csv", (4, 8, 3), "tanh", "softmax", "cross_entropy",
         0.05, 1, 3, "none", 1e-3, False, None, ("--batch", "1", "--epochs", "3")),
)

# How far the numpy float64 peer may be from PEERS.md's printed value before
# this script declares itself wrong: 1e-5 relative plus half a unit of the
# sixth decimal PEERS.md prints.
PEERS_TOLERANCE = 1e-5


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Initial weights


def initial_weights(sizes: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Xavier-uniform weights from `numpy.random.default_rng(0)`, zero biases.

    One generator for the whole network; layers drawn in order, input side
    first; each weight drawn as a [fan_in, fan_out] array (row-major, so the
    draws fill one input's row of outputs before the next) from
    U(-a, a), a = sqrt(6 / (fan_in + fan_out)), in float64, then rounded to
    float32 (the file's dtype). Biases are zeros of shape [fan_out].
    """
    rng = np.random.default_rng(INIT_SEED)
    weights: dict[str, np.ndarray] = {}
    for layer, fan_in, fan_out in zip(LAYERS, sizes, sizes[1:]):
        a = np.sqrt(6.0 / (fan_in + fan_out))
        weights[f"{layer}.w"] = rng.uniform(-a, a, size=(fan_in, fan_out)).astype(np.float32)
        weights[f"{layer}.b"] = np.zeros(fan_out, dtype=np.float32)
    return weights


# --------------------------------------------------------------------------
# Data


def csv_path(task: Task, examples: Path) -> Path:
    path = examples / task.data
    if path.exists():
        return path
    fallback = SHARED_DATA / task.data
    if fallback.exists():
        return fallback
    raise FileNotFoundError(f"no {task.data} in {examples} or {SHARED_DATA}")


def load_data(task: Task, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Features and targets in float64, preprocessed as PEERS.md says."""
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    x, t = table[:, :-1], table[:, -1]
    if x.shape[1] != task.sizes[0]:
        raise ValueError(f"{path} has {x.shape[1]} feature columns, {task.name} needs {task.sizes[0]}")
    if task.preprocess == "div16":
        x = x / 16.0
    elif task.preprocess == "standardise":
        # Population std (ddof=0), statistics of all rows, features and target.
        x = (x - x.mean(axis=0)) / x.std(axis=0)
        t = (t - t.mean()) / t.std()
    if task.loss == "cross_entropy":
        y = np.eye(task.sizes[-1])[t.astype(np.int64)]
    else:
        y = t[:, None]
    return x, y


# --------------------------------------------------------------------------
# The numpy peer


def train_numpy(task: Task, init: dict[str, np.ndarray], x64: np.ndarray, y64: np.ndarray,
                dtype: type) -> float:
    """Plain SGD, rows in file order, last partial batch kept, batch-mean loss.

    Returns the loss over the whole set with the final weights, computed in
    `dtype`.
    """
    x, y = x64.astype(dtype), y64.astype(dtype)
    w1, b1 = init["h.w"].astype(dtype), init["h.b"].astype(dtype)
    w2, b2 = init["out.w"].astype(dtype), init["out.b"].astype(dtype)
    lr = dtype(task.lr)
    tanh = task.hidden == "tanh"
    softmax = task.output == "softmax"

    def forward(xb):
        z1 = xb @ w1 + b1
        h = np.tanh(z1) if tanh else np.maximum(z1, dtype(0))
        return z1, h, h @ w2 + b2

    def loss(z, yb):
        if softmax:  # mean over rows of -sum y log softmax(z)
            m = z.max(axis=1, keepdims=True)
            log_p = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
            return -(yb * log_p).sum(axis=1).mean()
        return ((z - yb) ** 2).mean()  # mean over all elements

    n = len(x)
    for _ in range(task.epochs):
        for start in range(0, n, task.batch):
            xb, yb = x[start:start + task.batch], y[start:start + task.batch]
            z1, h, z2 = forward(xb)
            if softmax:
                p = np.exp(z2 - z2.max(axis=1, keepdims=True))
                p /= p.sum(axis=1, keepdims=True)
                d2 = (p - yb) / dtype(len(xb))
            else:
                d2 = dtype(2) * (z2 - yb) / dtype(z2.size)
            gw2, gb2 = h.T @ d2, d2.sum(axis=0)
            dh = d2 @ w2.T
            d1 = dh * (dtype(1) - h * h) if tanh else dh * (z1 > 0)
            gw1, gb1 = xb.T @ d1, d1.sum(axis=0)
            w1 -= lr * gw1
            b1 -= lr * gb1
            w2 -= lr * gw2
            b2 -= lr * gb2
    return float(loss(forward(x)[2], y))


# --------------------------------------------------------------------------
# The PyTorch peer (optional)


def torch_module():
    try:
        import torch  # noqa: F401
    except ImportError as e:
        return None, f"PyTorch not installed ({e}); torch column skipped"
    import torch

    torch.set_num_threads(1)
    return torch, f"torch {torch.__version__}"


def train_torch(torch, task: Task, init: dict[str, np.ndarray], x64: np.ndarray, y64: np.ndarray) -> float:
    """The same training in PyTorch float32 eager mode, autograd + optim.SGD."""
    dtype = torch.float32
    params = [torch.tensor(init[f"{layer}.{kind}"], dtype=dtype).requires_grad_()
              for layer in LAYERS for kind in ("w", "b")]
    w1, b1, w2, b2 = params
    opt = torch.optim.SGD(params, lr=task.lr, momentum=0.0)
    x = torch.tensor(x64, dtype=dtype)
    y = torch.tensor(y64, dtype=dtype)
    act = torch.tanh if task.hidden == "tanh" else torch.relu

    def loss(xb, yb):
        z = act(xb @ w1 + b1) @ w2 + b2
        if task.output == "softmax":
            return -(yb * torch.log_softmax(z, dim=1)).sum(dim=1).mean()
        return ((z - yb) ** 2).mean()

    n = x.shape[0]
    for _ in range(task.epochs):
        for start in range(0, n, task.batch):
            opt.zero_grad()
            loss(x[start:start + task.batch], y[start:start + task.batch]).backward()
            opt.step()
    with torch.no_grad():
        return float(loss(x, y))


# --------------------------------------------------------------------------
# nnc


class NncUnavailable(Exception):
    pass


def find_nnc(arg: str | None, build: bool) -> tuple[Path, str]:
    """The nnc binary and its `run --help` text; builds it if asked and missing."""
    if arg:
        nnc = Path(arg).resolve()
        if not nnc.exists():
            raise NncUnavailable(f"--nnc {arg}: no such file")
    else:
        nnc = ROOT / "target" / "release" / "nnc"
        if not nnc.exists():
            if not build:
                raise NncUnavailable(f"{nnc} does not exist (build it with `cargo build --release`)")
            if shutil.which("cargo") is None:
                raise NncUnavailable(f"{nnc} does not exist and cargo is not on PATH")
            log(f"{nnc} missing: running `cargo build --release` in {ROOT} ...")
            done = subprocess.run(["cargo", "build", "--release"], cwd=ROOT)
            if done.returncode != 0 or not nnc.exists():
                raise NncUnavailable(f"`cargo build --release` failed (exit {done.returncode})")
    help_text = subprocess.run([str(nnc), "run", "--help"], capture_output=True, text=True).stdout
    if "--init-weights" not in help_text:
        raise NncUnavailable(
            f"{nnc} has no `--init-weights` flag in `nnc run --help` "
            "(an older build? rebuild with `cargo build --release`)")
    return nnc, help_text


def run_nnc(nnc: Path, help_text: str, task: Task, model: Path, data: Path, weights: Path,
            timeout: float) -> tuple[dict | None, list[str], str | None]:
    """(nnc's JSON, the command, an error message)."""
    cmd = [str(nnc), "run", str(model), str(data), "--init-weights", str(weights), "--json", "--quiet"]
    cmd += list(task.nnc_flags)
    if "--no-shuffle" in help_text:
        cmd.append("--no-shuffle")  # file order, whatever the model file says
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return None, cmd, f"timed out after {timeout:.0f} s"
    if done.returncode != 0:
        # --quiet may have silenced the diagnostic: run again without it.
        loud = subprocess.run([c for c in cmd if c != "--quiet"], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)
        tail = (loud.stderr or done.stderr or done.stdout).strip().splitlines()[-12:]
        return None, cmd, f"exit {done.returncode}: " + " | ".join(line.strip() for line in tail)
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError as e:
        return None, cmd, f"stdout is not JSON ({e}): {done.stdout[:200]!r}"
    if not isinstance(result.get("final_loss"), (int, float)):
        return result, cmd, f"no numeric final_loss in the JSON: {result.get('final_loss')!r}"
    return result, cmd, None


def settings_mismatch(task: Task, result: dict) -> list[str]:
    """Settings nnc reports that differ from the task's."""
    problems = []
    lr = result.get("learning_rate")
    # nnc keeps the rate in float32 and reports it widened (0.05 -> 0.0500000007).
    if lr is not None and abs(float(lr) - task.lr) > 1e-6 * task.lr:
        problems.append(f"nnc used lr {lr}, task has {task.lr}")
    for key, want in (("batch", task.batch), ("epochs", task.epochs)):
        got = result.get(key)
        if got is not None and int(got) != want:
            problems.append(f"nnc used {key} {got}, task has {want}")
    if result.get("shuffle") is True:
        problems.append("nnc shuffled the rows; the task visits them in file order")
    return problems


# --------------------------------------------------------------------------
# Output


def rel(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return abs(a - b) / abs(b) if b != 0 else abs(a - b)


def fmt(v: float | None, spec: str = ".6f") -> str:
    return "—" if v is None else format(v, spec)


COLUMNS = [
    ("task", "task"),
    ("nnc", "nnc"),
    ("numpy_f32", "numpy f32"),
    ("numpy_f64", "numpy f64"),
    ("torch_f32", "torch f32"),
    ("peers_md", "PEERS.md"),
    ("rel_nnc_vs_f64", "rel nnc−f64"),
    ("rel_nnc_vs_f32", "rel nnc−f32"),
    ("target", "target"),
    ("status", "result"),
]


def cells(row: dict, with_torch: bool) -> list[str]:
    out = []
    for key, _ in COLUMNS:
        if key == "torch_f32" and not with_torch:
            continue
        v = row[key]
        if key in ("nnc", "numpy_f32", "numpy_f64", "torch_f32"):
            out.append(fmt(v, ".9f"))
        elif key == "peers_md":
            out.append(fmt(v, ".6f"))
        elif key.startswith("rel_"):
            out.append(fmt(v, ".1e"))
        elif key == "target":
            out.append(f"{v:.0e}" + ("" if row["gating"] else " (report)"))
        else:
            out.append(str(v))
    return out


def headers(with_torch: bool) -> list[str]:
    return [h for k, h in COLUMNS if with_torch or k != "torch_f32"]


def print_text(rows: list[dict], with_torch: bool, notes: list[str]) -> None:
    head = headers(with_torch)
    body = [cells(r, with_torch) for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("  ".join("-" * w for w in widths))
    for b in body:
        print("  ".join(c.ljust(w) for c, w in zip(b, widths)))
    for r in rows:
        for note in r["notes"]:
            print(f"  {r['task']}: {note}")
    for note in notes:
        print(f"note: {note}")


def print_markdown(rows: list[dict], with_torch: bool, notes: list[str]) -> None:
    head = headers(with_torch)
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        print("| " + " | ".join(cells(r, with_torch)) + " |")
    extra = [f"{r['task']}: {n}" for r in rows for n in r["notes"]] + notes
    if extra:
        print()
        for n in extra:
            print(f"- {n}")


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the table as JSON")
    out.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--nnc", metavar="PATH",
                        help="the nnc binary (default: target/release/nnc, built if missing)")
    parser.add_argument("--no-build", action="store_true",
                        help="never run `cargo build --release`")
    parser.add_argument("--numpy-only", action="store_true",
                        help="skip nnc: check the numpy peer against PEERS.md's losses")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    parser.add_argument("--tasks", default=",".join(t.name for t in TASKS),
                        help="comma-separated subset of: %(default)s")
    parser.add_argument("--examples", metavar="DIR", default=str(ROOT / "examples"),
                        help="where the .nn models and CSVs are (default: %(default)s); a CSV "
                             "missing there is taken from ../shared/data")
    parser.add_argument("--weights-dir", metavar="DIR",
                        help="write the initial-weights files here and keep them "
                             "(default: a temporary directory, removed at exit)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per nnc run")
    args = parser.parse_args(argv)

    by_name = {t.name: t for t in TASKS}
    wanted = [s.strip() for s in args.tasks.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in by_name]
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    tasks = [by_name[s] for s in wanted]
    examples = Path(args.examples).resolve()

    notes: list[str] = []
    torch = None
    if args.no_torch:
        notes.append("torch column skipped (--no-torch)")
    else:
        torch, torch_note = torch_module()
        notes.append(torch_note)
    with_torch = torch is not None

    # nnc: find it and check the model files before spending time on numpy.
    nnc = help_text = None
    unavailable: str | None = None
    if not args.numpy_only:
        try:
            nnc, help_text = find_nnc(args.nnc, build=not args.no_build)
        except NncUnavailable as e:
            unavailable = str(e)
        missing = [t.model for t in tasks if not (examples / t.model).exists()]
        if missing:
            m = f"model file(s) missing in {examples}: {', '.join(sorted(set(missing)))}"
            unavailable = f"{unavailable}; {m}" if unavailable else m
        if unavailable:
            log(f"nnc comparison cannot run: {unavailable}")
            notes.append(f"nnc not run: {unavailable}")

    tmp = None
    if args.weights_dir:
        weights_dir = Path(args.weights_dir)
        weights_dir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="nnc-peers-")
        weights_dir = Path(tmp.name)

    rows = []
    harness_wrong = False
    any_fail = False
    try:
        for task in tasks:
            data = csv_path(task, examples)
            if data.parent != examples:
                notes.append(f"{task.data} not in {examples}: used {data}")
            init = initial_weights(task.sizes)
            weights = weights_dir / f"{task.name}.init.safetensors"
            save_file(init, str(weights), metadata={
                "source": "peers/compare.py",
                "init": f"xavier_uniform default_rng({INIT_SEED}) layers {','.join(LAYERS)} in order, "
                        "W [inputs, outputs], zero biases",
            })
            x, y = load_data(task, data)
            row: dict = {"task": task.name, "gating": task.gating, "target": task.target,
                         "peers_md": task.peers_ref, "epochs": task.epochs, "batch": task.batch,
                         "lr": task.lr, "data": str(data), "weights": str(weights), "notes": []}
            t0 = time.perf_counter()
            row["numpy_f32"] = train_numpy(task, init, x, y, np.float32)
            row["numpy_f64"] = train_numpy(task, init, x, y, np.float64)
            log(f"{task.name}: numpy f32 {row['numpy_f32']:.9f}, f64 {row['numpy_f64']:.9f} "
                f"({time.perf_counter() - t0:.1f} s)")
            row["torch_f32"] = None
            if torch is not None:
                t0 = time.perf_counter()
                row["torch_f32"] = train_torch(torch, task, init, x, y)
                log(f"{task.name}: torch f32 {row['torch_f32']:.9f} ({time.perf_counter() - t0:.1f} s)")

            if task.peers_ref is not None:
                off = abs(row["numpy_f64"] - task.peers_ref)
                row["numpy_vs_peers_md"] = off / task.peers_ref
                if off > PEERS_TOLERANCE * task.peers_ref + 5e-7:
                    harness_wrong = True
                    row["notes"].append(f"numpy f64 is {off / task.peers_ref:.1e} from PEERS.md's "
                                        f"{task.peers_ref}: the numpy peer itself is suspect")

            row["nnc"] = None
            row["nnc_json"] = None
            row["nnc_command"] = None
            status = "—"
            if not args.numpy_only and not unavailable:
                result, cmd, error = run_nnc(nnc, help_text, task, examples / task.model, data,
                                             weights, args.timeout)
                row["nnc_command"] = " ".join(cmd)
                row["nnc_json"] = result
                if error:
                    row["notes"].append(f"nnc failed: {error}")
                    status = "FAIL"
                else:
                    row["nnc"] = float(result["final_loss"])
                    problems = settings_mismatch(task, result)
                    row["notes"].extend(problems)
                    ok = rel(row["nnc"], row["numpy_f64"]) <= task.target and not problems
                    status = "PASS" if ok else "FAIL"
                    log(f"{task.name}: nnc {row['nnc']:.9f} -> {status}")
                if not task.gating:
                    status += " (report only)"
                elif status == "FAIL":
                    any_fail = True
            elif args.numpy_only:
                if task.peers_ref is not None:
                    status = "numpy ok" if row["numpy_vs_peers_md"] <= PEERS_TOLERANCE else "numpy off"
            row["rel_nnc_vs_f64"] = rel(row["nnc"], row["numpy_f64"])
            row["rel_nnc_vs_f32"] = rel(row["nnc"], row["numpy_f32"])
            row["status"] = status
            rows.append(row)
    finally:
        if tmp is not None:
            tmp.cleanup()
    if tmp is not None:
        for r in rows:
            r["weights"] = None  # removed with the temporary directory

    if args.json:
        print(json.dumps({
            "nnc": str(nnc) if nnc else None,
            "nnc_unavailable": unavailable,
            "torch": torch.__version__ if torch is not None else None,
            "numpy": np.__version__,
            "init": {"generator": f"numpy.random.default_rng({INIT_SEED})",
                     "recipe": "per layer in order (h, out): W = rng.uniform(-a, a, (fan_in, fan_out)), "
                               "a = sqrt(6/(fan_in+fan_out)), float64 rounded to float32; b = 0"},
            "tasks": rows,
            "notes": notes,
        }, indent=2))
    elif args.markdown:
        print_markdown(rows, with_torch, notes)
    else:
        print_text(rows, with_torch, notes)

    if harness_wrong or any_fail:
        return 1
    if unavailable:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
