#!/usr/bin/env python3
"""peers/optimizers.py — expected parameter trajectories of nnc's optimizers.

Writes tests/data/optimizers.json: for each optimizer case (sgd, momentum,
nesterov, adam, adamw, and the learning-rate schedules), the parameters after
every step of a fixed sequence of gradients, computed here with PyTorch's
documented update rules written out in numpy float64 (the single-tensor code
paths of torch.optim.SGD, Adam and AdamW, and the closed forms of StepLR,
ExponentialLR and CosineAnnealingLR, with `scheduler.step()` after every
`optimizer.step()`). nnc is not run: tests/optimizers.rs reproduces the same
sequence with nnc's kernels and compares them to these numbers.

If `import torch` works (it is optional and not needed), the same sequence is
also run through torch.optim in float64 and must agree to 1e-12.

The gradients come from a model whose gradient is its data:

    data  { input x[3]  target t[5] }
    param s = 0.5
    model { h = dense(x, 5, identity) }          # h = x·h.w + h.b
    loss sum(h * t) + s * sum(x)

With one row per step, d loss/d h.w = outer(x, t), d loss/d h.b = t and
d loss/d s = sum(x): every step's gradient is fixed by its data row, whatever
the parameters are. The rows (multiples of 1/16, some zeros) make these
gradients exact in float32. The rows are used twice (two epochs), so the
sequence has 2·ROWS steps.

Usage: python3 peers/optimizers.py [--out tests/data/optimizers.json] [--check]
(--check: compare with the existing file instead of writing it; exit 1 if
they differ by more than 1e-12.)
"""

import argparse
import json
import math
import os
import re
import sys

import numpy as np

ROWS = 8
EPOCHS = 2

# Data rows: x [ROWS, 3], t [ROWS, 5]; multiples of 1/16, with zeros so that
# some gradient entries are 0 (Adam's v = 0 case) at some steps.
X = np.array(
    [
        [0.5, -1.25, 2.0],
        [1.0, 0.0, -0.5],
        [-0.75, 0.25, 1.5],
        [0.0, 0.0, 0.0],
        [2.5, -0.5, 0.125],
        [-1.0, 1.0, -1.0],
        [0.25, 0.75, 0.0],
        [1.5, -2.0, 0.5],
    ]
)
T = np.array(
    [
        [1.0, -0.5, 0.25, 0.0, 2.0],
        [-0.25, 1.5, 0.0, 0.0, -1.0],
        [0.5, 0.5, -1.5, 0.0, 0.75],
        [1.25, -1.0, 0.5, 0.0, 0.0],
        [-2.0, 0.25, 1.0, 0.0, -0.5],
        [0.0, 0.0, 0.0, 0.0, 1.0],
        [0.75, -0.75, 2.0, 0.0, 0.25],
        [-0.5, 1.0, -0.25, 0.0, -1.5],
    ]
)
# Initial parameters (nnc's names): h.w [3,5], h.b [5] (stored [1,5]), s scalar.
INIT = {
    "h.w": np.array(
        [
            [0.5, -0.25, 0.125, 1.0, -0.75],
            [0.0, 0.625, -0.5, 0.25, 0.375],
            [-1.0, 0.75, 0.25, -0.125, 0.5],
        ]
    ),
    "h.b": np.array([[0.1, -0.2, 0.3, 0.0, -0.4]]),
    "s": np.array([[0.5]]),
}
NAMES = ["h.w", "h.b", "s"]

# (case name, nnc optimizer, nnc schedule, torch optimizer, kwargs, torch scheduler)
CASES = [
    ("sgd", "sgd(lr = 0.1)", "constant", "SGD", {"lr": 0.1}, None),
    ("momentum", "sgd(lr = 0.05, momentum = 0.9)", "constant", "SGD", {"lr": 0.05, "momentum": 0.9}, None),
    (
        "nesterov",
        "sgd(lr = 0.05, momentum = 0.8, nesterov = true, weight_decay = 0.01)",
        "constant",
        "SGD",
        {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01},
        None,
    ),
    ("adam", "adam(lr = 0.1)", "constant", "Adam", {"lr": 0.1}, None),
    (
        "adam_options",
        "adam(lr = 0.05, beta1 = 0.8, beta2 = 0.99, eps = 1e-3, weight_decay = 0.1)",
        "constant",
        "Adam",
        {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-3, "weight_decay": 0.1},
        None,
    ),
    ("adamw", "adamw(lr = 0.1, weight_decay = 0.1)", "constant", "AdamW", {"lr": 0.1, "weight_decay": 0.1}, None),
    ("adamw_default", "adamw()", "constant", "AdamW", {"lr": 0.001}, None),
    (
        "step_schedule",
        "sgd(lr = 0.1, momentum = 0.9)",
        "step(every = 3, gamma = 0.5)",
        "SGD",
        {"lr": 0.1, "momentum": 0.9},
        ("StepLR", {"step_size": 3, "gamma": 0.5}),
    ),
    (
        "exponential_schedule",
        "sgd(lr = 0.1)",
        "exponential(gamma = 0.9)",
        "SGD",
        {"lr": 0.1},
        ("ExponentialLR", {"gamma": 0.9}),
    ),
    (
        "cosine_schedule",
        "adam(lr = 0.1)",
        "cosine(steps = 10, min_lr = 0.01)",
        "Adam",
        {"lr": 0.1},
        ("CosineAnnealingLR", {"T_max": 10, "eta_min": 0.01}),
    ),
]


def gradients(x, t):
    """d loss/d param for one data row: exact, independent of the parameters."""
    return {"h.w": np.outer(x, t), "h.b": t.reshape(1, -1), "s": np.array([[x.sum()]])}


def scheduled_lr(base, scheduler, k):
    """The rate after k scheduler steps (closed forms of torch.optim.lr_scheduler)."""
    if scheduler is None:
        return base
    kind, kw = scheduler
    if kind == "StepLR":
        return base * kw["gamma"] ** (k // kw["step_size"])
    if kind == "ExponentialLR":
        return base * kw["gamma"] ** k
    if kind == "CosineAnnealingLR":
        eta_min = kw.get("eta_min", 0.0)
        return eta_min + (base - eta_min) * (1 + math.cos(math.pi * k / kw["T_max"])) / 2
    raise ValueError(kind)


def sgd_step(p, g, state, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    """torch.optim.SGD, _single_tensor_sgd (dampening 0, maximize False)."""
    if weight_decay != 0:
        g = g + weight_decay * p
    if momentum != 0:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = g.copy()
        else:
            buf = momentum * buf + g
        state["momentum_buffer"] = buf
        g = g + momentum * buf if nesterov else buf
    return p - lr * g


def adam_step(p, g, state, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    """torch.optim.Adam / AdamW, _single_tensor_adam (not amsgrad, not capturable)."""
    beta1, beta2 = betas
    state["step"] = state.get("step", 0) + 1
    step = state["step"]
    if decoupled:
        p = p * (1 - lr * weight_decay)
    elif weight_decay != 0:
        g = g + weight_decay * p
    m = state.get("exp_avg", np.zeros_like(p))
    v = state.get("exp_avg_sq", np.zeros_like(p))
    m = m + (g - m) * (1 - beta1)  # exp_avg.lerp_(grad, 1 - beta1)
    v = v * beta2 + (1 - beta2) * g * g  # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    state["exp_avg"], state["exp_avg_sq"] = m, v
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1
    denom = np.sqrt(v) / math.sqrt(bias_correction2) + eps
    return p - step_size * m / denom


def run_numpy(optimizer, kwargs, scheduler):
    params = {n: INIT[n].copy() for n in NAMES}
    states = {n: {} for n in NAMES}
    base = kwargs["lr"]
    trajectory = []
    k = 0
    for _ in range(EPOCHS):
        for r in range(ROWS):
            lr = scheduled_lr(base, scheduler, k)
            grads = gradients(X[r], T[r])
            for n in NAMES:
                if optimizer == "SGD":
                    rest = {a: kwargs[a] for a in ("momentum", "nesterov", "weight_decay") if a in kwargs}
                    params[n] = sgd_step(params[n], grads[n], states[n], lr, **rest)
                else:
                    rest = {a: kwargs[a] for a in ("betas", "eps", "weight_decay") if a in kwargs}
                    if optimizer == "AdamW":
                        rest.setdefault("weight_decay", 0.01)
                    params[n] = adam_step(params[n], grads[n], states[n], lr, decoupled=optimizer == "AdamW", **rest)
            k += 1
            trajectory.append({n: params[n].copy() for n in NAMES})
    return trajectory, states


def run_torch(optimizer, kwargs, scheduler):
    """The same with torch.optim in float64, if torch is installed."""
    import torch

    params = {n: torch.tensor(INIT[n], dtype=torch.float64, requires_grad=True) for n in NAMES}
    opt = getattr(torch.optim, optimizer)([params[n] for n in NAMES], **kwargs)
    sched = getattr(torch.optim.lr_scheduler, scheduler[0])(opt, **scheduler[1]) if scheduler else None
    trajectory = []
    for _ in range(EPOCHS):
        for r in range(ROWS):
            opt.zero_grad()
            grads = gradients(X[r], T[r])
            for n in NAMES:
                params[n].grad = torch.tensor(grads[n], dtype=torch.float64)
            opt.step()
            if sched:
                sched.step()
            trajectory.append({n: params[n].detach().numpy().copy() for n in NAMES})
    return trajectory


def as_list(a):
    return [float(v) for v in np.asarray(a).reshape(-1)]


# nnc's state tensor names for torch's state entries.
STATE_NAMES = {"momentum_buffer": "momentum", "exp_avg": "adam_m", "exp_avg_sq": "adam_v"}


def build():
    cases = []
    for name, nnc_opt, nnc_sched, optimizer, kwargs, scheduler in CASES:
        trajectory, states = run_numpy(optimizer, kwargs, scheduler)
        try:
            import torch  # noqa: F401

            has_torch = True
        except ImportError:
            has_torch = False
        if has_torch:
            other = run_torch(optimizer, kwargs, scheduler)
            for step, (a, b) in enumerate(zip(trajectory, other)):
                for n in NAMES:
                    if not np.allclose(a[n], b[n], rtol=1e-12, atol=1e-12):
                        sys.exit(f"{name}: numpy and torch differ at step {step + 1} in {n}")
        state = {}
        for n in NAMES:
            for key, kind in STATE_NAMES.items():
                if key in states[n]:
                    state[f"{n}.{kind}"] = as_list(states[n][key])
        base = kwargs["lr"]
        cases.append(
            {
                "name": name,
                "optimizer": nnc_opt,
                "schedule": nnc_sched,
                "torch": f"torch.optim.{optimizer}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
                + (f" with {scheduler[0]}({scheduler[1]})" if scheduler else ""),
                "learning_rates": [scheduled_lr(base, scheduler, k) for k in range(EPOCHS * ROWS)],
                "trajectory": [{n: as_list(p[n]) for n in NAMES} for p in trajectory],
                "final_state": state,
            }
        )
    return {
        "generated_by": "peers/optimizers.py",
        "torch_checked": has_torch,
        "model": "data { input x[3]  target t[5] }  param s = 0.5  model { h = dense(x, 5, identity) }"
        "  loss sum(h * t) + s * sum(x)",
        "rows": ROWS,
        "epochs": EPOCHS,
        "x": [as_list(r) for r in X],
        "t": [as_list(r) for r in T],
        "init": {n: as_list(INIT[n]) for n in NAMES},
        "cases": cases,
    }


def max_difference(a, b):
    if isinstance(a, dict):
        return max((max_difference(a[k], b[k]) for k in a), default=0.0) if a.keys() == b.keys() else math.inf
    if isinstance(a, list):
        return max((max_difference(x, y) for x, y in zip(a, b)), default=0.0) if len(a) == len(b) else math.inf
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b)
    return 0.0 if a == b else math.inf


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "optimizers.json"))
    parser.add_argument("--check", action="store_true", help="compare with the existing file instead of writing")
    args = parser.parse_args()
    data = build()
    if args.check:
        with open(args.out) as f:
            existing = json.load(f)
        existing.pop("torch_checked", None)
        fresh = dict(data)
        fresh.pop("torch_checked", None)
        diff = max_difference(fresh, existing)
        print(f"largest difference from {args.out}: {diff:.3g}")
        sys.exit(0 if diff <= 1e-12 else 1)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    text = json.dumps(data, indent=1)
    # Lists of numbers on one line each.
    text = re.sub(r"\[\s+([-+0-9.eE,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    with open(args.out, "w") as f:
        f.write(text + "\n")
    print(f"wrote {args.out}: {len(data['cases'])} cases of {EPOCHS * ROWS} steps (torch checked: {data['torch_checked']})")


if __name__ == "__main__":
    main()
