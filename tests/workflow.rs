//! The training workflow around `nnc run`: early stopping with the best
//! weights, stopping on the gradient, interruption, and the small things a
//! user notices in the output.

mod common;
use common::nnc;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnc-workflow-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

const EARLY: &str = "
data {
  input  x = columns(sepal_length, sepal_width, petal_length, petal_width) standardize
  target y = column(species)
}
model {
  h   = dense(x, 8, tanh)
  out = dense(h, 3, softmax)
}
loss cross_entropy(out, y)
train {
  optimizer = adam(lr = 0.05)
  epochs = 300
  batch = 16
  shuffle = true
  validation = 0.3
  STOP
}
";

/// Every tensor of a safetensors file by name, as raw bytes, and the step.
fn tensors(bytes: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    let (_, metadata) = safetensors::SafeTensors::read_metadata(bytes).expect("a safetensors file");
    let step = metadata.metadata().as_ref().and_then(|m| m.get("nnc.step").cloned()).expect("nnc.step");
    let file = safetensors::SafeTensors::deserialize(bytes).expect("a safetensors file");
    let mut out: std::collections::BTreeMap<String, Vec<u8>> =
        file.tensors().into_iter().map(|(name, view)| (name, view.data().to_vec())).collect();
    out.insert("nnc.step".into(), step.into_bytes());
    out
}

fn run_json(args: &[&str]) -> Value {
    let out = nnc(args);
    assert!(out.status.success(), "nnc {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// The run stops `patience` epochs after the best validation loss in its
/// own log, and keeps that epoch's weights and Adam state: the saved file
/// is byte for byte the one a run of exactly that many epochs saves.
#[test]
fn early_stopping_keeps_the_best_epoch_with_its_optimizer_state() {
    let dir = scratch("early");
    let model = dir.join("early.nn");
    std::fs::write(&model, EARLY.replace("STOP", "early_stop(patience = 7)")).expect("write");
    let (log, stopped_weights) = (dir.join("log.csv"), dir.join("stopped.safetensors"));
    let args = ["run", path(&model), "examples/iris.csv", "--json", "--quiet", "--log", path(&log)];
    let json = run_json(&[&args[..], &["--save-weights", path(&stopped_weights)]].concat());
    let stop = &json["early_stop"];
    assert_eq!(stop["monitor"], "val_loss", "{json}");
    assert_eq!(stop["stopped"], true, "{json}");

    // The best epoch is the first minimum of the logged val_loss, and the
    // run ended `patience` epochs later.
    let text = std::fs::read_to_string(&log).expect("log");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let column = header.iter().position(|h| *h == "val_loss").expect("val_loss column");
    let losses: Vec<f64> = lines.map(|l| l.split(',').nth(column).expect("cell").parse().expect("number")).collect();
    let best = (0..losses.len()).fold(0, |b, i| if losses[i] < losses[b] { i } else { b });
    assert_eq!(stop["best_epoch"], best as u64 + 1, "{json}\n{text}");
    assert_eq!(stop["epochs_run"], losses.len() as u64, "{json}");
    assert_eq!(losses.len(), best + 1 + 7, "{text}");
    let final_val = json["validation"]["loss"].as_f64().expect("validation loss");
    assert!((final_val - losses[best]).abs() < 1e-6, "final {final_val} vs best {}", losses[best]);

    // The same run cut at the best epoch saves the same bytes.
    let direct = dir.join("direct.safetensors");
    let epochs = (best + 1).to_string();
    let cut = EARLY.replace("STOP", "");
    let cut_model = dir.join("cut.nn");
    std::fs::write(&cut_model, cut).expect("write");
    run_json(&[
        "run",
        path(&cut_model),
        "examples/iris.csv",
        "--json",
        "--quiet",
        "--epochs",
        &epochs,
        "--save-weights",
        path(&direct),
    ]);
    let (a, b) = (std::fs::read(&stopped_weights).expect("saved"), std::fs::read(&direct).expect("saved"));
    let (a, b) = (tensors(&a), tensors(&b));
    assert_eq!(a.len(), 13, "weights, biases, both Adam moments of each, the step: {:?}", a.keys());
    assert_eq!(a, b, "the early-stopped weights differ from a run of {epochs} epochs");
    let _ = std::fs::remove_dir_all(&dir);
}

/// When the epoch limit comes first, the best epoch's weights are still
/// the ones reported.
#[test]
fn early_stopping_at_the_epoch_limit_reports_the_best_epoch() {
    let dir = scratch("limit");
    let model = dir.join("limit.nn");
    std::fs::write(&model, EARLY.replace("STOP", "early_stop(patience = 1000, monitor = val_accuracy)"))
        .expect("write");
    let json = run_json(&["run", path(&model), "examples/iris.csv", "--json", "--quiet", "--epochs", "40"]);
    let stop = &json["early_stop"];
    assert_eq!(stop["stopped"], false, "{json}");
    assert_eq!(stop["epochs_run"], 40, "{json}");
    let best = stop["best_value"].as_f64().expect("best");
    assert_eq!(json["validation"]["accuracy"].as_f64(), Some(best), "{json}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn early_stopping_on_validation_needs_validation_data() {
    let dir = scratch("noval");
    let model = dir.join("noval.nn");
    let source = EARLY.replace("validation = 0.3", "").replace("STOP", "early_stop(monitor = val_loss)");
    std::fs::write(&model, source).expect("write");
    let out = nnc(&["run", path(&model), "examples/iris.csv", "--quiet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no validation data"), "{stderr}");
    // Without a monitor it watches the training loss.
    std::fs::write(&model, EARLY.replace("validation = 0.3", "").replace("STOP", "early_stop(patience = 3)"))
        .expect("write");
    let json = run_json(&["run", path(&model), "examples/iris.csv", "--json", "--quiet"]);
    assert_eq!(json["early_stop"]["monitor"], "loss", "{json}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_early_stop_settings_are_located() {
    let dir = scratch("badstop");
    let model = dir.join("bad.nn");
    for (setting, expect) in [
        ("early_stop(patience = 0)", "`patience` must be a whole number"),
        ("early_stop(monitor = val_los)", "unknown monitor `val_los`"),
        ("early_stop(patient = 3)", "unknown argument"),
        ("threshold = 1.5", "`threshold` must be a probability"),
        ("tolerance = 1e-6", "`tolerance` does not apply"),
    ] {
        std::fs::write(&model, EARLY.replace("STOP", setting)).expect("write");
        let out = nnc(&["check", path(&model)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{setting}: {stderr}");
        assert!(stderr.contains(expect), "{setting}: {stderr}");
        assert!(stderr.contains("bad.nn:17:"), "{setting}: not located: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
