//! `nnc eval` against scikit-learn, and binary and multi-label
//! classification end to end.
//!
//! `peers/eval_report.py` read the weights in `tests/data/eval/` (saved by
//! `nnc run` after a few epochs, so the models make mistakes and some
//! classes are never predicted), ran the forward pass in numpy and let
//! scikit-learn compute the confusion matrices, `classification_report`
//! (dictionary and text) and the regression figures into
//! `tests/data/eval_reference.json`; nothing here computes them. Cases:
//! iris (3 classes, one never predicted), digits (10 classes), a yes/no
//! sigmoid (`binary.nn`), two yes/no labels (`multilabel.nn`), diabetes and
//! linnerud (regression, one and three standardised targets).

mod common;
use common::nnc;
use serde_json::Value;

fn reference() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/eval_reference.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e} (run peers/eval_report.py)"));
    serde_json::from_str(&text).expect("valid JSON")
}

fn eval(case: &Value, json: bool) -> String {
    let text = |key: &str| case[key].as_str().expect("a path").to_string();
    let (model, data, weights) = (text("model"), text("data"), text("weights"));
    let mut args = vec!["eval", &model, &data, "--weights", &weights];
    if json {
        args.push("--json");
    }
    let out = nnc(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "nnc {args:?} failed: {stderr}");
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Ratios of the same counts: equal to rounding.
fn same(what: &str, got: &Value, want: &Value) {
    let (g, w) = (got.as_f64().unwrap_or(f64::NAN), want.as_f64().expect("a number"));
    assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "{what}: nnc {g}, scikit-learn {w}");
}

fn check_classification(name: &str) {
    let all = reference();
    let case = &all[name];
    let got: Value = serde_json::from_str(&eval(case, true)).expect("JSON on stdout");
    assert_eq!(got["confusion"], case["confusion"], "{name}: confusion matrix");
    assert_eq!(got["rows"], case["rows"]);
    let (report, want) = (&got["report"], case["report"].as_object().expect("a report"));
    assert_eq!(report.as_object().map(|r| r.len()), Some(want.len()), "{name}: report lines {report}");
    for (line, figures) in want {
        if line == "accuracy" {
            same(&format!("{name} accuracy"), &report[line], figures);
            continue;
        }
        for key in ["precision", "recall", "f1-score", "support"] {
            same(&format!("{name} {line} {key}"), &report[line][key], &figures[key]);
        }
    }
    same(&format!("{name} accuracy"), &got["accuracy"], &case["accuracy"]);
    for key in ["exact_match", "label_accuracy"] {
        if let Some(want) = case.get(key) {
            assert_eq!(&got[key], want, "{name}: {key}");
        }
    }
    // The text report is scikit-learn's, character for character.
    let text = eval(case, false);
    let want = case["report_text"].as_str().expect("text");
    assert!(text.contains(want), "{name}: nnc eval printed\n{text}\nscikit-learn prints\n{want}");
}

#[test]
fn eval_iris_matches_sklearn() {
    check_classification("iris");
}

#[test]
fn eval_digits_matches_sklearn() {
    check_classification("digits");
}

#[test]
fn eval_binary_matches_sklearn() {
    check_classification("binary");
}

#[test]
fn eval_multilabel_matches_sklearn() {
    check_classification("multilabel");
}

fn check_regression(name: &str) {
    let all = reference();
    let case = &all[name];
    let got: Value = serde_json::from_str(&eval(case, true)).expect("JSON on stdout");
    let (targets, want) = (got["targets"].as_array().expect("targets"), case["targets"].as_array().expect("targets"));
    assert_eq!(targets.len(), want.len());
    for (g, w) in targets.iter().zip(want) {
        assert_eq!(g["name"], w["name"]);
        for key in ["mse", "rmse", "mae", "r2"] {
            let (a, b) = (g[key].as_f64().expect("a number"), w[key].as_f64().expect("a number"));
            // f32 kernel against numpy's f32 forward pass, in the file's units.
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{name} {} {key}: nnc {a}, scikit-learn {b}", w["name"]);
        }
    }
}

#[test]
fn eval_diabetes_matches_sklearn() {
    check_regression("diabetes");
}

#[test]
fn eval_linnerud_matches_sklearn() {
    check_regression("linnerud");
}

#[test]
fn eval_needs_the_targets() {
    let dir = std::env::temp_dir().join(format!("nnc-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let data = dir.join("inputs.csv");
    std::fs::write(&data, "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n").expect("write");
    let out = nnc(&[
        "eval",
        "examples/iris.nn",
        data.to_str().expect("UTF-8"),
        "--weights",
        "tests/data/eval/iris.safetensors",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("species") || stderr.contains("column"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn eval_reports_a_missing_weights_file() {
    let out = nnc(&["eval", "examples/iris.nn", "examples/iris.csv", "--weights", "tests/data/eval/none.safetensors"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("none.safetensors"), "{stderr}");
}

/// A sigmoid trained with binary cross-entropy reports accuracy, in
/// training and in `predict` (the class at the threshold and the probability).
#[test]
fn binary_classifier_reports_accuracy_and_predicts_classes() {
    let out = nnc(&["run", "examples/binary.nn", "examples/iris.csv", "--json", "--quiet"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let accuracy = json["accuracy"].as_f64().expect("accuracy for a sigmoid classifier");
    assert!(accuracy > 0.9, "binary.nn trains to {accuracy}");
    assert!(json["metrics"].get("mse").is_none(), "{json}");
    let out =
        nnc(&["predict", "examples/binary.nn", "examples/iris.csv", "--weights", "tests/data/eval/binary.safetensors"]);
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("class,probability"));
    for line in lines {
        let (class, p) = line.split_once(',').expect("two cells");
        let p: f64 = p.parse().expect("a probability");
        assert_eq!(class, if p >= 0.5 { "1" } else { "0" }, "{line}");
    }
}

/// `threshold` moves the yes/no boundary: at 0.9 fewer rows are "yes".
#[test]
fn threshold_setting_moves_the_answers() {
    let dir = std::env::temp_dir().join(format!("nnc-threshold-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let source = std::fs::read_to_string(common::example_path("binary.nn")).expect("binary.nn");
    let model = dir.join("strict.nn");
    std::fs::write(&model, source.replace("seed = 0", "seed = 0\n  threshold = 0.9")).expect("write");
    let yes = |model: &str| {
        let out = nnc(&["predict", model, "examples/iris.csv", "--weights", "tests/data/eval/binary.safetensors"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("UTF-8").lines().skip(1).filter(|l| l.starts_with("1,")).count()
    };
    let (usual, strict) = (yes("examples/binary.nn"), yes(model.to_str().expect("UTF-8")));
    assert!(strict < usual, "threshold 0.9 gives {strict} yes answers, 0.5 gives {usual}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// String class labels name the confusion matrix's rows and columns and
/// the report's lines.
#[test]
fn eval_names_the_classes() {
    let dir = std::env::temp_dir().join(format!("nnc-eval-names-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let weights = dir.join("penguins.safetensors");
    let weights = weights.to_str().expect("UTF-8");
    let out = nnc(&[
        "run",
        "examples/penguins.nn",
        "examples/penguins.csv",
        "--epochs",
        "2",
        "--quiet",
        "--save-weights",
        weights,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Rows without missing cells: every evaluated row needs its inputs.
    let text = std::fs::read_to_string(common::example_path("penguins.csv")).expect("penguins.csv");
    let complete: String = text.lines().filter(|l| !l.contains("NA")).map(|l| format!("{l}\n")).collect();
    let data = dir.join("complete.csv");
    std::fs::write(&data, complete).expect("write");
    let out = nnc(&["eval", "examples/penguins.nn", data.to_str().expect("UTF-8"), "--weights", weights, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["classes"], serde_json::json!(["Adelie", "Chinstrap", "Gentoo"]), "{json}");
    assert!(json["report"]["Gentoo"]["support"].as_u64().is_some_and(|n| n > 0), "{json}");
    let _ = std::fs::remove_dir_all(&dir);
}
