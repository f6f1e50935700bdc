//! Data as users have it (issue 10): string class labels, categorical
//! inputs, missing cells (an error, `missing = drop`, `fill(..)`), any
//! delimiter, validation splits — through the `nnc` binary. Expected values
//! are computed here from the file, independently of nnc.

mod common;
use common::{json, nnc, ok, s, write};

use std::path::{Path, PathBuf};

fn dir(name: &str) -> PathBuf {
    common::scratch("data_formats", name)
}

/// Runs and fails with exit code 1; returns stderr.
#[track_caller]
fn fails(args: &[&str]) -> String {
    let output = nnc(args);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "nnc {args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// The weights file's `nnc.preprocessing` entry for binding `name`.
fn preprocessing(weights: &Path, name: &str) -> serde_json::Value {
    let bytes = std::fs::read(weights).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    let list: serde_json::Value =
        serde_json::from_str(header["__metadata__"]["nnc.preprocessing"].as_str().unwrap()).unwrap();
    list.as_array().unwrap().iter().find(|b| b["name"] == name).unwrap().clone()
}

#[test]
fn penguins_train_from_the_file_as_it_comes() {
    let result = json(&["run", "examples/penguins.nn", "examples/penguins.csv", "--json", "--quiet"]);
    let val = result["validation"]["accuracy"].as_f64().unwrap();
    assert!(val >= 0.97, "validation accuracy {val}");
    // 344 rows, 11 with a missing cell; 20% of the 333 held out.
    assert_eq!(result["rows"], 266);
    assert_eq!(result["classes"], serde_json::json!(["Adelie", "Chinstrap", "Gentoo"]));
    let output = ok(&["run", "examples/penguins.nn", "examples/penguins.csv", "--epochs", "1"]);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("dropped 11 rows with a missing cell"), "{err}");
    assert!(err.contains("stratified by class"), "{err}");
    assert!(err.contains("y ← `species` one_hot 3 (Adelie, Chinstrap, Gentoo)"), "{err}");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(out.contains("per class  Adelie "), "{out}");
}

#[test]
fn string_labels_are_saved_and_predicted_in_a_fresh_process() {
    let d = dir("labels");
    let weights = d.join("w.safetensors");
    ok(&["run", "examples/penguins.nn", "examples/penguins.csv", "--quiet", "--save-weights", s(&weights)]);
    let y = preprocessing(&weights, "y");
    assert_eq!(y["categories"], serde_json::json!(["Adelie", "Chinstrap", "Gentoo"]), "sorted, as LabelEncoder");
    let island = preprocessing(&weights, "island");
    assert_eq!(island["categories"], serde_json::json!(["Biscoe", "Dream", "Torgersen"]));
    // Rows without the label column (and without missing cells).
    let text = std::fs::read_to_string("examples/penguins.csv").unwrap();
    let rows: Vec<&str> = text.lines().skip(1).filter(|l| !l.contains("NA")).collect();
    let species: Vec<&str> = rows.iter().map(|l| l.split(',').next().unwrap()).collect();
    let unlabelled: Vec<String> = rows.iter().map(|l| l.split_once(',').unwrap().1.to_string()).collect();
    let header = text.lines().next().unwrap().split_once(',').unwrap().1;
    let data = write(&d, "new.csv", &format!("{header}\n{}\n", unlabelled.join("\n")));
    let output = ok(&["predict", "examples/penguins.nn", &data, "--weights", s(&weights)]);
    let out = String::from_utf8(output.stdout).unwrap();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("class,p_Adelie,p_Chinstrap,p_Gentoo"));
    let predicted: Vec<&str> = lines.map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(predicted.len(), species.len());
    let right = predicted.iter().zip(&species).filter(|(p, s)| p == s).count();
    assert!(right as f64 / species.len() as f64 > 0.97, "{right} of {}", species.len());
    // An island training never saw: an error naming the row, column and known labels.
    let strange =
        write(&d, "strange.csv", &format!("{header}\n{}\n", unlabelled[0].replacen("Torgersen", "Atlantis", 1)));
    let err = fails(&["predict", "examples/penguins.nn", &strange, "--weights", s(&weights)]);
    assert!(err.contains("strange.csv:2:1: `Atlantis` in column `island` is not one of the 3 categories"), "{err}");
    assert!(err.contains("`Biscoe`, `Dream`, `Torgersen`"), "{err}");
    // A species label training never saw, in a labelled file.
    let labelled = write(&d, "labelled.csv", &format!("{}\nEmperor,{}\n", text.lines().next().unwrap(), unlabelled[0]));
    let err = fails(&["predict", "examples/penguins.nn", &labelled, "--weights", s(&weights)]);
    assert!(err.contains(":2:1: `Emperor` in column `species` is not one of the 3 categories"), "{err}");
    assert!(err.contains("`Adelie`, `Chinstrap`, `Gentoo`"), "{err}");
}

#[test]
fn a_given_number_of_classes_must_match_the_labels() {
    let d = dir("classes");
    let csv = write(&d, "d.csv", "a,b,kind\n1,2,cat\n3,4,dog\n5,6,cat\n7,8,bird\n");
    let model = write(
        &d,
        "m.nn",
        "data { input x = columns(a, b)  target y = one_hot(kind, 2) }\nmodel { out = dense(x, 2, softmax) }\nloss cross_entropy(out, y)\n",
    );
    let err = fails(&["run", &model, &csv, "--quiet"]);
    assert!(err.contains("error[E0309]"), "{err}");
    assert!(err.contains("has 3 classes but the binding declares 2"), "{err}");
    assert!(err.contains("m.nn:1:"), "located in the model: {err}");
    assert!(err.contains("`bird`, `cat`, `dog`"), "{err}");
    // Inferred: three classes, and the output layer must have three units.
    let model = write(
        &d,
        "m3.nn",
        "data { input x = columns(a, b)  target y = one_hot(kind) }\nmodel { out = dense(x, 3, softmax) }\nloss cross_entropy(out, y)\n",
    );
    let result = json(&["run", &model, &csv, "--epochs", "2", "--json", "--quiet"]);
    assert!(result["accuracy"].as_f64().is_some());
    // The class-index form, `column(kind)` with cross_entropy: labels too.
    let model = write(
        &d,
        "mc.nn",
        "data { input x = columns(a, b)  target y = column(kind) }\nmodel { out = dense(x, 3, softmax) }\nloss cross_entropy(out, y)\n",
    );
    let result = json(&["run", &model, &csv, "--epochs", "2", "--json", "--quiet"]);
    assert!(result["accuracy"].as_f64().is_some());
    // Without data, a count left to the data is a located error.
    let output = nnc(&["check", &model.replace("mc.nn", "m3.nn")]);
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("error[E0308]") && err.contains("comes from the data"), "{err}");
}

#[test]
fn fill_values_are_fitted_on_the_training_rows_and_saved() {
    let d = dir("fill");
    // 10 rows; the last 2 are held out (`last`), so the fit uses rows 1-8.
    let mut rows = Vec::new();
    let a = ["1", "NA", "4", "", "10", "2", "?", "8", "100", "NA"];
    let b = ["5", "6", "7", "8", "NaN", "9", "11", "13", "200", "300"];
    for k in 0..10 {
        rows.push(format!("{},{},{}", a[k], b[k], k % 2));
    }
    let csv = write(&d, "d.csv", &format!("a,b,y\n{}\n", rows.join("\n")));
    let model = write(
        &d,
        "m.nn",
        "data {\n  input p = columns(a) fill(mean, indicator)\n  input q = columns(b) fill(median)\n  target y = column(y)\n}\n\
         model { out = dense(concat(p, q), 1) }\nloss mse(out, y)\ntrain { validation = last(0.2) }\n",
    );
    let weights = d.join("w.safetensors");
    let output = ok(&["run", &model, &csv, "--epochs", "1", "--save-weights", s(&weights)]);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("filled 4 cells of `p`"), "{err}");
    assert!(err.contains("filled 1 cell of `q`"), "{err}");
    let present = |column: &[&str]| -> Vec<f64> {
        column[..8].iter().filter_map(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite()).collect()
    };
    let pa = present(&a);
    let mean = pa.iter().sum::<f64>() / pa.len() as f64;
    let mut pb = present(&b);
    pb.sort_by(f64::total_cmp);
    let median = (pb[pb.len() / 2 - 1] + pb[pb.len() / 2]) / 2.0;
    assert_eq!(pb.len(), 7, "one NaN among the training rows");
    let median = if pb.len() % 2 == 1 { pb[pb.len() / 2] } else { median };
    assert_eq!(preprocessing(&weights, "p")["fill"][0].as_f64().unwrap(), mean);
    assert_eq!(preprocessing(&weights, "q")["fill"][0].as_f64().unwrap(), median);
    // `missing = drop` instead: rows with any missing cell are dropped.
    let model = write(
        &d,
        "drop.nn",
        "data { input x = columns(a, b)  target y = column(y)  missing = drop }\nmodel { out = dense(x, 1) }\nloss mse(out, y)\n",
    );
    let result = json(&["run", &model, &csv, "--epochs", "1", "--json", "--quiet"]);
    assert_eq!(result["rows"], 5, "5 of the 10 rows have a missing cell");
}

#[test]
fn the_delimiter_can_be_given() {
    let d = dir("delimiter");
    let csv = write(&d, "d.txt", "a:b:y\n1:2:3\n4:5:6\n");
    let model = write(
        &d,
        "m.nn",
        "data { input x = columns(a, b)  target y = column(y) }\nmodel { out = dense(x, 1) }\nloss mse(out, y)\n",
    );
    let err = fails(&["run", &model, &csv, "--quiet"]);
    assert!(err.contains("has no column `a`") || err.contains("no column"), "{err}");
    let result = json(&["run", &model, &csv, "--delimiter", ":", "--epochs", "1", "--json", "--quiet"]);
    assert_eq!(result["rows"], 2);
    let output = nnc(&["run", &model, &csv, "--delimiter", "ab"]);
    assert_eq!(output.status.code(), Some(2), "a bad --delimiter is a usage error");
    // `nnc check` binds the same file with the same flags.
    assert!(fails(&["check", &model, &csv]).contains("no column"));
    let output = ok(&["check", &model, &csv, "--delimiter", ":", "--threads", "1"]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("ok — 2 rows"), "{output:?}");
    for bad in [&["--threads", "0"][..], &["--delimiter", "ab"], &["--gradcheck", "--threads", "0"]] {
        let output = nnc(&[&["check", model.as_str(), csv.as_str()][..], bad].concat());
        assert_eq!(output.status.code(), Some(2), "nnc check {bad:?} is a usage error");
    }
    // So does `nnc check --gradcheck`.
    assert!(fails(&["check", "--gradcheck", &model, &csv]).contains("no column"));
    let output = ok(&["check", "--gradcheck", &model, &csv, "--delimiter", ":", "--threads", "1"]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("rows 1-2 of"), "{output:?}");
}

#[test]
fn validation_splits_are_stratified_by_default_and_warn_when_skewed() {
    // iris is sorted by class: the last 20% is all virginica.
    let output = ok(&["check", "examples/iris.nn"]);
    drop(output);
    let d = dir("split");
    let last =
        write(&d, "last.nn", &common::example("iris.nn").replace("seed = 0", "seed = 0\n  validation = last(0.2)"));
    let output = ok(&["run", &last, "examples/iris.csv", "--epochs", "1"]);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("warning: the validation rows' classes"), "{err}");
    assert!(err.contains("is the file sorted by class?"), "{err}");
    // The default: each class keeps its share (10 of 50 each).
    let output = ok(&["run", "examples/iris.nn", "examples/iris.csv", "--epochs", "1", "--validation", "0.2"]);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!err.contains("warning"), "{err}");
    assert!(err.contains("120 rows for training, 30 for validation"), "{err}");
    // Seeded: the same seed, the same split (the same weights after training).
    let run = |seed: &str, name: &str| {
        let w = d.join(name);
        ok(&[
            "run",
            "examples/iris.nn",
            "examples/iris.csv",
            "--epochs",
            "2",
            "--validation",
            "0.2",
            "--seed",
            seed,
            "--quiet",
            "--save-weights",
            s(&w),
        ]);
        std::fs::read(w).unwrap()
    };
    assert_eq!(run("3", "a"), run("3", "b"));
}

#[test]
fn a_categorical_column_with_too_many_levels_is_refused() {
    let d = dir("levels");
    let rows: Vec<String> = (0..1500).map(|k| format!("id{k},{}", k % 2)).collect();
    let csv = write(&d, "d.csv", &format!("id,y\n{}\n", rows.join("\n")));
    let model = write(
        &d,
        "m.nn",
        "data { input i = one_hot(id)  target y = column(y) }\nmodel { out = dense(i, 1) }\nloss mse(out, y)\n",
    );
    let err = fails(&["run", &model, &csv, "--quiet"]);
    assert!(err.contains("column `id` has 1500 distinct values: more than the 1000 categories"), "{err}");
}

#[test]
fn a_numeric_binding_with_words_says_how_many() {
    let d = dir("words");
    let csv = write(&d, "d.csv", "a,b,y\n1,2,3\n1,two,3\n1,three,3\n");
    let model = write(
        &d,
        "m.nn",
        "data { input x = columns(a, b)  target y = column(y) }\nmodel { out = dense(x, 1) }\nloss mse(out, y)\n",
    );
    let err = fails(&["run", &model, &csv, "--quiet"]);
    assert!(err.contains("d.csv:3:2: `two` in column `b` is not a number (and 1 more cell in this column)"), "{err}");
    assert!(err.contains("one_hot(column)"), "{err}");
}

#[test]
fn parquet_gives_the_same_numbers_as_csv() {
    let d = dir("parquet");
    let run = |data: &str, name: &str| {
        let w = d.join(name);
        let args = ["run", "examples/penguins.nn", data, "--epochs", "5", "--quiet", "--save-weights", s(&w)];
        ok(&args);
        std::fs::read(&w).unwrap()
    };
    // tests/data/penguins.parquet: float, integer and dictionary-encoded
    // string columns with nulls (tests/data/make_parquet.py).
    assert_eq!(run("examples/penguins.csv", "csv"), run("tests/data/penguins.parquet", "parquet"));
    let weights = d.join("parquet");
    // Prediction needs every cell: the nulls are located by row and column.
    let err = fails(&["predict", "examples/penguins.nn", "tests/data/penguins.parquet", "--weights", s(&weights)]);
    assert!(err.contains("penguins.parquet:4:3: 19 missing cells in bound columns"), "{err}");
    let output = ok(&["check", "examples/penguins.nn", "tests/data/penguins.parquet"]);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(out.contains("333 rows (11 dropped for a missing cell)"), "{out}");
    // The same as one JSON object, with the time each step took.
    let result = json(&["check", "examples/penguins.nn", "tests/data/penguins.parquet", "--json"]);
    assert_eq!(result["task"], "classification into 3 classes");
    assert_eq!((result["data"]["rows"].as_u64(), result["data"]["dropped"].as_u64()), (Some(333), Some(11)));
    assert!(result["data"]["bindings"].as_str().is_some_and(|b| b.contains("species")), "{result}");
    let t = &result["timings_ms"];
    let (load, bind, total) = (t["load"].as_f64().unwrap(), t["bind"].as_f64().unwrap(), t["total"].as_f64().unwrap());
    assert!(load > 0.0 && bind > 0.0 && total >= load + bind, "{t}");
    // `--json` reports a check, not a gradient check.
    assert_eq!(nnc(&["check", "--json", "--gradcheck", "examples/penguins.nn"]).status.code(), Some(2));
}

#[test]
fn bad_parquet_files_are_located_errors() {
    let d = dir("bad_parquet");
    let bytes = std::fs::read("tests/data/penguins.parquet").unwrap();
    // Truncated: the footer is gone.
    let cut = d.join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = fails(&["run", "examples/penguins.nn", s(&cut), "--quiet"]);
    assert!(err.contains("cut.parquet") && err.contains("Parquet"), "{err}");
    // Every prefix and a few corrupted copies: errors, never a panic.
    for end in (0..bytes.len()).step_by(97) {
        let path = d.join("prefix.parquet");
        let mut damaged = bytes[..end].to_vec();
        if !damaged.starts_with(b"PAR1") {
            damaged.splice(0..0, b"PAR1".iter().copied());
        }
        std::fs::write(&path, &damaged).unwrap();
        let output = nnc(&["check", "examples/penguins.nn", s(&path)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "prefix {end}: {stderr}");
        assert_ne!(output.status.code(), Some(101), "prefix {end}: {stderr}");
    }
    // A column the model names but the file lacks: a diagnostic in the model.
    let model = write(
        &d,
        "m.nn",
        "data { input x = columns(bill_length_mm, beak)  target y = one_hot(species) }\nmodel { out = dense(x, 3, softmax) }\nloss cross_entropy(out, y)\n",
    );
    let err = fails(&["run", &model, "tests/data/penguins.parquet", "--quiet"]);
    assert!(err.contains("error[E0305]") && err.contains("no column `beak`"), "{err}");
    // A string column bound as numbers: the row and column.
    let model = write(
        &d,
        "n.nn",
        "data { input x = columns(bill_length_mm, island)  target y = one_hot(species) }\nmodel { out = dense(x, 3, softmax) }\nloss cross_entropy(out, y)\n",
    );
    let err = fails(&["run", &model, "tests/data/penguins.parquet", "--quiet"]);
    assert!(err.contains("penguins.parquet:1:2: `Torgersen` in column `island` is not a number"), "{err}");
}

/// A data file cut short by another program while nnc reads it (through a
/// memory map) is an error naming the file, never a death by a signal
/// ("Bus error"): a 15 MB file is cut to nothing at several moments of the
/// read; each run ends with a status of its own, and a failed one says
/// `error:` and the file.
#[test]
fn a_file_cut_short_while_read_is_an_error_not_a_crash() {
    use std::fmt::Write;
    let d = dir("cut_short");
    let model = write(
        &d,
        "m.nn",
        "data { input x[20]  target y = one_hot(3) } model { out = dense(x, 3, softmax) }
         loss cross_entropy(out, y) train { epochs = 1 }",
    );
    let mut text = (0..20).map(|c| format!("f{c},")).collect::<String>() + "label\n";
    for r in 0..100_000u64 {
        for c in 0..20u64 {
            let _ = write!(text, "{:.6},", ((r * 31 + c * 17) % 1000) as f64 / 997.0 - 0.5);
        }
        let _ = writeln!(text, "{}", r % 3);
    }
    let path = d.join("cut.csv");
    let mut faulted = 0;
    for delay_us in [0, 1000, 3000, 6000, 12_000, 25_000] {
        std::fs::write(&path, &text).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_nnc"))
            .args(["check", &model, s(&path)])
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("nnc starts");
        std::thread::sleep(std::time::Duration::from_micros(delay_us));
        std::fs::File::options().write(true).open(&path).unwrap().set_len(0).unwrap();
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(output.status.code().is_some(), "cut after {delay_us} µs: killed by {:?}: {stderr}", output.status);
        if !output.status.success() {
            assert!(stderr.contains("error:") && stderr.contains("cut.csv"), "cut after {delay_us} µs: {stderr}");
        }
        faulted += usize::from(stderr.contains("cut short while nnc read it"));
    }
    eprintln!("{faulted} of 6 cuts faulted the map");
}
