#!/usr/bin/env python3
"""peers/activations.py — PyTorch's value and derivative of every activation.

Writes tests/data/activations.json: for each built-in activation of nnc (the
names of `Kind::Activation` in src/check/builtins.rs, softmax aside: it is not
elementwise), its value and derivative at fixed points, computed by PyTorch
in float64 (torch.nn.functional with nnc's defaults: leaky_relu's slope 0.01,
elu's alpha 1, gelu's tanh form) and its autograd. nnc is not run:
tests/activations.rs evaluates nnc's spelling of each activation and its
symbolic derivative on the reference interpreter at the same points and
compares, and fails for an activation of the table missing here.

Usage: python3 peers/activations.py [--out tests/data/activations.json] [--check]
(--check: compare with the existing file instead of writing it; exit 1 if
they differ by more than 1e-12).
"""

import argparse
import json
import sys

import torch
import torch.nn.functional as F

# Points where each form is exercised: both sides of 0 (not 0, where
# relu, leaky_relu and elu have a kink and conventions differ), the
# tails where a naive formula overflows, and values exact in binary.
POINTS = [-30.0, -8.0, -3.5, -1.25, -0.5, -0.0625, 0.0625, 0.5, 1.0, 2.75, 6.0, 30.0]

ACTIVATIONS = {
    "identity": lambda z: z,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": F.relu,
    "leaky_relu": lambda z: F.leaky_relu(z, 0.01),
    "elu": lambda z: F.elu(z, 1.0),
    "softplus": lambda z: F.softplus(z, beta=1.0, threshold=1e9),
    "gelu": lambda z: F.gelu(z, approximate="tanh"),
    "silu": F.silu,
    "swish": F.silu,
    "softsign": F.softsign,
    "mish": F.mish,
}


def reference():
    out = {"points": POINTS, "activations": {}}
    for name, f in ACTIVATIONS.items():
        values, derivatives = [], []
        for x in POINTS:
            z = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            y = f(z)
            (dy,) = torch.autograd.grad(y, z)
            values.append(y.item())
            derivatives.append(dy.item())
        out["activations"][name] = {"value": values, "derivative": derivatives}
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="tests/data/activations.json")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    data = reference()
    if args.check:
        with open(args.out) as f:
            old = json.load(f)
        worst = 0.0
        for name, new in data["activations"].items():
            for key in ("value", "derivative"):
                for a, b in zip(new[key], old["activations"][name][key]):
                    worst = max(worst, abs(a - b))
        print(f"largest difference: {worst:.3g}")
        sys.exit(1 if worst > 1e-12 or old["points"] != data["points"] else 0)
    with open(args.out, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}: {len(data['activations'])} activations at {len(POINTS)} points")


if __name__ == "__main__":
    main()
