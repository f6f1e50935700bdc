//! Training on real CSV data (issue 3): bindings by name, position and
//! "rest", preprocessing, validation, shuffling, reproducibility, weights
//! in and out, and prediction — through the `nnc` binary.

mod common;
use common::{json, nnc, ok, s, write};

use std::path::PathBuf;

fn dir(name: &str) -> PathBuf {
    common::scratch("training", name)
}

#[test]
fn iris_reaches_95_percent() {
    let result = json(&["run", "examples/iris.nn", "examples/iris.csv", "--json", "--quiet"]);
    assert!(result["accuracy"].as_f64().unwrap() >= 0.95, "{result}");
}

#[test]
fn digits_reaches_96_percent() {
    let result = json(&["run", "examples/digits.nn", "examples/digits.csv", "--json", "--quiet"]);
    assert!(result["accuracy"].as_f64().unwrap() >= 0.96, "{result}");
    assert_eq!(result["rows"], 1797);
}

#[test]
fn diabetes_and_linnerud_report_regression_metrics() {
    let result = json(&["run", "examples/diabetes.nn", "examples/diabetes.csv", "--epochs", "20", "--json", "--quiet"]);
    assert!(result["accuracy"].is_null());
    let r2 = result["metrics"]["r2"].as_f64().unwrap();
    assert!(r2 > 0.4 && r2 < 1.0, "r2 {r2}");
    // mse is in the target's units (progression, roughly 25..346), not standardised ones.
    assert!(result["metrics"]["mse"].as_f64().unwrap() > 100.0, "{result}");
    let result = json(&["run", "examples/linnerud.nn", "examples/linnerud.csv", "--json", "--quiet"]);
    assert_eq!(result["rows"], 16, "20 athletes, the last 4 held out");
    assert!(result["validation"]["loss"].as_f64().is_some(), "{result}");
}

/// Iris bound four ways must train identically: positions, names, numbers, rest.
#[test]
fn bindings_by_position_name_number_and_rest_agree() {
    let d = dir("bindings");
    let body = "model { h = dense(x, 8, tanh)  out = dense(h, 3, softmax) }\nloss cross_entropy(out, y)\ntrain { optimizer = sgd(lr = 0.05) epochs = 5 batch = 16 }\n";
    let variants = [
        "data { input x[4] target y = one_hot(3) }",
        "data { input x = columns(sepal_length, sepal_width, petal_length, petal_width) target y = one_hot(species, 3) }",
        "data { input x = columns(1, 2, 3, 4) target y = one_hot(5, 3) }",
        "data { input x = columns(range(1, 4)) target y = one_hot(5, 3) }",
        "data { target y = one_hot(species, 3) input x[4] = rest() }",
    ];
    let mut losses = Vec::new();
    for (i, data) in variants.iter().enumerate() {
        let model = write(&d, &format!("m{i}.nn"), &format!("{data}\n{body}"));
        let result = json(&["run", &model, "examples/iris.csv", "--json", "--quiet"]);
        losses.push(result["final_loss"].as_f64().unwrap());
    }
    assert!(losses.windows(2).all(|w| w[0] == w[1]), "{losses:?}");
}

#[test]
fn headerless_crlf_and_bom_files_read_the_same() {
    let d = dir("formats");
    let text = std::fs::read_to_string("examples/iris.csv").unwrap();
    let without_header: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let crlf: String = text.lines().map(|l| format!("{l}\r\n")).collect();
    let bom = format!("\u{feff}{text}");
    let quoted: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| if i == 0 { format!("{l}\n") } else { format!("\"{}\n", l.replacen(',', "\",", 1)) })
        .collect();
    let reference = json(&["run", "examples/iris.nn", "examples/iris.csv", "--epochs", "3", "--json", "--quiet"]);
    for (name, content) in [("plain.csv", without_header), ("crlf.csv", crlf), ("bom.csv", bom), ("quoted.csv", quoted)]
    {
        let file = write(&d, name, &content);
        let result = json(&["run", "examples/iris.nn", &file, "--epochs", "3", "--json", "--quiet"]);
        assert_eq!(result["final_loss"], reference["final_loss"], "{name}");
    }
}

#[test]
fn names_need_a_header_and_must_exist() {
    let d = dir("names");
    let csv = write(&d, "noheader.csv", "1,2,0\n3,4,1\n");
    let model = write(
        &d,
        "m.nn",
        "data { input x = columns(a, b) target y = one_hot(label, 2) }\nmodel { out = dense(x, 2, softmax) }\nloss cross_entropy(out, y)\n",
    );
    let output = nnc(&["check", &model, &csv]);
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("no header row"), "{err}");
    assert!(err.contains("m.nn:1:"), "points into the model file: {err}");
    let output = nnc(&["check", "examples/diabetes.nn", "examples/iris.csv"]);
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("has no column `age`"), "{err}");
}

/// Standardisation uses the mean and population std of the training rows,
/// and scaling divides: checked against statistics computed here in f64.
#[test]
fn preprocessing_statistics_are_saved_with_the_weights() {
    let d = dir("stats");
    let weights = d.join("w.safetensors");
    ok(&[
        "run",
        "examples/diabetes.nn",
        "examples/diabetes.csv",
        "--epochs",
        "1",
        "--save-weights",
        s(&weights),
        "--quiet",
    ]);
    let text = std::fs::read_to_string("examples/diabetes.csv").unwrap();
    let rows: Vec<Vec<f64>> =
        text.lines().skip(1).map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    let n = rows.len() as f64;
    let mean = |c: usize| rows.iter().map(|r| r[c]).sum::<f64>() / n;
    let std = |c: usize| (rows.iter().map(|r| (r[c] - mean(c)).powi(2)).sum::<f64>() / n).sqrt();
    // safetensors header: 8-byte length, then JSON with __metadata__.
    let bytes = std::fs::read(&weights).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    let pre: serde_json::Value =
        serde_json::from_str(header["__metadata__"]["nnc.preprocessing"].as_str().unwrap()).unwrap();
    let x = pre.as_array().unwrap().iter().find(|b| b["name"] == "x").unwrap();
    let y = pre.as_array().unwrap().iter().find(|b| b["name"] == "y").unwrap();
    for c in 0..10 {
        assert!((x["mean"][c].as_f64().unwrap() - mean(c)).abs() < 1e-9 * mean(c).abs().max(1.0), "mean {c}");
        assert!((x["std"][c].as_f64().unwrap() - std(c)).abs() < 1e-9 * std(c), "std {c}");
    }
    assert!((y["mean"][0].as_f64().unwrap() - mean(10)).abs() < 1e-9 * mean(10));
    assert!(header["__metadata__"]["nnc.source_hash"].is_string());
}

#[test]
fn validation_split_holds_out_a_fraction_and_fits_statistics_on_the_rest() {
    let result = json(&[
        "run",
        "examples/diabetes.nn",
        "examples/diabetes.csv",
        "--epochs",
        "2",
        "--validation",
        "0.25",
        "--json",
        "--quiet",
    ]);
    assert_eq!(result["rows"], 331, "442 rows, round(0.25·442) = 111 held out");
    assert!(result["validation"]["mse"].as_f64().is_some());
    let d = dir("validation");
    let log = d.join("log.csv");
    ok(&[
        "run",
        "examples/iris.nn",
        "examples/iris.csv",
        "--epochs",
        "3",
        "--validation",
        "0.2",
        "--log",
        s(&log),
        "--quiet",
    ]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().next(), Some("epoch,loss,accuracy,val_loss,val_accuracy,best"));
    assert_eq!(text.lines().count(), 4);
}

/// The same seed gives bitwise the same weights, with and without shuffling;
/// another seed or shuffling gives different ones.
#[test]
fn runs_are_bitwise_reproducible() {
    let d = dir("repro");
    let run = |name: &str, extra: &[&str]| -> Vec<u8> {
        let path = d.join(name);
        let mut args = vec!["run", "examples/iris.nn", "examples/iris.csv", "--epochs", "7", "--quiet"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--save-weights", s(&path)]);
        ok(&args);
        std::fs::read(&path).unwrap()
    };
    assert_eq!(run("a", &[]), run("b", &[]));
    assert_eq!(run("c", &["--shuffle"]), run("d", &["--shuffle"]));
    assert_ne!(run("e", &["--shuffle"]), run("f", &[]));
    assert_ne!(run("g", &["--shuffle", "--seed", "1"]), run("h", &["--shuffle"]));
}

#[test]
fn saved_weights_round_trip_and_predict_reproduces_accuracy() {
    let d = dir("predict");
    let weights = d.join("iris.safetensors");
    let trained =
        json(&["run", "examples/iris.nn", "examples/iris.csv", "--save-weights", s(&weights), "--json", "--quiet"]);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&weights).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644);
    // Starting from the saved weights with a tiny learning rate keeps the loss.
    let resumed = json(&[
        "run",
        "examples/iris.nn",
        "examples/iris.csv",
        "--init-weights",
        s(&weights),
        "--epochs",
        "1",
        "--lr",
        "1e-12",
        "--json",
        "--quiet",
    ]);
    let (a, b) = (trained["final_loss"].as_f64().unwrap(), resumed["final_loss"].as_f64().unwrap());
    assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    let output = ok(&["predict", "examples/iris.nn", "examples/iris.csv", "--weights", s(&weights)]);
    let text = String::from_utf8(output.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("class,p0,p1,p2"));
    let labels: Vec<usize> = std::fs::read_to_string("examples/iris.csv")
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    let predicted: Vec<usize> = lines.map(|l| l.split(',').next().unwrap().parse().unwrap()).collect();
    assert_eq!(predicted.len(), 150);
    let correct = predicted.iter().zip(&labels).filter(|(p, l)| p == l).count();
    let accuracy = correct as f64 / 150.0;
    assert!((accuracy - trained["accuracy"].as_f64().unwrap()).abs() < 1e-12, "{accuracy} vs {trained}");
}

#[test]
fn regression_predictions_are_in_the_targets_units() {
    let d = dir("predict-regression");
    let weights = d.join("d.safetensors");
    let trained = json(&[
        "run",
        "examples/diabetes.nn",
        "examples/diabetes.csv",
        "--epochs",
        "5",
        "--save-weights",
        s(&weights),
        "--json",
        "--quiet",
    ]);
    // Without the target column: inputs only.
    let inputs: String = std::fs::read_to_string("examples/diabetes.csv")
        .unwrap()
        .lines()
        .map(|l| format!("{}\n", l.rsplit_once(',').unwrap().0))
        .collect();
    let file = write(&d, "inputs.csv", &inputs);
    let out = d.join("pred.csv");
    ok(&["predict", "examples/diabetes.nn", &file, "--weights", s(&weights), "--out", s(&out)]);
    let predictions: Vec<f64> =
        std::fs::read_to_string(&out).unwrap().lines().skip(1).map(|l| l.parse().unwrap()).collect();
    let targets: Vec<f64> = std::fs::read_to_string("examples/diabetes.csv")
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    let mse = predictions.iter().zip(&targets).map(|(p, t)| (p - t).powi(2)).sum::<f64>() / targets.len() as f64;
    let reported = trained["metrics"]["mse"].as_f64().unwrap();
    assert!((mse - reported).abs() < 1e-3 * reported, "{mse} vs {reported}");
}

/// Dropout masks follow the seed: from the same initial weights, two seeds
/// train differently, and the same seed identically.
#[test]
fn dropout_masks_follow_the_seed() {
    let d = dir("dropout-seed");
    let init = d.join("init.safetensors");
    ok(&[
        "run",
        "examples/skip.nn",
        "examples/iris.csv",
        "--epochs",
        "1",
        "--lr",
        "1e-9",
        "--save-weights",
        s(&init),
        "--quiet",
    ]);
    let run = |seed: &str| {
        json(&[
            "run",
            "examples/skip.nn",
            "examples/iris.csv",
            "--epochs",
            "3",
            "--init-weights",
            s(&init),
            "--seed",
            seed,
            "--json",
            "--quiet",
        ])["final_loss"]
            .clone()
    };
    assert_eq!(run("5"), run("5"));
    assert_ne!(run("5"), run("6"));
}

/// A device or an oversized file is refused before it is read.
#[test]
fn init_weights_from_a_device_is_refused() {
    let output = nnc(&["run", "examples/iris.nn", "examples/iris.csv", "--init-weights", "/dev/zero", "--quiet"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a regular file"));
}
