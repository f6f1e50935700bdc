//! The `nnc` binary end to end: exit codes, stdout and stderr of `run`,
//! `ir`, `grad` and `check` on the shipped examples.

mod common;
use common::nnc;

use std::path::Path;
use std::process::Output;

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout(output))
        .unwrap_or_else(|e| panic!("stdout is one JSON object ({e}):\n{}", stdout(output)))
}

#[test]
fn minimize_reaches_the_local_minimum_at_one() {
    let output = nnc(&["run", "examples/minimize.nn", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let result = json(&output);
    let x = result["params"]["x"].as_f64().expect("params.x is a number");
    assert!((x - 1.0).abs() < 1e-4, "x = {x}");
    // f(1) = 1/3 - 1
    let loss = result["final_loss"].as_f64().unwrap();
    assert!((loss + 2.0 / 3.0).abs() < 1e-5, "final loss {loss}");
    assert_eq!(result["steps"], 200);
    assert!(result["accuracy"].is_null());
    for key in ["parse", "check", "grad", "compile", "train", "total"] {
        assert!(result["timings_ms"][key].as_f64().is_some_and(|t| t >= 0.0), "timings_ms.{key}");
    }
    assert!(result["samples_per_second"].as_f64().is_some_and(|s| s > 0.0));
}

#[test]
fn minimize_human_output_names_the_param() {
    let output = nnc(&["run", "examples/minimize.nn"]);
    assert!(output.status.success());
    let out = stdout(&output);
    let x_line = out.lines().find(|l| l.starts_with("x = ")).expect("a line `x = ...`");
    let x: f64 = x_line[4..].trim().parse().unwrap();
    assert!((x - 1.0).abs() < 1e-4, "{x_line}");
    let err = stderr(&output);
    assert!(err.contains("steps      200"), "settings echo:\n{err}");
    assert!(err.contains("seed       0 (default)"), "defaults are marked:\n{err}");
}

#[test]
fn flags_override_the_file() {
    let output = nnc(&["run", "examples/minimize.nn", "--steps", "3", "--lr", "0.5", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let result = json(&output);
    assert_eq!(result["steps"], 3);
    // Three steps of x ← x − 0.5 (x² − 1) from 0, computed by hand in f64.
    let mut x = 0.0f64;
    for _ in 0..3 {
        x -= 0.5 * (x * x - 1.0);
    }
    let got = result["params"]["x"].as_f64().unwrap();
    assert!((got - x).abs() < 1e-6, "{got} vs {x}");
}

#[test]
fn iris_trains_to_high_accuracy() {
    let output = nnc(&["run", "examples/iris.nn", "examples/iris.csv", "--json", "--quiet"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), "", "--quiet prints nothing on stderr");
    let result = json(&output);
    let accuracy = result["accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.95, "accuracy {accuracy}");
    let loss = result["final_loss"].as_f64().unwrap();
    assert!(loss < 0.2, "final loss {loss}");
    assert_eq!(result["epochs"], 200);
    assert_eq!(result["batch"], 16);
    // One evaluation of 150 rows: the interpreter does it sooner than the
    // evaluation kernel would compile.
    assert_eq!(result["evaluations"], "interpreter");
}

#[test]
fn evaluations_run_on_a_kernel_when_there_are_many() {
    // --log evaluates every epoch: 200 evaluations of iris.
    let dir = tempdir("eval-kernel");
    let log = dir.join("log.csv");
    let log = log.to_str().unwrap();
    let output = nnc(&["run", "examples/iris.nn", "examples/iris.csv", "--json", "--quiet", "--log", log]);
    assert!(output.status.success(), "{}", stderr(&output));
    let result = json(&output);
    assert_eq!(result["evaluations"], "kernel");
    assert!(result["accuracy"].as_f64().unwrap() >= 0.95);
}

#[test]
fn seed_loss_falls() {
    let dir = tempdir("seed-log");
    let log = dir.join("log.csv");
    let output = nnc(&["run", "examples/seed.nn", "examples/seed.csv", "--log", log.to_str().unwrap(), "--quiet"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("epoch,loss,mse,mae,r2,best"), "regression metrics per epoch");
    let losses: Vec<f64> = lines.map(|l| l.split(',').nth(1).unwrap().parse().unwrap()).collect();
    assert_eq!(losses.len(), 100, "one row per epoch");
    assert!(losses[99] < losses[0] * 0.5, "first {} last {}", losses[0], losses[99]);
    assert!(stdout(&output).starts_with("final loss "));
}

#[test]
fn same_seed_same_result() {
    let run = || json(&nnc(&["run", "examples/seed.nn", "examples/seed.csv", "--epochs", "5", "--json", "--quiet"]));
    assert_eq!(run()["final_loss"], run()["final_loss"]);
    let other = json(&nnc(&[
        "run",
        "examples/seed.nn",
        "examples/seed.csv",
        "--epochs",
        "5",
        "--seed",
        "7",
        "--json",
        "--quiet",
    ]));
    assert_ne!(run()["final_loss"], other["final_loss"], "the seed changes the initial weights");
}

#[test]
fn grad_prints_the_simplified_derivative() {
    let output = nnc(&["grad", "examples/minimize.nn"]);
    assert!(output.status.success());
    let out = stdout(&output);
    assert!(out.contains("d loss/d x = x^2 - 1\n"), "{out}");
}

#[test]
fn check_reports_ok() {
    let output = nnc(&["check", "examples/iris.nn", "examples/iris.csv"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.contains("classification into 3 classes"), "{out}");
    assert!(out.contains("150 rows"), "{out}");
}

#[test]
fn a_broken_model_exits_1_with_a_located_diagnostic() {
    let dir = tempdir("broken");
    let model = dir.join("bad.nn");
    std::fs::write(&model, "param x = 0\nloss x^2 + tahn(x)\n").unwrap();
    for command in ["run", "check", "grad", "ir"] {
        let output = nnc(&[command, model.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(1), "{command}");
        let err = stderr(&output);
        assert!(err.contains("bad.nn:2:12"), "{command}: {err}");
        assert!(err.contains("did you mean `tanh`?"), "{command}: {err}");
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["run"],
        vec!["run", "examples/minimize.nn", "--epochs", "3"],
        vec!["run", "examples/iris.nn"],
        vec!["run", "examples/minimize.nn", "--lr", "-1"],
        vec!["ir", "examples/minimize.nn", "--stage", "nope"],
    ] {
        let output = nnc(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
    }
}

#[test]
fn a_missing_file_exits_1() {
    let output = nnc(&["run", "examples/does-not-exist.nn"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot read examples/does-not-exist.nn"));
    let output = nnc(&["run", "examples/iris.nn", "examples/nope.csv"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("examples/nope.csv"));
}

#[test]
fn a_reader_that_goes_away_ends_nnc_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    // The long listing outgrows the pipe, so nnc writes after the reader
    // has closed its end, as in `nnc ir model.nn --stage clif | head`.
    let mut child = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(["ir", "examples/digits.nn", "--stage", "clif"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the nnc binary runs");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("nnc ends");
    let err = stderr(&output);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(output.status.signal(), Some(libc::SIGPIPE), "{:?}: {err}", output.status);
}

#[test]
fn divergence_exits_3_and_names_the_epoch() {
    let output = nnc(&["run", "examples/seed.nn", "examples/seed.csv", "--lr", "1e6", "--quiet"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("diverged in epoch 1"), "{err}");
    assert!(err.contains("smaller learning rate"), "{err}");
}

#[test]
fn ir_prints_every_stage_of_every_example() {
    for model in ["minimize", "seed", "iris"] {
        for stage in ["ast", "graph", "grad", "opt", "kernel", "clif", "asm"] {
            let path = format!("examples/{model}.nn");
            let output = nnc(&["ir", &path, "--stage", stage]);
            assert!(output.status.success(), "{model} {stage}: {}", stderr(&output));
            assert!(!stdout(&output).trim().is_empty(), "{model} {stage} printed nothing");
        }
    }
}

/// A fresh directory under the target dir for one test's files.
fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
