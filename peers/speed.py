#!/usr/bin/env python3
"""Speed comparison of nnc against its peers on the PEERS.md tasks.

For each task (iris_b1, iris_b16, digits_b16, diabetes_b1; settings in
`../shared/PEERS.md`) and each peer

  nnc      target/release/nnc run examples/<model>.nn examples/<data>.csv --json --quiet
  C loop   peers/c/mlp.c compiled per task with `gcc -O3 -march=native`
  JAX      the whole epoch in one jitted `lax.scan` (float32)
  numpy    float32, per-batch matmuls
  PyTorch  eager, autograd + optim.SGD (only if `import torch` already works)

this script measures training throughput (samples/s, training loop only, as
each peer reports it), the whole-process wall time and peak RSS (from
`os.wait4` on the child), nnc's JIT compile time and JAX's jit time, and the
final full-set loss (a sanity check: all peers start from the same weights).

Every peer runs single-threaded (thread variables below, and pinned to one CPU
with `sched_setaffinity`, which children inherit), in its own process,
round-robin over peers and tasks, `--runs` times; the tables show medians.

    python3 peers/speed.py                      # text tables
    python3 peers/speed.py --runs 5 --markdown  # Markdown for BENCHMARKS.md
    python3 peers/speed.py --json               # everything, every run

See peers/SPEED.md.
"""

from __future__ import annotations

import os

# Single-threaded peers, set before numpy (or anything that loads a BLAS) is
# imported; child processes inherit them.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
C_SOURCE = ROOT / "peers" / "c" / "mlp.c"
SHARED_DATA = ROOT.parent / "shared" / "data"
LAYERS = ("h", "out")  # layer names in the example models, input side first
INIT_SEED = 0


@dataclass(frozen=True)
class Task:
    name: str
    model: str  # file in examples/
    data: str  # CSV in examples/ (else ../shared/data)
    sizes: tuple[int, int, int]  # inputs, hidden, outputs
    hidden: str  # tanh | relu
    output: str  # softmax | identity
    lr: float
    batch: int
    epochs: int
    preprocess: str  # none | div16 | standardize
    nnc_flags: tuple[str, ...] = field(default=())

    @property
    def softmax(self) -> bool:
        return self.output == "softmax"


TASKS = (
    Task("iris_b1", "iris.nn", "iris.csv", (4, 8, 3), "tanh", "softmax", 0.05, 1, 200, "none",
         ("--batch", "1")),
    Task("iris_b16", "iris.nn", "iris.csv", (4, 8, 3), "tanh", "softmax", 0.05, 16, 200, "none"),
    Task("digits_b16", "digits.nn", "digits.csv", (64, 32, 10), "relu", "softmax", 0.01, 16, 50, "div16"),
    Task("diabetes_b1", "diabetes.nn", "diabetes.csv", (10, 16, 1), "tanh", "identity", 0.01, 1, 200,
         "standardize"),
)
TASK_BY_NAME = {t.name: t for t in TASKS}

PEERS = ("nnc", "c", "jax", "numpy", "torch")
PEER_TITLE = {"nnc": "nnc", "c": "C loop", "jax": "JAX scan", "numpy": "numpy", "torch": "PyTorch eager"}
# Tasks whose whole-process wall time and RSS the tables show (all are measured).
PROCESS_TASKS = ("iris_b16", "digits_b16")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ==========================================================================
# Shared by the parent and the Python workers


def init_arrays(sizes):
    """Xavier-uniform from `numpy.random.default_rng(0)`, zero biases (PEERS.md;
    the same convention as peers/compare.py): one generator, layers drawn input
    side first, each W drawn as [fan_in, fan_out] in float64, then float32."""
    import numpy as np

    rng = np.random.default_rng(INIT_SEED)
    out = {}
    for layer, fan_in, fan_out in zip(LAYERS, sizes, sizes[1:]):
        a = np.sqrt(6.0 / (fan_in + fan_out))
        out[f"{layer}.w"] = rng.uniform(-a, a, size=(fan_in, fan_out)).astype(np.float32)
        out[f"{layer}.b"] = np.zeros(fan_out, dtype=np.float32)
    return out


def read_init_bin(path: str, sizes):
    """The raw float32 file the C loop reads: W1, b1, W2, b2 in that order."""
    import numpy as np

    flat = np.fromfile(path, dtype="<f4")
    n_in, n_h, n_out = sizes
    shapes = [(n_in, n_h), (n_h,), (n_h, n_out), (n_out,)]
    arrays, at = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        arrays.append(flat[at:at + size].reshape(shape).copy())
        at += size
    if at != flat.size:
        raise ValueError(f"{path}: {flat.size} floats, expected {at}")
    return arrays


def load_data(task: Task, path: str):
    """Features and targets, preprocessed in float64 (PEERS.md), as float32."""
    import numpy as np

    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    x, t = table[:, :-1], table[:, -1]
    if task.preprocess == "div16":
        x = x / 16.0
    elif task.preprocess == "standardize":
        x = (x - x.mean(axis=0)) / x.std(axis=0)  # population std
        t = (t - t.mean()) / t.std()
    y = np.eye(task.sizes[-1])[t.astype(np.int64)] if task.softmax else t[:, None]
    return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y, dtype=np.float32)


# ==========================================================================
# Workers: one process per (peer, task, run); each prints one JSON object.


def worker_numpy(task: Task, init_path: str, data_path: str) -> dict:
    import numpy as np

    x, y = load_data(task, data_path)
    w1, b1, w2, b2 = read_init_bin(init_path, task.sizes)
    f32 = np.float32
    lr = f32(task.lr)
    tanh = task.hidden == "tanh"
    n, bsz = len(x), task.batch

    def forward(xb):
        z1 = xb @ w1 + b1
        h = np.tanh(z1) if tanh else np.maximum(z1, f32(0))
        return z1, h, h @ w2 + b2

    def full_loss():
        z = forward(x)[2]
        if task.softmax:
            m = z.max(axis=1, keepdims=True)
            log_p = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
            return float(-(y * log_p).sum(axis=1).mean())
        return float(((z - y) ** 2).mean())

    epoch_loss = 0.0
    t0 = time.perf_counter()
    for _ in range(task.epochs):
        total = f32(0)
        for start in range(0, n, bsz):
            xb, yb = x[start:start + bsz], y[start:start + bsz]
            rows = len(xb)
            z1, h, z2 = forward(xb)
            if task.softmax:
                zm = z2 - z2.max(axis=1, keepdims=True)
                e = np.exp(zm)
                s = e.sum(axis=1, keepdims=True)
                total += -(yb * (zm - np.log(s))).sum()  # batch loss × rows
                d2 = (e / s - yb) / f32(rows)
            else:
                diff = z2 - yb
                total += (diff * diff).sum() / f32(diff.shape[1])
                d2 = f32(2) * diff / f32(diff.size)
            gw2, gb2 = h.T @ d2, d2.sum(axis=0)
            dh = d2 @ w2.T
            d1 = dh * (f32(1) - h * h) if tanh else dh * (z1 > 0)
            gw1, gb1 = xb.T @ d1, d1.sum(axis=0)
            w1 -= lr * gw1
            b1 -= lr * gb1
            w2 -= lr * gw2
            b2 -= lr * gb2
        epoch_loss = float(total) / n
    train_s = time.perf_counter() - t0
    samples = n * task.epochs
    return {"samples": samples, "train_ms": train_s * 1e3, "samples_per_second": samples / train_s,
            "last_epoch_loss": epoch_loss, "final_loss": full_loss(), "version": f"numpy {np.__version__}"}


def worker_jax(task: Task, init_path: str, data_path: str) -> dict:
    t_import = time.perf_counter()
    import jax
    import jax.numpy as jnp
    from jax import lax

    import_ms = (time.perf_counter() - t_import) * 1e3
    x, y = load_data(task, data_path)
    params0 = tuple(jnp.asarray(a) for a in read_init_bin(init_path, task.sizes))
    n, bsz = len(x), task.batch
    n_full = n // bsz
    rest = n - n_full * bsz
    act = jnp.tanh if task.hidden == "tanh" else jax.nn.relu
    lr = task.lr

    def loss_fn(params, xb, yb):
        w1, b1, w2, b2 = params
        z = act(xb @ w1 + b1) @ w2 + b2
        if task.softmax:
            return -(yb * jax.nn.log_softmax(z, axis=1)).sum(axis=1).mean()
        return ((z - yb) ** 2).mean()

    def sgd_step(params, batch):
        xb, yb = batch
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
        return tuple(p - lr * g for p, g in zip(params, grads)), loss

    def epoch(params, xs, ys, xr, yr):
        """All full batches in one lax.scan, then the partial last batch."""
        params, losses = lax.scan(sgd_step, params, (xs, ys))
        total = losses.sum() * bsz
        if rest:
            params, last = sgd_step(params, (xr, yr))
            total = total + last * rest
        return params, total / n

    xs = jnp.asarray(x[:n_full * bsz].reshape(n_full, bsz, -1))
    ys = jnp.asarray(y[:n_full * bsz].reshape(n_full, bsz, -1))
    xr, yr = jnp.asarray(x[n_full * bsz:]), jnp.asarray(y[n_full * bsz:])

    t0 = time.perf_counter()
    compiled = jax.jit(epoch).lower(params0, xs, ys, xr, yr).compile()
    jit_ms = (time.perf_counter() - t0) * 1e3
    jax.block_until_ready(compiled(params0, xs, ys, xr, yr))  # warm-up epoch, discarded

    params = params0
    epoch_loss = None
    t0 = time.perf_counter()
    for _ in range(task.epochs):
        params, epoch_loss = compiled(params, xs, ys, xr, yr)
    jax.block_until_ready((params, epoch_loss))
    train_s = time.perf_counter() - t0
    final = float(jax.jit(loss_fn)(params, jnp.asarray(x), jnp.asarray(y)))
    samples = n * task.epochs
    return {"samples": samples, "train_ms": train_s * 1e3, "samples_per_second": samples / train_s,
            "last_epoch_loss": float(epoch_loss), "final_loss": final, "jit_ms": jit_ms,
            "import_ms": import_ms, "version": f"jax {jax.__version__}",
            "dtype": str(params[0].dtype)}


def worker_torch(task: Task, init_path: str, data_path: str) -> dict:
    t_import = time.perf_counter()
    import torch

    import_ms = (time.perf_counter() - t_import) * 1e3
    torch.set_num_threads(1)
    x64, y64 = load_data(task, data_path)
    x, y = torch.from_numpy(x64), torch.from_numpy(y64)
    params = [torch.from_numpy(a).requires_grad_() for a in read_init_bin(init_path, task.sizes)]
    w1, b1, w2, b2 = params
    opt = torch.optim.SGD(params, lr=task.lr, momentum=0.0)
    act = torch.tanh if task.hidden == "tanh" else torch.relu

    def loss_fn(xb, yb):
        z = act(xb @ w1 + b1) @ w2 + b2
        if task.softmax:
            return -(yb * torch.log_softmax(z, dim=1)).sum(dim=1).mean()
        return ((z - yb) ** 2).mean()

    n, bsz = x.shape[0], task.batch
    epoch_loss = 0.0
    t0 = time.perf_counter()
    for _ in range(task.epochs):
        total = torch.zeros(())
        for start in range(0, n, bsz):
            xb, yb = x[start:start + bsz], y[start:start + bsz]
            opt.zero_grad()
            loss = loss_fn(xb, yb)
            loss.backward()
            opt.step()
            total += loss.detach() * xb.shape[0]
        epoch_loss = float(total) / n
    train_s = time.perf_counter() - t0
    with torch.no_grad():
        final = float(loss_fn(x, y))
    samples = n * task.epochs
    return {"samples": samples, "train_ms": train_s * 1e3, "samples_per_second": samples / train_s,
            "last_epoch_loss": epoch_loss, "final_loss": final, "import_ms": import_ms,
            "version": f"torch {torch.__version__}"}


WORKERS = {"numpy": worker_numpy, "jax": worker_jax, "torch": worker_torch}


def worker_main(args) -> int:
    task = TASK_BY_NAME[args.task]
    result = WORKERS[args.worker](task, args.init, args.data)
    print(json.dumps(result))
    return 0


# ==========================================================================
# The parent: set-up


def csv_path(task: Task, examples: Path) -> Path:
    for path in (examples / task.data, SHARED_DATA / task.data):
        if path.exists():
            return path
    raise FileNotFoundError(f"no {task.data} in {examples} or {SHARED_DATA}")


def write_safetensors(path: Path, tensors: dict) -> None:
    """A safetensors file by hand (8-byte header length, JSON header, data)."""
    header, blobs, at = {}, [], 0
    for name, arr in tensors.items():
        data = arr.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [at, at + len(data)]}
        blobs.append(data)
        at += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def write_inits(tasks, workdir: Path) -> dict:
    """Per task: the raw file (C, Python workers) and the safetensors file (nnc)."""
    files = {}
    for task in tasks:
        w = init_arrays(task.sizes)
        raw = workdir / f"{task.name}.init.bin"
        raw.write_bytes(b"".join(w[k].astype("<f4").tobytes() for k in ("h.w", "h.b", "out.w", "out.b")))
        st = workdir / f"{task.name}.init.safetensors"
        write_safetensors(st, w)
        files[task.name] = (raw, st)
    return files


def find_nnc(arg: str | None, build: bool) -> Path:
    if arg:
        nnc = Path(arg).resolve()
        if not nnc.exists():
            sys.exit(f"speed.py: --nnc {arg}: no such file")
        return nnc
    nnc = ROOT / "target" / "release" / "nnc"
    if not nnc.exists():
        if not build:
            sys.exit(f"speed.py: {nnc} missing (cargo build --release)")
        log(f"{nnc} missing: cargo build --release ...")
        if subprocess.run(["cargo", "build", "--release"], cwd=ROOT).returncode != 0 or not nnc.exists():
            sys.exit("speed.py: cargo build --release failed")
    return nnc


def compile_c(task: Task, workdir: Path, cc: str, cflags: list[str]) -> tuple[Path, list[str]]:
    n_in, n_h, n_out = task.sizes
    exe = workdir / f"mlp_{task.name}"
    defs = [f"-DNIN={n_in}", f"-DNH={n_h}", f"-DNOUT={n_out}", f"-DBATCH={task.batch}",
            "-DHIDDEN_TANH" if task.hidden == "tanh" else "-DHIDDEN_RELU"]
    if task.softmax:
        defs.append("-DSOFTMAX")
    cmd = [cc, *cflags, *defs, "-o", str(exe), str(C_SOURCE), "-lm"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return exe, cmd


def probe_module(name: str) -> tuple[bool, str]:
    """Whether `import NAME` works (in a child, so this process stays light)."""
    code = f"import {name}; print({name}.__version__)"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return False, "import timed out"
    if done.returncode == 0:
        return True, f"{name} {done.stdout.strip()}"
    last = (done.stderr.strip().splitlines() or ["?"])[-1]
    return False, last


def machine_info() -> dict:
    info = {"model": "?", "cpus": os.cpu_count()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            key, _, val = line.partition(":")
            key, val = key.strip(), val.strip()
            if key == "Model name":
                info["model"] = val
            elif key == "CPU(s)":
                info["cpus"] = int(val)
            elif key == "Core(s) per socket":
                info["cores_per_socket"] = int(val)
            elif key == "Socket(s)":
                info["sockets"] = int(val)
            elif key == "Thread(s) per core":
                info["threads_per_core"] = int(val)
            elif key == "Hypervisor vendor":
                info["hypervisor"] = val
    except OSError:
        pass
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0]
        info["isa"] = ", ".join(f for f in ("avx2", "fma", "avx512f") if f" {f}" in flags)
    except (OSError, IndexError):
        pass
    return info


def versions(cc: str, nnc: Path) -> dict:
    v = {"python": sys.version.split()[0]}
    try:
        v["cc"] = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        v["cc"] = cc
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "src"],
                               capture_output=True, text=True).stdout.strip()
        v["nnc_commit"] = rev + (" + uncommitted src/ changes" if dirty else "")
    except OSError:
        pass
    mtime = datetime.datetime.fromtimestamp(nnc.stat().st_mtime, datetime.timezone.utc)
    v["nnc_binary"] = f"{nnc} (built {mtime:%Y-%m-%d %H:%M} UTC)"
    return v


# ==========================================================================
# The parent: measuring


GNU_TIME = "/usr/bin/time"


def gnu_time() -> str | None:
    """GNU time, if present: its %M is the peak RSS of the command alone.

    (os.wait4's ru_maxrss is not: Linux carries the peak RSS across execve, so a
    child forked from this ~40 MB Python process would report at least that.
    GNU time forks from a ~1 MB process instead, which is then the floor.)"""
    try:
        done = subprocess.run([GNU_TIME, "-f", "%M", "true"], capture_output=True, text=True)
    except OSError:
        return None
    return GNU_TIME if done.returncode == 0 and done.stderr.strip().isdigit() else None


def run_child(cmd: list[str], timeout: float, timer_cmd: str | None) -> dict:
    """Run cmd; its stdout's last line is JSON. Adds wall_ms (start to exit, as
    seen from here) and maxrss_mb (GNU time's %M; None without GNU time)."""
    with tempfile.TemporaryDirectory() as tmp:
        rss_file = Path(tmp) / "rss"
        full = [timer_cmd, "-f", "%M", "-o", str(rss_file), *cmd] if timer_cmd else cmd
        out_path, err_path = Path(tmp) / "out", Path(tmp) / "err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(full, stdout=out, stderr=err, cwd=ROOT)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                return {"error": f"timed out after {timeout:.0f} s"}
            wall_ms = (time.perf_counter() - t0) * 1e3
        stdout, stderr = out_path.read_bytes(), err_path.read_bytes()
        maxrss_mb = None
        if timer_cmd:
            try:
                maxrss_mb = int(rss_file.read_text().strip().splitlines()[-1]) / 1024.0
            except (OSError, ValueError, IndexError):
                pass
    if code != 0:
        tail = (stderr.decode(errors="replace").strip().splitlines() or ["(no stderr)"])[-6:]
        return {"error": f"exit {code}: " + " | ".join(tail)}
    try:
        result = json.loads(stdout.decode().strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError) as e:
        return {"error": f"stdout is not JSON ({e}): {stdout[:200]!r}"}
    result["wall_ms"] = wall_ms
    result["maxrss_mb"] = maxrss_mb
    return result


def peer_command(peer: str, task: Task, ctx: dict) -> list[str]:
    raw, st = ctx["inits"][task.name]
    data = str(ctx["data"][task.name])
    if peer == "nnc":
        cmd = [str(ctx["nnc"]), "run", str(ctx["examples"] / task.model), data, "--json", "--quiet",
               *task.nnc_flags]
        if ctx["nnc_init"]:
            cmd += ["--init-weights", str(st)]
        return cmd
    if peer == "c":
        return [str(ctx["c_exe"][task.name]), data, str(task.epochs), repr(task.lr), task.preprocess, str(raw)]
    return [sys.executable, str(Path(__file__).resolve()), "--worker", peer, "--task", task.name,
            "--init", str(raw), "--data", data]


def normalise(peer: str, result: dict) -> dict:
    """Common keys: samples_per_second, final_loss, wall_ms, maxrss_mb, compile_ms."""
    if peer == "nnc" and "error" not in result:
        timings = result.get("timings_ms", {})
        result = dict(result)
        result["compile_ms"] = timings.get("compile")
        result["train_ms"] = timings.get("train")
    return result


def display_cmd(cmd: list[str], workdir: Path | None = None) -> str:
    """A command with ROOT shortened and the temporary directory as $WORK."""
    s = " ".join(shlex.quote(c) for c in cmd)
    if workdir is not None:
        s = s.replace(str(workdir), "$WORK")
    s = s.replace(shlex.quote(sys.executable), "python3")
    return s.replace(str(ROOT) + "/", "")


# ==========================================================================
# The parent: reporting


def med(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def fmt_rate(v) -> str:
    if v is None:
        return "—"
    if v >= 1e6:
        return f"{v / 1e6:.2f} M"
    if v >= 1e3:
        return f"{v / 1e3:.1f} k"
    return f"{v:.0f}"


def fmt_ms(v) -> str:
    if v is None:
        return "—"
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    if v >= 100:
        return f"{v:.0f} ms"
    if v >= 10:
        return f"{v:.1f} ms"
    return f"{v:.2f} ms"


def fmt_mb(v) -> str:
    return "—" if v is None else (f"{v:.0f} MB" if v >= 10 else f"{v:.1f} MB")


def paired_ratio(results: dict, task: str, a: str, b: str):
    """Median over the runs of a's rate / b's rate in the same round (the two
    ran seconds apart, so they saw much the same load on a noisy machine)."""
    if a not in results[task] or b not in results[task]:
        return None
    ratios = [ra["samples_per_second"] / rb["samples_per_second"]
              for ra, rb in zip(results[task][a], results[task][b])
              if ra.get("samples_per_second") and rb.get("samples_per_second")]
    return statistics.median(ratios) if ratios else None


def summarise(results: dict, tasks, peers) -> dict:
    """Medians (and ranges) per task and peer."""
    summary = {}
    for task in tasks:
        for peer in peers:
            runs = [r for r in results[task.name][peer] if "error" not in r]
            errors = [r["error"] for r in results[task.name][peer] if "error" in r]

            def col(key, runs=runs):
                return [r.get(key) for r in runs if r.get(key) is not None]

            rates = col("samples_per_second")
            summary[(task.name, peer)] = {
                "runs": len(runs),
                "errors": errors,
                "rate": med(rates),
                "rate_min": min(rates) if rates else None,
                "rate_max": max(rates) if rates else None,
                "wall_ms": med(col("wall_ms")),
                "maxrss_mb": med(col("maxrss_mb")),
                "compile_ms": med(col("compile_ms")),
                "jit_ms": med(col("jit_ms")),
                "final_loss": med(col("final_loss")),
                "final_loss_spread": (max(col("final_loss")) - min(col("final_loss"))) if col("final_loss") else None,
                "version": (col("version") or [None])[0],
                "ratio_nnc_over": {q: paired_ratio(results, task.name, "nnc", q) for q in peers if q != "nnc"},
            }
    return summary


def table(head: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def report(summary: dict, tasks, peers, skipped: dict, meta: dict, markdown: bool) -> str:
    out = []
    cols = [p for p in peers if p not in skipped]
    S = summary  # noqa: N806

    def title(text):
        out.append(("### " if markdown else "== ") + text)
        out.append("")

    if markdown:
        out.append(f"Measured {meta['date']} on {meta['machine_line']}; single thread (pinned to CPU "
                   f"{meta['cpu']}), each figure the median of {meta['runs']} runs taken round-robin "
                   "over peers and tasks.")
        out.append("")
        out.append("```sh")
        out.append(meta["command"])
        out.append("```")
        out.append("")
        out.append(f"Load average (1 min) before / after the measurement: {meta['load']}.")
        out.append("")
    else:
        out.append(f"date: {meta['date']}   machine: {meta['machine_line']}   runs: {meta['runs']} (median)")
        out.append(f"load average (1 min) before / after: {meta['load']}")
        out.append(f"command: {meta['command']}")
        out.append("")

    # Throughput
    title("Training throughput (samples/s, training loop only)")
    head = ["task"] + [PEER_TITLE[p] for p in cols]
    ratio_cols = [("c", "nnc / C loop"), ("jax", "nnc / JAX scan")]
    if "nnc" in cols:
        head += [name for p, name in ratio_cols if p in cols]
    rows = []
    for task in tasks:
        row = [task.name] + [fmt_rate(S[(task.name, p)]["rate"]) for p in cols]
        if "nnc" in cols:
            ratios = S[(task.name, "nnc")]["ratio_nnc_over"]
            row += ["—" if ratios.get(p) is None else f"{ratios[p]:.2f}×" for p, _ in ratio_cols if p in cols]
        rows.append(row)
    out.append(table(head, rows, markdown))
    out.append("")
    if "nnc" in cols:
        out.append("Ratios: the median over the runs of nnc's rate / the peer's rate in the same round.")
        out.append("")
    for p, why in skipped.items():
        out.append(f"{PEER_TITLE[p]}: {why}" + ("  " if markdown else ""))
    if skipped:
        out.append("")

    title("Run-to-run range of the throughput (min – max over the runs)")
    rows = [[task.name] + [
        "—" if S[(task.name, p)]["rate_min"] is None
        else f"{fmt_rate(S[(task.name, p)]['rate_min'])} – {fmt_rate(S[(task.name, p)]['rate_max'])}"
        for p in cols] for task in tasks]
    out.append(table(["task"] + [PEER_TITLE[p] for p in cols], rows, markdown))
    out.append("")

    # Whole process
    ptasks = [t for t in tasks if t.name in PROCESS_TASKS] or list(tasks)
    title("Whole process: start to trained model (wall time) and peak RSS")
    rows = []
    for task in ptasks:
        rows.append([f"{task.name} wall time"] + [fmt_ms(S[(task.name, p)]["wall_ms"]) for p in cols])
    for task in ptasks:
        rows.append([f"{task.name} peak RSS"] + [fmt_mb(S[(task.name, p)]["maxrss_mb"]) for p in cols])
    out.append(table(["task"] + [PEER_TITLE[p] for p in cols], rows, markdown))
    out.append("")

    # Compile
    title("Compile time (median)")
    head, rows = ["task"], []
    if "nnc" in cols:
        head.append("nnc JIT (`timings_ms.compile`)")
    if "jax" in cols:
        head.append("JAX jit (lower + compile of the epoch)")
    for task in tasks:
        row = [task.name]
        if "nnc" in cols:
            row.append(fmt_ms(S[(task.name, "nnc")]["compile_ms"]))
        if "jax" in cols:
            row.append(fmt_ms(S[(task.name, "jax")]["jit_ms"]))
        rows.append(row)
    if len(head) > 1:
        out.append(table(head, rows, markdown))
        out.append("")
    if meta.get("c_compile_ms"):
        out.append(f"(gcc takes {fmt_ms(meta['c_compile_ms'])} per C task, not counted in the C wall times.)")
        out.append("")

    # Losses
    title("Final full-set loss (sanity check: every peer starts from the same weights)")
    rows = []
    for task in tasks:
        losses = [S[(task.name, p)]["final_loss"] for p in cols]
        known = [v for v in losses if v is not None]
        spread = (max(known) - min(known)) / abs(statistics.median(known)) if len(known) > 1 else None
        rows.append([task.name] + ["—" if v is None else f"{v:.9f}" for v in losses]
                    + ["—" if spread is None else f"{spread:.1e}"])
    out.append(table(["task"] + [PEER_TITLE[p] for p in cols] + ["(max − min) / median"], rows, markdown))
    out.append("")
    if not meta["nnc_init"]:
        out.append("nnc used its own initial weights (--nnc-own-init): its losses differ from the others'.")
    if any(t.name == "iris_b1" for t in tasks):
        out.append("iris_b1 is chaotic (per-sample SGD on raw, class-sorted iris, 200 epochs; float32 "
                   "summation order alone moves it): its final losses differ between peers by design.")
    out.append("")

    # Errors and versions
    errs = [(t.name, p, e) for t in tasks for p in cols for e in S[(t.name, p)]["errors"]]
    if errs:
        title("Failed runs")
        for t, p, e in errs:
            out.append(f"- {t} / {PEER_TITLE[p]}: {e}")
        out.append("")
    vers = [S[(tasks[0].name, p)]["version"] for p in cols if S[(tasks[0].name, p)]["version"]]
    out.append("Versions: " + "; ".join([meta["versions"].get("nnc_binary", "")]
                                        + ([f"nnc commit {meta['versions']['nnc_commit']}"]
                                           if meta["versions"].get("nnc_commit") else [])
                                        + [meta["versions"].get("cc", ""), f"python {meta['versions']['python']}"]
                                        + vers) + ".")
    if meta.get("warning"):
        out.append("")
        out.append(f"**Warning: {meta['warning']}.**" if markdown else f"WARNING: {meta['warning']}.")
    return "\n".join(out)


# ==========================================================================


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="runs per task and peer (median reported; default 5)")
    ap.add_argument("--tasks", default=",".join(t.name for t in TASKS), help="comma-separated subset")
    ap.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated subset of {','.join(PEERS)}")
    ap.add_argument("--nnc", help="the nnc binary (default target/release/nnc, built if missing)")
    ap.add_argument("--no-build", action="store_true", help="never run cargo build")
    ap.add_argument("--nnc-own-init", action="store_true",
                    help="do not pass --init-weights to nnc (it then starts from its own seed-0 weights)")
    ap.add_argument("--examples", default=str(ROOT / "examples"), help="folder of the .nn and .csv files")
    ap.add_argument("--cc", default="gcc")
    ap.add_argument("--cflags", default="-O3 -march=native", help="flags for the C loop (default %(default)s)")
    ap.add_argument("--cpu", type=int, default=0, help="pin every run to this CPU (-1: do not pin)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per run")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables (for BENCHMARKS.md)")
    ap.add_argument("--json", action="store_true", help="print every run's results as JSON")
    # Internal: a Python peer in a child process.
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--task", help=argparse.SUPPRESS)
    ap.add_argument("--init", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker_main(args)

    command = "python3 " + " ".join(shlex.quote(a) for a in
                                    [str(Path(sys.argv[0]).resolve().relative_to(ROOT))
                                     if Path(sys.argv[0]).resolve().is_relative_to(ROOT) else sys.argv[0],
                                     *sys.argv[1:]])
    try:
        tasks = [TASK_BY_NAME[n] for n in args.tasks.split(",") if n]
        peers = [p for p in args.peers.split(",") if p]
    except KeyError as e:
        ap.error(f"unknown task {e}")
    for p in peers:
        if p not in PEERS:
            ap.error(f"unknown peer {p!r}")
    if args.runs < 1:
        ap.error("--runs must be at least 1")

    if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {args.cpu})  # inherited by every child
        except OSError as e:
            log(f"could not pin to CPU {args.cpu}: {e}; running unpinned")
            args.cpu = -1

    examples = Path(args.examples).resolve()
    skipped: dict[str, str] = {}
    ctx: dict = {"examples": examples, "nnc_init": not args.nnc_own_init}
    ctx["data"] = {t.name: csv_path(t, examples) for t in tasks}

    if "nnc" in peers:
        ctx["nnc"] = find_nnc(args.nnc, not args.no_build)
        help_text = subprocess.run([str(ctx["nnc"]), "run", "--help"], capture_output=True, text=True).stdout
        if ctx["nnc_init"] and "--init-weights" not in help_text:
            log("this nnc has no --init-weights: it starts from its own weights (losses will differ)")
            ctx["nnc_init"] = False
    else:
        ctx["nnc"] = ROOT / "target" / "release" / "nnc"

    if "jax" in peers:
        ok, why = probe_module("jax")
        if not ok:
            skipped["jax"] = f"not installed ({why}); pip install \"jax[cpu]\""
    if "torch" in peers:
        ok, why = probe_module("torch")
        if not ok:
            skipped["torch"] = "not installed (see PEERS.md)"
    for p, why in skipped.items():
        log(f"{PEER_TITLE[p]}: skipped, {why}")

    nnc_mtime = Path(ctx["nnc"]).stat().st_mtime if Path(ctx["nnc"]).exists() else None
    load_before = os.getloadavg()[0]
    timer_cmd = gnu_time()
    if timer_cmd is None:
        log(f"no GNU time at {GNU_TIME}: peak RSS not measured (apt-get install time)")

    workdir = Path(tempfile.mkdtemp(prefix="nnc-speed-"))
    try:
        ctx["inits"] = write_inits(tasks, workdir)
        ctx["c_exe"], c_cmds = {}, {}
        c_ms = []
        if "c" in peers:
            cflags = shlex.split(args.cflags)
            for task in tasks:
                t0 = time.perf_counter()
                ctx["c_exe"][task.name], c_cmds[task.name] = compile_c(task, workdir, args.cc, cflags)
                c_ms.append((time.perf_counter() - t0) * 1e3)
        active = [p for p in PEERS if p in peers and p not in skipped]
        results = {t.name: {p: [] for p in active} for t in tasks}
        commands = {t.name: {p: display_cmd(peer_command(p, t, ctx), workdir) for p in active} for t in tasks}
        for name, cmd in c_cmds.items():
            commands[name]["c (build)"] = display_cmd(cmd, workdir)

        for r in range(args.runs):
            for task in tasks:
                # Rotate the peers' order each run, so no peer always follows another.
                order = active[r % len(active):] + active[:r % len(active)] if active else []
                for peer in order:
                    res = normalise(peer, run_child(peer_command(peer, task, ctx), args.timeout, timer_cmd))
                    results[task.name][peer].append(res)
                    msg = res.get("error") or (f"{fmt_rate(res.get('samples_per_second'))} samples/s, "
                                               f"wall {fmt_ms(res.get('wall_ms'))}, "
                                               f"loss {res.get('final_loss', float('nan')):.6f}")
                    log(f"run {r + 1}/{args.runs} {task.name:11s} {PEER_TITLE[peer]:13s} {msg}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    info = machine_info()
    cores = info.get("cores_per_socket", 0) * info.get("sockets", 1) or info.get("cpus")
    machine_line = (f"{info['model']}, {info['cpus']} CPUs ({cores} cores"
                    + (f", {info['isa']}" if info.get("isa") else "")
                    + (f", {info['hypervisor']} VM" if info.get("hypervisor") else "") + ")")
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": info,
        "machine_line": machine_line,
        "runs": args.runs,
        "cpu": args.cpu if args.cpu >= 0 else "none",
        "command": command,
        "nnc_init": ctx["nnc_init"],
        "versions": versions(args.cc, Path(ctx["nnc"])) if Path(ctx["nnc"]).exists() else {"python": sys.version.split()[0]},
        "c_compile_ms": med(c_ms),
        "load": f"{load_before:.2f} / {os.getloadavg()[0]:.2f}",
        "skipped": skipped,
        "commands": commands,
    }
    if nnc_mtime is not None and Path(ctx["nnc"]).stat().st_mtime != nnc_mtime:
        meta["warning"] = f"{ctx['nnc']} was rebuilt during the measurement: rerun for one build's figures"
        log("warning: " + meta["warning"])
    summary = summarise(results, tasks, active)
    if args.json:
        print(json.dumps({"meta": meta, "results": results,
                          "summary": {f"{t}/{p}": v for (t, p), v in summary.items()}}, indent=1, default=str))
    else:
        print(report(summary, tasks, [p for p in PEERS if p in peers], skipped, meta, args.markdown))
        print()
        if args.markdown:
            print("Per-run commands (the temporary init files are written by the script):")
            print()
            print("```sh")
        else:
            print("commands:")
        for t in tasks:
            for p, cmd in commands[t.name].items():
                print(f"# {t.name} / {p}\n{cmd}" if args.markdown else f"  {t.name:11s} {p:9s} {cmd}")
        if args.markdown:
            print("```")
    failed = any(r.get("error") for t in results.values() for runs in t.values() for r in runs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
