#!/usr/bin/env python3
"""peers/class_weights.py — reference numbers for nnc's weighted losses.

Writes tests/data/class_weights/: for each case a CSV, the model (.nn), the
initial weights (safetensors, float32) and, in cases.json, what PyTorch's
definitions give, written out in numpy float64:

- cross_entropy(out, y, weights = w) is torch.nn.CrossEntropyLoss(weight=w):
  per batch, sum_i w[y_i] * nll_i / sum_i w[y_i] (a weighted mean);
- `weights = balanced` is sklearn's compute_class_weight('balanced'):
  n_rows / (K * count_c), counted on the training rows only;
- binary_cross_entropy(out, y, pos_weight = p) is
  torch.nn.BCEWithLogitsLoss(pos_weight=p): the mean over every element of
  -(p * y * log sigmoid(z) + (1 - y) * log(1 - sigmoid(z))), p one per
  label (a scalar broadcasts).

For each case: the class weights used, the full-set loss at the initial
weights, every epoch's loss as nnc reports it (the row-weighted mean of the
epoch's batch losses), the parameters after training with plain SGD
(mini-batches in file order, the last partial batch kept) and the full-set
loss at those parameters. The gradients are the formulas' derivatives
written out by hand (tanh hidden layer, then softmax or sigmoid); nnc is
not run. tests/class_weights.rs trains nnc from the same initial weights
and compares.

If `import torch` works (optional), every loss and gradient is checked
against torch.nn.CrossEntropyLoss / BCEWithLogitsLoss and autograd in
float64 to 1e-12.

Usage: python3 peers/class_weights.py [--out tests/data/class_weights]
"""

import argparse
import json
import os

import numpy as np
from safetensors.numpy import save_file

F32 = np.float32


def softplus(z):
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def forward(params, x):
    h = np.tanh(x @ params["h.w"] + params["h.b"])
    z = h @ params["out.w"] + params["out.b"]
    return h, z


def ce_loss_grad(z, labels, class_weights):
    """CrossEntropyLoss(weight=w) of logits z and class indices; dloss/dz."""
    m = z.max(axis=1, keepdims=True)
    log_p = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    rows = np.arange(len(labels))
    w = class_weights[labels]
    loss = -(w * log_p[rows, labels]).sum() / w.sum()
    one_hot = np.zeros_like(z)
    one_hot[rows, labels] = 1
    grad = w[:, None] * (np.exp(log_p) - one_hot) / w.sum()
    return loss, grad


def bce_loss_grad(z, y, pos_weight):
    """BCEWithLogitsLoss(pos_weight=p) of logits z and 0/1 targets y; dloss/dz."""
    n = z.size
    loss = (pos_weight * y * softplus(-z) + (1 - y) * softplus(z)).sum() / n
    grad = (sigmoid(z) * (pos_weight * y + 1 - y) - pos_weight * y) / n
    return loss, grad


def loss_grad(case, params, x, target):
    h, z = forward(params, x)
    if case["loss"] == "ce":
        loss, dz = ce_loss_grad(z, target, case["class_weights"])
    else:
        loss, dz = bce_loss_grad(z, target, case["pos_weight"])
    dh = dz @ params["out.w"].T
    dpre = dh * (1 - h * h)
    grads = {
        "out.w": h.T @ dz,
        "out.b": dz.sum(axis=0),
        "h.w": x.T @ dpre,
        "h.b": dpre.sum(axis=0),
    }
    return loss, grads


def torch_check(case, params, x, target):
    try:
        import torch
    except ImportError:
        return False
    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    tx = torch.tensor(x, dtype=torch.float64)
    z = torch.tanh(tx @ tp["h.w"] + tp["h.b"]) @ tp["out.w"] + tp["out.b"]
    if case["loss"] == "ce":
        fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(case["class_weights"], dtype=torch.float64))
        loss = fn(z, torch.tensor(target, dtype=torch.long))
    else:
        pw = torch.tensor(np.broadcast_to(case["pos_weight"], (z.shape[1],)).copy(), dtype=torch.float64)
        loss = torch.nn.BCEWithLogitsLoss(pos_weight=pw)(z, torch.tensor(target, dtype=torch.float64))
    loss.backward()
    ours, grads = loss_grad(case, params, x, target)
    assert abs(loss.item() - ours) <= 1e-12 * max(1, abs(ours)), (case["name"], loss.item(), ours)
    for k in params:
        assert np.allclose(tp[k].grad.numpy(), grads[k], rtol=1e-10, atol=1e-12), (case["name"], k)
    return True


def train(case, params, x, target, lr, batch, epochs):
    params = {k: v.copy() for k, v in params.items()}
    rows = len(x)
    history = []
    for _ in range(epochs):
        total = 0.0
        for start in range(0, rows, batch):
            stop = min(start + batch, rows)
            loss, grads = loss_grad(case, params, x[start:stop], target[start:stop])
            total += loss * (stop - start)
            for k in params:
                params[k] = params[k] - lr * grads[k]
        history.append(total / rows)
    return params, history


def make_data(rng, counts, width=4):
    """Rows of multiples of 1/16 (exact in float32), classes interleaved."""
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    labels = labels[rng.permutation(len(labels))]
    centres = rng.normal(size=(len(counts), width))
    x = centres[labels] + rng.normal(scale=0.8, size=(len(labels), width))
    return np.round(x * 16) / 16, labels


def initial(rng, inputs, hidden, outputs):
    def f32(a):
        return a.astype(F32).astype(np.float64)

    return {
        "h.w": f32(rng.uniform(-0.6, 0.6, size=(inputs, hidden))),
        "h.b": f32(rng.uniform(-0.1, 0.1, size=hidden)),
        "out.w": f32(rng.uniform(-0.6, 0.6, size=(hidden, outputs))),
        "out.b": f32(rng.uniform(-0.1, 0.1, size=outputs)),
    }


MODEL = """# {name}: written by peers/class_weights.py
data {{ {data} }}
model {{
  h   = dense(x, 5, tanh)
  out = dense(h, {outputs}, {activation})
}}
loss {loss}
train {{
  optimizer = sgd(lr = {lr})
  epochs = {epochs}
  batch = {batch}
{extra}}}
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "class_weights"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(11)
    lr, batch, epochs = 0.2, 8, 4
    cases = []

    # Three classes, 30 / 9 / 5 rows.
    x3, y3 = make_data(rng, [30, 9, 5])
    names3 = ["common", "rare", "scarce"]
    # Yes/no, 36 no and 8 yes; two labels for the multi-label case.
    x2, y2 = make_data(rng, [36, 8])
    yb = np.stack([y2, (x2[:, 0] > 0.8).astype(int)], axis=1)

    specs = [
        dict(name="explicit", loss="ce", x=x3, y=y3, weights=np.array([1.0, 2.5, 0.5]),
             text="cross_entropy(out, y, weights = [1, 2.5, 0.5])", labels="index"),
        dict(name="balanced", loss="ce", x=x3, y=y3, weights="balanced",
             text="cross_entropy(out, y, weights = balanced)", labels="names"),
        # The last quarter of the rows is held out: `balanced` counts the rest.
        dict(name="balanced_split", loss="ce", x=x3, y=y3, weights="balanced",
             text="cross_entropy(out, y, weights = balanced)", labels="names", held=11),
        dict(name="pos_weight", loss="bce", x=x2, y=y2[:, None].astype(float), pos_weight=np.array([4.5]),
             text="binary_cross_entropy(out, y, pos_weight = 4.5)"),
        dict(name="pos_weight_list", loss="bce", x=x2, y=yb.astype(float), pos_weight=np.array([4.5, 0.75]),
             text="binary_cross_entropy(out, y, pos_weight = [4.5, 0.75])"),
    ]
    checked_torch = False
    for spec in specs:
        name, x, y = spec["name"], spec["x"], spec["y"]
        held = spec.get("held", 0)
        train_rows = len(x) - held
        case = {"name": name, "loss": spec["loss"]}
        header = ["x0", "x1", "x2", "x3"]
        if spec["loss"] == "ce":
            k = 3
            if isinstance(spec["weights"], str):
                counts = np.bincount(y[:train_rows], minlength=k)
                weights = train_rows / (k * counts)
            else:
                weights = spec["weights"]
            case["class_weights"] = weights
            target = y
            if spec["labels"] == "names":
                data = "input x[4]  target y = column(label)"
                cells = [names3[c] for c in y]
                case["class_names"] = names3
            else:
                data = "input x[4]  target y = one_hot(3)"
                cells = [str(c) for c in y]
            header.append("label")
            rows = [list(map(repr, r)) + [c] for r, c in zip(x.tolist(), cells)]
            outputs, activation = 3, "softmax"
        else:
            width = y.shape[1]
            case["pos_weight"] = spec["pos_weight"]
            target = y
            data = f"input x[4]  target y[{width}]"
            header.extend(["yes"] if width == 1 else ["a", "b"])
            rows = [list(map(repr, r)) + [str(int(v)) for v in t] for r, t in zip(x.tolist(), y)]
            outputs, activation = width, "sigmoid"
        extra = "  validation = last(0.25)\n" if held else ""
        source = MODEL.format(name=name, data=data, outputs=outputs, activation=activation, loss=spec["text"],
                              lr=lr, epochs=epochs, batch=batch, extra=extra)
        params = initial(rng, 4, 5, outputs)
        xt, tt = x[:train_rows], target[:train_rows]
        checked_torch |= torch_check(case, params, xt, tt)
        initial_loss, _ = loss_grad(case, params, xt, tt)
        final, history = train(case, params, xt, tt, lr, batch, epochs)
        final_loss, _ = loss_grad(case, final, xt, tt)
        with open(os.path.join(args.out, f"{name}.csv"), "w") as f:
            f.write(",".join(header) + "\n")
            for r in rows:
                f.write(",".join(r) + "\n")
        with open(os.path.join(args.out, f"{name}.nn"), "w") as f:
            f.write(source)
        save_file({k: v.astype(F32) for k, v in params.items()}, os.path.join(args.out, f"{name}.init.safetensors"))
        entry = {
            "name": name,
            "rows": len(x),
            "train_rows": train_rows,
            "initial_loss": initial_loss,
            "history": history,
            "final_loss": final_loss,
            "final": {k: v.ravel().tolist() for k, v in final.items()},
        }
        if held:
            entry["validation_loss"] = loss_grad(case, final, x[train_rows:], target[train_rows:])[0]
            # What `nnc eval` reports on the whole file with the saved weights.
            entry["all_rows_loss"] = loss_grad(case, final, x, target)[0]
        if spec["loss"] == "ce":
            entry["class_weights"] = list(map(float, case["class_weights"]))
            if "class_names" in case:
                entry["class_names"] = case["class_names"]
        else:
            entry["pos_weight"] = list(map(float, case["pos_weight"]))
        cases.append(entry)
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump({"lr": lr, "batch": batch, "epochs": epochs, "torch_checked": checked_torch, "cases": cases},
                  f, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {args.out} (torch cross-check: {'yes' if checked_torch else 'skipped'})")


if __name__ == "__main__":
    main()
