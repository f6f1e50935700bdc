#!/usr/bin/env python3
"""peers/eval_report.py — what scikit-learn reports for saved weights.

Writes tests/data/eval_reference.json: for each case, the figures
`nnc eval MODEL DATA --weights FILE --json` must print. The weights files
(tests/data/eval/*.safetensors) were saved once by `nnc run --save-weights`
after a few epochs (so the models make mistakes); this script reads them
with safetensors, applies the preprocessing saved in their metadata, runs
the forward pass in numpy (float32, like nnc), and lets scikit-learn
compute the figures: `confusion_matrix` and `classification_report`
(`output_dict=True`, `zero_division=0`) for classification,
`multilabel_confusion_matrix` and `accuracy_score` (exact match) for
several yes/no labels, `mean_squared_error`, `mean_absolute_error` and
`r2_score` per column for regression. Nothing here comes from nnc's own
metrics code.

Usage: python3 peers/eval_report.py [--out tests/data/eval_reference.json]
"""

import argparse
import csv
import json

import numpy as np
from safetensors import safe_open
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    mean_absolute_error,
    mean_squared_error,
    multilabel_confusion_matrix,
    r2_score,
)

# name, model, data, input columns, target column(s), hidden and output
# activations, task; each model is dense(x, H, hidden) -> dense(h, K, out).
CASES = [
    ("iris", "examples/iris.nn", "examples/iris.csv", None, "species", "tanh", "softmax", "classes"),
    ("digits", "examples/digits.nn", "examples/digits.csv", None, "digit", "relu", "softmax", "classes"),
    ("binary", "examples/binary.nn", "examples/iris.csv", None, "species", "tanh", "sigmoid", "binary"),
    ("multilabel", "examples/multilabel.nn", "examples/iris.csv", None, "species", "tanh", "sigmoid", "multilabel"),
    ("diabetes", "examples/diabetes.nn", "examples/diabetes.csv", None, ["progression"], "tanh", "identity",
     "regression"),
    ("linnerud", "examples/linnerud.nn", "examples/linnerud.csv", ["chins", "situps", "jumps"],
     ["weight", "waist", "pulse"], "tanh", "identity", "regression"),
]


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    return header, np.array([[float(v) for v in row] for row in body])


def activation(name, z):
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0)
    if name == "identity":
        return z
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise ValueError(name)


def transform(entry, values, invert=False):
    scale = entry["scale"]
    mean, std = np.array(entry["mean"]), np.array(entry["std"])
    if invert:
        return (values * std + mean if len(mean) else values) / scale
    scaled = values * scale
    return (scaled - mean) / std if len(mean) else scaled


def case(name, model, data, inputs, target, hidden, out, task):
    weights = f"tests/data/eval/{name}.safetensors"
    with safe_open(weights, "np") as f:
        meta = json.loads(f.metadata()["nnc.preprocessing"])
        w = {k: f.get_tensor(k).astype(np.float32) for k in f.keys()}
    header, table = read_csv(data)
    targets = [target] if isinstance(target, str) else target
    input_cols = inputs or [c for c in header if c not in targets]
    x = table[:, [header.index(c) for c in input_cols]]
    x = transform(meta[0], x).astype(np.float32)
    h = activation(hidden, x @ w["h.w"] + w["h.b"])
    p = activation(out, h @ w["out.w"] + w["out.b"])
    y = table[:, [header.index(c) for c in targets]]
    result = {"model": model, "data": data, "weights": weights, "rows": len(table)}
    if task == "classes":
        truth, predicted = y[:, 0].astype(int), p.argmax(axis=1)
        labels = list(range(p.shape[1]))
        result["confusion"] = confusion_matrix(truth, predicted, labels=labels).tolist()
        result["report"] = classification_report(
            truth, predicted, labels=labels, target_names=[str(c) for c in labels], output_dict=True,
            zero_division=0)
        result["accuracy"] = accuracy_score(truth, predicted)
        result["report_text"] = classification_report(
            truth, predicted, labels=labels, target_names=[str(c) for c in labels], zero_division=0)
    elif task == "binary":
        truth, predicted = (y[:, 0] == 1).astype(int), (p[:, 0] >= 0.5).astype(int)
        result["confusion"] = confusion_matrix(truth, predicted, labels=[0, 1]).tolist()
        result["report"] = classification_report(
            truth, predicted, labels=[0, 1], target_names=["0", "1"], output_dict=True, zero_division=0)
        result["accuracy"] = accuracy_score(truth, predicted)
        result["report_text"] = classification_report(
            truth, predicted, labels=[0, 1], target_names=["0", "1"], zero_division=0)
    elif task == "multilabel":
        species = y[:, 0]
        truth = np.stack([species >= 1, species == 2], axis=1).astype(int)
        predicted = (p >= 0.5).astype(int)
        result["confusion"] = multilabel_confusion_matrix(truth, predicted).tolist()
        result["report"] = classification_report(
            truth, predicted, target_names=["0", "1"], output_dict=True, zero_division=0)
        result["exact_match"] = accuracy_score(truth, predicted)
        result["report_text"] = classification_report(truth, predicted, target_names=["0", "1"], zero_division=0)
        result["label_accuracy"] = [accuracy_score(truth[:, i], predicted[:, i]) for i in range(2)]
        result["accuracy"] = float((truth == predicted).mean())
    else:
        truth = y
        predicted = transform(meta[1], p.astype(np.float64), invert=True)
        result["targets"] = [
            {
                "name": c,
                "mse": mean_squared_error(truth[:, i], predicted[:, i]),
                "rmse": float(np.sqrt(mean_squared_error(truth[:, i], predicted[:, i]))),
                "mae": mean_absolute_error(truth[:, i], predicted[:, i]),
                "r2": r2_score(truth[:, i], predicted[:, i]),
            }
            for i, c in enumerate(targets)
        ]
    return name, result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="tests/data/eval_reference.json")
    args = parser.parse_args()
    cases = dict(case(*c) for c in CASES)
    with open(args.out, "w") as f:
        json.dump(cases, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
