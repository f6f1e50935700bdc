"""Check an ONNX file exported by nnc against `nnc predict`.

    python3 onnx_check.py MODEL.onnx DATA.csv PREDICTIONS.csv [MODEL DATA PREDICTIONS ...]

1. `onnx.checker.check_model(full_check=True)` accepts the file;
2. onnxruntime runs it on the rows of DATA.csv, each graph input fed the
   columns the model's `nnc.columns` metadata names (in the CSV's units:
   the preprocessing is inside the graph);
3. its outputs equal PREDICTIONS.csv (written by `nnc predict --out`):
   the class index exactly, and every float within 1e-6 relative to the
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

    feeds = {}
    for binding in columns:
        if binding["role"] != "input":
            continue
        cols = [index(c) for c in binding["columns"]]
        feeds[binding["name"]] = np.array([[float(r[c]) for c in cols] for r in rows], dtype=np.float32)
    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    outputs = session.run(None, feeds)
    names = [o.name for o in session.get_outputs()]
    _, expected = read_csv(predictions_path)
    expected = np.array([[float(c) for c in r] for r in expected], dtype=np.float64)
    if "class" in names:
        probabilities = outputs[names.index(next(n for n in names if n != "class"))]
        classes = outputs[names.index("class")]
        if not np.array_equal(classes, expected[:, 0].astype(np.int64)):
            bad = int(np.argmax(classes != expected[:, 0]))
            print(f"FAIL {model_path}: class differs in row {bad + 1}: {classes[bad]} vs {expected[bad, 0]:.0f}")
            return 1
        got, want = probabilities.astype(np.float64), expected[:, 1:]
    elif expected.shape[1] == 2 * outputs[0].shape[1]:
        # A yes/no (sigmoid) model: `nnc predict` writes each answer at the
        # threshold (0.5 in the examples), then the probabilities.
        k = outputs[0].shape[1]
        got, want = outputs[0].astype(np.float64), expected[:, k:]
        if not np.array_equal(expected[:, :k], (got >= 0.5).astype(np.float64)):
            print(f"FAIL {model_path}: a yes/no answer differs from onnxruntime's probability at 0.5")
            return 1
    else:
        got, want = outputs[0].astype(np.float64), expected
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
