//! Weighted classification losses against PyTorch's definitions.
//!
//! `peers/class_weights.py` wrote `tests/data/class_weights/`: per case a
//! CSV, a model, initial weights, and in `cases.json` the numbers PyTorch's
//! `CrossEntropyLoss(weight=)` (a weighted mean per batch) and
//! `BCEWithLogitsLoss(pos_weight=)` give, written out in numpy float64 —
//! `weights = balanced` as scikit-learn's `compute_class_weight('balanced')`
//! on the training rows. Here nnc trains from the same initial weights and
//! must agree: the weights it echoes, every epoch's loss, the trained
//! parameters, the final and validation losses, and `nnc eval`'s loss with
//! the saved weights. Nothing here computes the expected numbers.

mod common;
use common::{json, nnc, ok, s, scratch, write};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/class_weights")
}

fn cases() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("cases.json")).expect("cases.json")).expect("JSON")
}

fn close(got: f64, want: f64, rtol: f64) -> bool {
    (got - want).abs() <= 1e-6 + rtol * want.abs()
}

/// Every tensor of a safetensors file as f64 values, by name.
fn tensors(path: &Path) -> BTreeMap<String, Vec<f64>> {
    let bytes = std::fs::read(path).expect("a weights file");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view.data().chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64).collect();
            (name, values)
        })
        .collect()
}

fn numbers(value: &Value) -> Vec<f64> {
    value.as_array().expect("an array").iter().map(|v| v.as_f64().expect("a number")).collect()
}

#[test]
fn weighted_losses_train_as_pytorchs_formulas_say() {
    let cases = cases();
    let out = scratch("class_weights", "peer");
    for case in cases["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().unwrap();
        let (model, data) = (dir().join(format!("{name}.nn")), dir().join(format!("{name}.csv")));
        let init = dir().join(format!("{name}.init.safetensors"));
        let (log, saved) = (out.join(format!("{name}.log.csv")), out.join(format!("{name}.safetensors")));
        let result = json(&[
            "run",
            s(&model),
            s(&data),
            "--init-weights",
            s(&init),
            "--log",
            s(&log),
            "--save-weights",
            s(&saved),
            "--json",
            "--quiet",
        ]);
        // The weights the run used, as the peer computed them.
        let want = if case["class_weights"].is_null() { &case["pos_weight"] } else { &case["class_weights"] };
        let used = numbers(&result["loss_weights"]["values"]);
        for (got, want) in used.iter().zip(numbers(want)) {
            assert!((got - want).abs() < 1e-12, "{name}: weights {used:?} vs {want}");
        }
        assert_eq!(used.len(), numbers(want).len(), "{name}");
        // Every epoch's loss (the row-weighted mean of its batches' weighted means).
        let text = std::fs::read_to_string(&log).unwrap();
        let history: Vec<f64> = text.lines().skip(1).map(|l| l.split(',').nth(1).unwrap().parse().unwrap()).collect();
        let expected = numbers(&case["history"]);
        assert_eq!(history.len(), expected.len(), "{name}");
        for (epoch, (got, want)) in history.iter().zip(&expected).enumerate() {
            assert!(close(*got, *want, 1e-5), "{name}: epoch {} loss {got} vs {want}", epoch + 1);
        }
        // The trained parameters and the losses at them.
        let params = tensors(&saved);
        for (param, want) in case["final"].as_object().unwrap() {
            let got = &params[param];
            for (g, w) in got.iter().zip(numbers(want)) {
                assert!(close(*g, w, 1e-4), "{name}: {param} {got:?} vs {want}");
            }
        }
        let final_loss = result["final_loss"].as_f64().unwrap();
        assert!(close(final_loss, case["final_loss"].as_f64().unwrap(), 1e-5), "{name}: final {final_loss} vs {case}");
        if let Some(want) = case["validation_loss"].as_f64() {
            let got = result["validation"]["loss"].as_f64().unwrap();
            assert!(close(got, want, 1e-5), "{name}: validation loss {got} vs {want}");
        }
        // `nnc eval` takes the weights from the weights file: the same loss.
        let eval = json(&["eval", s(&model), s(&data), "--weights", s(&saved), "--json", "--quiet"]);
        let want = case["all_rows_loss"].as_f64().unwrap_or(final_loss);
        let got = eval["loss"].as_f64().unwrap();
        assert!(close(got, want, 1e-5), "{name}: eval loss {got} vs {want}");
    }
}

#[test]
fn weighted_losses_have_exact_gradients() {
    for case in cases()["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().unwrap();
        let (model, data) = (dir().join(format!("{name}.nn")), dir().join(format!("{name}.csv")));
        let out = ok(&["check", "--gradcheck", s(&model), s(&data), "--rows", "44"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("passed: every gradient within atol 1e-5 + rtol 1e-3"), "{name}: {text}");
    }
}

#[test]
fn the_run_echoes_the_weights_by_class_name() {
    let out = ok(&["run", s(&dir().join("balanced_split.nn")), s(&dir().join("balanced_split.csv")), "--epochs", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("loss       class weights common 0.4583, rare 2.2000, scarce 2.7500 (balanced: rows / (classes × class rows) over the 33 training rows)"),
        "{stderr}"
    );
    // A label computed by an expression (`digit == 9`) has no column to
    // stratify the split by: the echo says the rows were chosen at random.
    let out = ok(&["run", "examples/class_weights.nn", "examples/digits.csv", "--epochs", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("validation 30% of the rows, chosen at random, seeded"), "{stderr}");
}

#[test]
fn balanced_needs_every_class_in_the_training_rows() {
    // The scarce class's 5 rows moved to the end: `last(0.25)` holds out all of them.
    let text = std::fs::read_to_string(dir().join("balanced_split.csv")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let header = lines.remove(0);
    let (scarce, rest): (Vec<&str>, Vec<&str>) = lines.into_iter().partition(|l| l.ends_with(",scarce"));
    let moved = [vec![header], rest, scarce].concat().join("\n") + "\n";
    let tmp = scratch("class_weights", "absent");
    let data = write(&tmp, "absent.csv", &moved);
    let out = nnc(&["run", s(&dir().join("balanced_split.nn")), &data, "--quiet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error[E0301]: `weights = balanced` needs every class in the training rows"), "{stderr}");
    assert!(stderr.contains("class `scarce` has none of the 33 training rows"), "{stderr}");
    assert!(stderr.contains("balanced_split.nn:7:"), "located in the model: {stderr}");
    // Cross-validation counts each fold's training rows.
    let cv = json(&["cv", s(&dir().join("balanced.nn")), s(&dir().join("balanced.csv")), "--folds", "3", "--json"]);
    let folds = cv["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 3);
    for fold in folds {
        let weights = numbers(&fold["loss_weights"]);
        let counts: Vec<f64> = numbers(&fold["held_out_classes"]);
        // The training rows' counts are the file's (30, 9, 5) minus those held out.
        let train: Vec<f64> = [30.0, 9.0, 5.0].iter().zip(&counts).map(|(n, h)| n - h).collect();
        let n: f64 = train.iter().sum();
        for (w, c) in weights.iter().zip(&train) {
            assert!((w - n / (3.0 * c)).abs() < 1e-12, "{fold}");
        }
    }
}

#[test]
fn the_torch_export_refuses_a_weighted_mean() {
    let out = nnc(&["export", s(&dir().join("explicit.nn")), "--torch", "/nonexistent/never-written"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error[E0401]"), "{stderr}");
    assert!(stderr.contains("explicit.nn:7:6"), "{stderr}");
}

/// The shipped example on digits ("is it a 9?", 10% yes): the balanced
/// weights find far more of the nines than the same model without them.
#[test]
fn the_class_weights_example_finds_the_rare_class() {
    let tmp = scratch("class_weights", "example");
    let recall = |model: &str, name: &str| {
        let weights = tmp.join(format!("{name}.safetensors"));
        ok(&["run", model, "examples/digits.csv", "--save-weights", s(&weights), "--quiet"]);
        let eval = json(&["eval", model, "examples/digits.csv", "--weights", s(&weights), "--json", "--quiet"]);
        eval["report"]["1"]["recall"].as_f64().unwrap_or_else(|| panic!("{eval}"))
    };
    let weighted = recall("examples/class_weights.nn", "weighted");
    let source = std::fs::read_to_string("examples/class_weights.nn").unwrap().replace(", weights = balanced", "");
    let plain = recall(&write(&tmp, "plain.nn", &source), "plain");
    assert!(weighted >= 0.95 && weighted > plain + 0.1, "recall of the nines: weighted {weighted}, plain {plain}");
}
