//! `nnc cv`: K-fold cross-validation end to end — the folds partition the
//! rows, stratified folds hold each class's rows to within one, the seed
//! decides everything, the summary is the mean and sample std of the folds'
//! own figures, and bad input is refused.

mod common;
use common::{json, nnc, scratch, write};
use serde_json::Value;

fn figures(json: &Value, name: &str) -> Vec<f64> {
    json["folds"].as_array().expect("folds").iter().map(|f| f["metrics"][name].as_f64().expect(name)).collect()
}

#[test]
fn folds_partition_the_rows_stratified_by_class() {
    let out = json(&["cv", "examples/iris.nn", "examples/iris.csv", "--folds", "4", "--epochs", "20", "--json"]);
    assert_eq!(out["k"], 4);
    assert_eq!(out["stratified"], true);
    assert_eq!(out["trainings"], 4);
    let folds = out["folds"].as_array().expect("folds");
    assert_eq!(folds.len(), 4);
    // Every row is held out exactly once: the held-out sizes add up to the
    // file, and each fold trains on all the others.
    let held: Vec<u64> = folds.iter().map(|f| f["held_out_rows"].as_u64().unwrap()).collect();
    assert_eq!(held.iter().sum::<u64>(), 150, "{held:?}");
    for f in folds {
        assert_eq!(f["train_rows"].as_u64().unwrap() + f["held_out_rows"].as_u64().unwrap(), 150);
    }
    // 50 rows of each class over 4 folds: 12 or 13 of each in every fold.
    for f in folds {
        let counts: Vec<u64> = f["held_out_classes"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect();
        assert_eq!(counts.len(), 3, "{f}");
        assert!(counts.iter().all(|&c| c == 12 || c == 13), "{counts:?}");
        assert_eq!(counts.iter().sum::<u64>(), f["held_out_rows"].as_u64().unwrap());
    }
}

#[test]
fn the_summary_is_the_mean_and_sample_std_of_the_folds() {
    let out = json(&["cv", "examples/iris.nn", "examples/iris.csv", "--epochs", "30", "--json", "--quiet"]);
    assert_eq!(out["k"], 5, "five folds by default");
    assert_eq!(out["std_kind"], "sample (n - 1)");
    for name in ["loss", "accuracy"] {
        let values = figures(&out, name);
        assert_eq!(values.len(), 5);
        let mean = values.iter().sum::<f64>() / 5.0;
        let std = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 4.0).sqrt();
        assert!((out["mean"][name].as_f64().unwrap() - mean).abs() < 1e-12, "{name}: {out}");
        assert!((out["std"][name].as_f64().unwrap() - std).abs() < 1e-12, "{name}: {out}");
    }
    // Accuracy on 30 held-out rows is a whole number of rows.
    for a in figures(&out, "accuracy") {
        assert!((a * 30.0 - (a * 30.0).round()).abs() < 1e-9, "{a}");
    }
}

#[test]
fn the_same_seed_gives_the_same_figures() {
    let run = |seed: &str| {
        let out = json(
            &["cv", "examples/diabetes.nn", "examples/diabetes.csv", "--folds", "3", "--epochs", "5"]
                .into_iter()
                .chain(["--seed", seed, "--json", "--quiet"])
                .collect::<Vec<_>>(),
        );
        assert_eq!(out["stratified"], false, "regression folds are random");
        (figures(&out, "loss"), figures(&out, "r2"), out["folds"].as_array().unwrap().len())
    };
    let a = run("1");
    assert_eq!(a.2, 3);
    assert_eq!(a, run("1"), "same seed, same figures");
    assert_ne!(a.0, run("2").0, "another seed, other folds");
}

#[test]
fn the_models_validation_setting_is_ignored_with_a_note() {
    // penguins.nn holds out 20% for validation; cv holds out the folds instead.
    let out = nnc(&["cv", "examples/penguins.nn", "examples/penguins.csv", "--folds", "3", "--epochs", "5"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("`validation = 0.2` is ignored"), "{stderr}");
    assert!(stderr.contains("3 trainings of 5 epochs each"), "the cost: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("sample std, n − 1"), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.trim_start().starts_with(char::is_numeric)).count(), 3, "{stdout}");
}

#[test]
fn bad_fold_counts_are_refused() {
    let dir = scratch("cv", "bad");
    let fails = |args: &[&str], code: i32, fragment: &str| {
        let out = nnc(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(fragment), "{args:?}: {stderr}");
    };
    fails(&["cv", "examples/iris.nn", "examples/iris.csv", "--folds", "1"], 2, "--folds must be at least 2");
    // Four rows, five folds.
    let tiny = write(&dir, "tiny.csv", "1,2,3,4,0.5\n2,3,4,5,0.1\n3,4,5,6,0.2\n4,5,6,7,0.3\n");
    let model =
        write(&dir, "tiny.nn", "data { input x[4] target y[1] }\nmodel { out = dense(x, 1) }\nloss mse(out, y)\n");
    fails(&["cv", &model, &tiny, "--folds", "5"], 1, "5 folds need at least 5 rows, and the data has 4");
    // A class with 2 rows cannot be in 3 stratified folds.
    let iris = std::fs::read_to_string(common::example_path("iris.csv")).unwrap();
    let mut lines: Vec<&str> = iris.lines().collect();
    let rare: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].ends_with(",2")).skip(2).collect();
    for i in rare.into_iter().rev() {
        lines.remove(i);
    }
    let few = write(&dir, "few.csv", &(lines.join("\n") + "\n"));
    fails(&["cv", "examples/iris.nn", &few, "--folds", "3"], 1, "class `2` has 2");
    fails(&["cv", "examples/iris.nn", &few, "--folds", "3"], 1, "few.csv");
    // Swapped arguments and a model without data.
    fails(&["cv", "examples/iris.csv", "examples/iris.nn"], 2, "looks like a data file");
    fails(&["cv", "examples/minimize.nn", "examples/iris.csv"], 2, "no data block");
}

#[test]
fn batch_and_row_order_flags_override_the_file() {
    let run = |extra: &[&str]| {
        let mut args = vec!["cv", "examples/iris.nn", "examples/iris.csv", "--folds", "3", "--epochs", "5"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--json", "--quiet"]);
        json(&args)
    };
    let file = run(&[]);
    assert_eq!(file["shuffle"], false, "iris.nn visits rows in file order");
    let shuffled = run(&["--shuffle"]);
    assert_eq!(shuffled["shuffle"], true);
    assert_ne!(figures(&shuffled, "loss"), figures(&file, "loss"), "another order, other weights");
    let ordered = run(&["--shuffle", "--no-shuffle"]);
    assert_eq!(figures(&ordered, "loss"), figures(&file, "loss"), "the last flag wins");
    let batched = run(&["--batch", "7"]);
    assert_eq!(batched["batch"], 7);
    assert_ne!(figures(&batched, "loss"), figures(&file, "loss"));
    let out = nnc(&["cv", "examples/iris.nn", "examples/iris.csv", "--batch", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Ctrl-C during a fold: the folds finished before it are reported (over
/// their number), the interrupted one is not, and the status is 130; during
/// the first fold, nothing is reported.
#[test]
fn sigint_reports_the_folds_finished() {
    use std::io::Read;
    // Waits for `marker` on the child's stderr, sends SIGINT, and returns
    // the status, stdout and stderr.
    let interrupt = |epochs: &str, marker: &str| {
        let args = ["cv", "examples/digits.nn", "examples/digits.csv", "--folds", "3", "--epochs", epochs, "--json"];
        let (child, mut stderr, mut seen) = common::spawn_until(&args, marker);
        common::sigint(&child);
        stderr.read_to_end(&mut seen).expect("read stderr");
        let output = child.wait_with_output().expect("nnc ends");
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).to_string();
        (output.status.code(), text(&output.stdout), text(&seen))
    };
    // Folds of a few seconds each: interrupted in the second.
    let (status, stdout, stderr) = interrupt("3000", "fold 1/3");
    assert_eq!(status, Some(130), "{stderr}");
    let out: Value = serde_json::from_str(&stdout).expect("the finished folds as JSON");
    let finished = out["folds_finished"].as_u64().expect("folds_finished") as usize;
    assert!(finished == 1 || finished == 2, "{out}");
    assert_eq!(out["interrupted"], true);
    assert_eq!(out["folds"].as_array().expect("folds").len(), finished);
    assert_eq!(out["trainings"], finished);
    assert!(stderr.contains(&format!("interrupted during fold {} of 3", finished + 1)), "{stderr}");
    let loss = figures(&out, "loss");
    assert_eq!(out["mean"]["loss"].as_f64().unwrap(), loss.iter().sum::<f64>() / finished as f64);
    // In the first fold: nothing to report.
    let (status, stdout, stderr) = interrupt("10000000", "compiled");
    assert_eq!(status, Some(130), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("no fold finished"), "{stderr}");
}
