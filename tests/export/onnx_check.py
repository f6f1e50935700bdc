"""Check an ONNX file exported by nnc against `nnc predict`.

    python3 onnx_check.py MODEL.onnx DATA.csv PREDICTIONS.csv [MODEL DATA PREDICTIONS ...]

1. `onnx.checker.check_model(full_check=True)` accepts the file;
2. onnxruntime runs it on the rows of DATA.csv, each graph input fed the
   columns the model's `nnc.columns` metadata names (in the CSV's units:
   the preprocessing is inside the graph; a string input gets the cells'
   text, a float input NaN for a missing cell);
3. its outputs equal PREDICTIONS.csv (written by `nnc predict --out`):
   the class index (and the class name, when the graph outputs `label`)
   exactly, and every float within 1e-6 relative to the
   magnitude of its row or its column, whichever is larger: a probability
   of 1e-9 beside one of 0.99, or a regression output near 0 where others
   are near 1, is measured against the output's scale, which is what f32
   arithmetic can promise (an output that is a small difference of large
   terms loses its relative precision in any float engine).

Prints one line per model with the largest differences; exits 1 if any
model fails.
"""

import csv
import json
import sys

import numpy as np
import onnx
import onnxruntime

RTOL = 1e-6

# The cells nnc reads as missing (src/runtime/data/table.rs).
MISSING = {"", "NA", "N/A", "n/a", "NaN", "nan", "NAN", "?", "NULL", "null", "None"}


def number(text):
    text = text.strip()
    return float("nan") if text in MISSING else float(text)


def read_csv(path):
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]

    def is_number(text):
        try:
            float(text)
            return True
        except ValueError:
            return False

    header = None if all(is_number(c) for c in rows[0]) else [c.strip() for c in rows[0]]
    return header, rows[1:] if header else rows


def main(model_path, data_path, predictions_path):
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    columns = json.loads(meta["nnc.columns"])
    header, rows = read_csv(data_path)

    def index(column):
        return header.index(column) if isinstance(column, str) else column - 1

    _, predicted = read_csv(predictions_path)
    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    types = {i.name: i.type for i in session.get_inputs()}
    feeds = {}
    for binding in columns:
        if binding["role"] != "input":
            continue
        cols = [index(c) for c in binding["columns"]]
        if types[binding["name"]] == "tensor(string)":
            feeds[binding["name"]] = np.array([[r[c].strip() for c in cols] for r in rows], dtype=object)
        else:
            feeds[binding["name"]] = np.array([[number(r[c]) for c in cols] for r in rows], dtype=np.float32)
    outputs = session.run(None, feeds)
    names = [o.name for o in session.get_outputs()]
    if "class" in names:
        probabilities = outputs[0]
        classes = outputs[names.index("class")]
        if "label" in names:
            labels = outputs[names.index("label")]
            want_labels = [r[0] for r in predicted]
            if list(labels) != want_labels:
                bad = next(i for i, (a, b) in enumerate(zip(labels, want_labels)) if a != b)
                print(f"FAIL {model_path}: label differs in row {bad + 1}: {labels[bad]} vs {want_labels[bad]}")
                return 1
        else:
            want_classes = np.array([int(r[0]) for r in predicted])
            if not np.array_equal(classes, want_classes):
                bad = int(np.argmax(classes != want_classes))
                print(f"FAIL {model_path}: class differs in row {bad + 1}: {classes[bad]} vs {want_classes[bad]}")
                return 1
        got = probabilities.astype(np.float64)
        want = np.array([[float(c) for c in r[1:]] for r in predicted], dtype=np.float64)
    else:
        got = outputs[0].astype(np.float64)
        want = np.array([[float(c) for c in r] for r in predicted], dtype=np.float64)
        if want.shape[1] == 2 * got.shape[1]:
            # A yes/no (sigmoid) model: `nnc predict` writes each answer at the
            # threshold, then the probabilities; the graph outputs `answer`.
            k = got.shape[1]
            answers, want = want[:, :k], want[:, k:]
            if "answer" not in names:
                print(f"FAIL {model_path}: a yes/no model without an `answer` output")
                return 1
            if not np.array_equal(outputs[names.index("answer")].astype(np.float64), answers):
                print(f"FAIL {model_path}: a yes/no answer differs from nnc predict's")
                return 1
    if got.shape != want.shape:
        print(f"FAIL {model_path}: outputs {got.shape} vs predictions {want.shape}")
        return 1
    diff = np.abs(got - want)
    magnitude = np.abs(want)
    scale = np.maximum(magnitude.max(axis=1, keepdims=True), magnitude.max(axis=0, keepdims=True))
    relative = diff / np.maximum(scale, np.finfo(np.float32).tiny)
    worst = np.unravel_index(np.argmax(relative), relative.shape)
    print(
        f"{model_path}: {len(rows)} rows, max abs diff {diff.max():.3g}, "
        f"max rel diff {relative.max():.3g} (row {worst[0] + 1}, column {worst[1] + 1})"
    )
    if relative.max() > RTOL:
        print(f"FAIL {model_path}: relative difference above {RTOL}")
        return 1
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or len(args) % 3:
        sys.exit(__doc__)
    failures = [main(*args[i : i + 3]) for i in range(0, len(args), 3)]
    sys.exit(1 if any(failures) else 0)
