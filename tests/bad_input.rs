//! Bad files, bad flags, divergence and absurd sizes, through the `nnc`
//! binary: each gets a clear message and the documented exit code (0 ok,
//! 1 the input is wrong, 2 usage, 3 diverged), and no output file is ever
//! left half-written: on failure the final file is absent (or untouched) and
//! no temporary file remains.

mod common;
use common::nnc;

use nnc::runtime::train::Params;
use nnc::runtime::weights;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `nnc args`, expects exit `code` and `fragment` in stderr; returns stderr.
#[track_caller]
fn fails(args: &[&str], code: i32, fragment: &str) -> String {
    let output = nnc(args);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(code), "nnc {args:?}: expected exit {code}\n{err}");
    assert!(err.contains(fragment), "nnc {args:?}: expected `{fragment}` in\n{err}");
    assert!(!err.contains("panicked"), "nnc {args:?}: {err}");
    err
}

#[track_caller]
fn succeeds(args: &[&str]) -> Output {
    let output = nnc(args);
    assert_eq!(output.status.code(), Some(0), "nnc {args:?}\n{}", stderr(&output));
    output
}

fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bad_input").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

const SEED: &str = "examples/seed.nn";
const SEED_CSV: &str = "examples/seed.csv";
const MINIMIZE: &str = "examples/minimize.nn";

// ---------------------------------------------------------------------------
// Input files

#[test]
fn a_missing_model_or_data_file() {
    for command in ["check", "run", "grad", "ir"] {
        fails(&[command, "examples/nope.nn"], 1, "cannot read examples/nope.nn: No such file");
    }
    fails(&["check", SEED, "examples/nope.csv"], 1, "examples/nope.csv");
    fails(&["run", SEED, "examples/nope.csv"], 1, "cannot read the data file");
    fails(&["run", SEED, SEED_CSV, "--validation-data", "nope.csv"], 1, "nope.csv");
    fails(&["predict", "examples/iris.nn", "nope.csv", "--weights", "nope.safetensors"], 1, "nope.safetensors");
}

#[test]
fn a_directory_where_a_file_is_expected() {
    let dir = scratch("directories");
    let d = s(&dir);
    fails(&["check", d], 1, "is a directory, not a model file");
    fails(&["run", d], 1, "is a directory, not a model file");
    fails(&["check", SEED, d], 1, "is a directory, not a data file");
    fails(&["run", SEED, d], 1, "is a directory, not a data file");
    fails(&["run", SEED, SEED_CSV, "--validation-data", d], 1, "is a directory, not a data file");
    fails(&["run", SEED, SEED_CSV, "--init-weights", d], 1, "Is a directory");
    fails(&["run", SEED, SEED_CSV, "--epochs", "1", "--save-weights", d], 1, "it is a directory");
    fails(&["run", SEED, SEED_CSV, "--epochs", "1", "--log", d], 1, "it is a directory");
    let weights = dir.join("w.safetensors");
    succeeds(&["run", SEED, SEED_CSV, "--epochs", "1", "--quiet", "--save-weights", s(&weights)]);
    fails(&["predict", SEED, SEED_CSV, "--weights", s(&weights), "--out", d], 1, "it is a directory");
    fails(&["predict", SEED, d, "--weights", s(&weights)], 1, "is a directory, not a data file");
    assert_eq!(entries(&dir), ["w.safetensors"], "nothing else was written");
}

#[test]
fn unreadable_files() {
    // Running as root, permission bits do not stop reads; /proc/self/mem
    // opens but cannot be read at offset 0.
    fails(&["check", "/proc/self/mem"], 1, "cannot read /proc/self/mem");
    fails(&["check", SEED, "/proc/self/mem"], 1, "cannot read the data file");
    fails(&["run", SEED, SEED_CSV, "--init-weights", "/proc/self/mem"], 1, "cannot read weights file /proc/self/mem");
}

#[test]
fn a_model_that_is_not_text_or_never_ends() {
    let dir = scratch("not_text");
    let model = dir.join("binary.nn");
    std::fs::write(&model, b"param x = 0\nloss x^2 # \xC3\x28\n").unwrap();
    fails(&["check", s(&model)], 1, "binary.nn:2:12: the file is not UTF-8 text (byte 0xC3)");
    // A device that never ends is refused after a bounded read.
    let start = Instant::now();
    fails(&["check", "/dev/zero"], 1, "/dev/zero");
    fails(&["check", SEED, "/dev/zero"], 1, "/dev/zero");
    assert!(start.elapsed() < Duration::from_secs(30), "{:?}", start.elapsed());
}

#[test]
fn weights_that_are_not_weights() {
    let dir = scratch("not_weights");
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, "not a safetensors file").unwrap();
    fails(&["run", SEED, SEED_CSV, "--init-weights", s(&junk)], 1, "junk.safetensors");
    // Another model's weights.
    let iris = dir.join("iris.safetensors");
    succeeds(&["run", "examples/iris.nn", "examples/iris.csv", "--epochs", "1", "--quiet", "--save-weights", s(&iris)]);
    fails(&["run", SEED, SEED_CSV, "--init-weights", s(&iris)], 1, "iris.safetensors");
    fails(&["predict", SEED, SEED_CSV, "--weights", s(&iris)], 1, "iris.safetensors");
}

// ---------------------------------------------------------------------------
// Output files

/// Every way an output cannot be written, for `--save-weights`, `--log` and
/// `predict --out`: refused before training (so nothing is written at all,
/// not even the other outputs), with exit code 1.
#[test]
fn unwritable_outputs_are_refused_before_any_work() {
    let dir = scratch("unwritable");
    let a_file = dir.join("a_file");
    std::fs::write(&a_file, "I am a file").unwrap();
    let log = dir.join("log.csv");
    let weights = dir.join("w.safetensors");
    let bad_paths = [
        (a_file.join("x"), "Not a directory"),
        (dir.join("no_such_dir").join("x"), "No such file or directory"),
        (PathBuf::from("/proc/nope/x"), "No such file or directory"),
        (PathBuf::from("/proc/version"), "cannot write"),
    ];
    for (bad, why) in &bad_paths {
        let err = fails(
            &["run", SEED, SEED_CSV, "--epochs", "1", "--save-weights", s(bad), "--log", s(&log)],
            1,
            &format!("cannot write weights file {}", bad.display()),
        );
        assert!(err.contains(why), "{err}");
        fails(&["run", SEED, SEED_CSV, "--epochs", "1", "--log", s(bad), "--save-weights", s(&weights)], 1, why);
        fails(&["run", MINIMIZE, "--log", s(bad)], 1, &format!("cannot write log file {}", bad.display()));
    }
    assert_eq!(entries(&dir), ["a_file"], "no output and no temporary file was left");
    assert_eq!(std::fs::read_to_string(&a_file).unwrap(), "I am a file");

    succeeds(&["run", SEED, SEED_CSV, "--epochs", "1", "--quiet", "--save-weights", s(&weights)]);
    for (bad, why) in &bad_paths {
        let err = fails(&["predict", SEED, SEED_CSV, "--weights", s(&weights), "--out", s(bad)], 1, why);
        assert!(err.contains("cannot write output file"), "{err}");
    }
    assert_eq!(entries(&dir), ["a_file", "w.safetensors"]);
}

/// An output naming one of the inputs would destroy it: a usage error.
#[test]
fn outputs_never_overwrite_inputs() {
    let dir = scratch("overwrite");
    let model = dir.join("seed.nn");
    let data = dir.join("seed.csv");
    std::fs::copy(root().join(SEED), &model).unwrap();
    std::fs::copy(root().join(SEED_CSV), &data).unwrap();
    let (m, d) = (s(&model), s(&data));
    let before = (std::fs::read(&model).unwrap(), std::fs::read(&data).unwrap());
    fails(&["run", m, d, "--epochs", "1", "--log", d], 2, "--log");
    fails(&["run", m, d, "--epochs", "1", "--save-weights", m], 2, "would overwrite the model file");
    fails(&["run", m, d, "--epochs", "1", "--validation-data", d, "--log", d], 2, "would overwrite");
    let log = dir.join("out.csv");
    fails(&["run", m, d, "--epochs", "1", "--log", s(&log), "--save-weights", s(&log)], 2, "both name");
    // The same file spelled differently is still the same file.
    let spelled = dir.join(".").join("seed.csv");
    fails(&["run", m, d, "--epochs", "1", "--log", s(&spelled)], 2, "would overwrite the data file");
    let weights = dir.join("w.safetensors");
    succeeds(&["run", m, d, "--epochs", "1", "--quiet", "--save-weights", s(&weights)]);
    fails(&["predict", m, d, "--weights", s(&weights), "--out", d], 2, "would overwrite the data file");
    fails(&["predict", m, d, "--weights", s(&weights), "--out", s(&weights)], 2, "would overwrite the weights file");
    assert_eq!((std::fs::read(&model).unwrap(), std::fs::read(&data).unwrap()), before, "inputs untouched");
    // Continuing from weights and saving over them is allowed.
    succeeds(&["run", m, d, "--epochs", "1", "--quiet", "--init-weights", s(&weights), "--save-weights", s(&weights)]);
    assert_eq!(entries(&dir), ["seed.csv", "seed.nn", "w.safetensors"]);
}

#[test]
fn a_failed_run_leaves_outputs_absent_or_untouched() {
    let dir = scratch("failed_run");
    let weights = dir.join("w.safetensors");
    let log = dir.join("log.csv");
    std::fs::write(&weights, "old weights").unwrap();
    // A data error after the outputs were checked: nothing is written.
    let bad_csv = dir.join("bad.csv");
    std::fs::write(&bad_csv, "a,b,c,y\n1,2,3,x\n").unwrap();
    fails(&["run", SEED, s(&bad_csv), "--save-weights", s(&weights), "--log", s(&log)], 1, "bad.csv:2:4");
    assert_eq!(std::fs::read_to_string(&weights).unwrap(), "old weights");
    assert_eq!(entries(&dir), ["bad.csv", "w.safetensors"], "no log, no temporary file");
    // A good run replaces both atomically.
    succeeds(&["run", SEED, SEED_CSV, "--epochs", "2", "--quiet", "--save-weights", s(&weights), "--log", s(&log)]);
    assert_eq!(entries(&dir), ["bad.csv", "log.csv", "w.safetensors"]);
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 3, "a header and two epochs");
}

// ---------------------------------------------------------------------------
// Flags

#[test]
fn shuffle_and_no_shuffle_the_last_one_wins() {
    let err = stderr(&succeeds(&["run", SEED, SEED_CSV, "--epochs", "1", "--shuffle", "--no-shuffle"]));
    assert!(err.contains("rows       file order (flag)"), "{err}");
    let err = stderr(&succeeds(&["run", SEED, SEED_CSV, "--epochs", "1", "--no-shuffle", "--shuffle"]));
    assert!(err.contains("rows       shuffled each epoch (flag)"), "{err}");
}

#[test]
fn conflicting_and_misplaced_flags_are_usage_errors() {
    let run = |extra: &[&'static str]| [&["run", SEED, SEED_CSV][..], extra].concat();
    fails(&run(&["--validation", "0.2", "--validation-data", SEED_CSV]), 2, "cannot be used with");
    fails(&["run", MINIMIZE, "--epochs", "3"], 2, "--epochs needs a model with a data block; use --steps");
    fails(&["run", MINIMIZE, "--batch", "3"], 2, "--batch needs a model with a data block");
    fails(&["run", MINIMIZE, "--shuffle"], 2, "--shuffle needs a model with a data block");
    fails(&["run", MINIMIZE, "--validation", "0.5"], 2, "--validation needs a model with a data block");
    fails(&run(&["--steps", "3"]), 2, "--steps is for models without data");
    fails(&["run", MINIMIZE, SEED_CSV], 2, "has no data block, so the data file");
    fails(&["check", MINIMIZE, SEED_CSV], 2, "has no data block");
    fails(&["run", SEED], 2, "has a data block: give a CSV file");
    fails(&["predict", MINIMIZE, SEED_CSV, "--weights", "w"], 2, "has no data block");
}

#[test]
fn out_of_range_flag_values_are_usage_errors() {
    let run = |extra: &[&'static str]| [&["run", SEED, SEED_CSV][..], extra].concat();
    fails(&run(&["--epochs", "0"]), 2, "at least 1");
    fails(&run(&["--batch", "0"]), 2, "--batch must be at least 1");
    for lr in ["--lr=0", "--lr=-1", "--lr=nan", "--lr=inf"] {
        fails(&run(&[lr]), 2, "--lr must be a positive number");
    }
    // Without `=`, clap reads `-1` as a flag: still a usage error.
    fails(&run(&["--lr", "-1"]), 2, "unexpected argument '-1'");
    for v in ["--validation=1", "--validation=1.5", "--validation=-0.1", "--validation=nan"] {
        fails(&run(&[v]), 2, "--validation is a fraction");
    }
    fails(&run(&["--epochs", "many"]), 2, "invalid value");
    fails(&run(&["--epochs", "-1"]), 2, "");
    fails(&run(&["--frobnicate"]), 2, "unexpected argument");
    fails(&["run", MINIMIZE, "--steps", "0"], 2, "at least 1");
    // A validation split that leaves no training rows is about the data: exit 1.
    let dir = scratch("tiny");
    let tiny = dir.join("tiny.csv");
    std::fs::write(&tiny, "a,b,c,y\n1,2,3,4\n").unwrap();
    fails(&["run", SEED, s(&tiny), "--validation", "0.9"], 1, "leaves no training rows");
}

// ---------------------------------------------------------------------------
// Divergence

/// `--lr 1e6` blows up in the first epoch: exit 3, the epoch named, a
/// smaller learning rate suggested, and with `--save-weights` the last good
/// weights — the initial ones — saved, finite, and loadable to train on.
#[test]
fn divergence_keeps_the_last_good_weights() {
    let dir = scratch("divergence");
    let weights = dir.join("last_good.safetensors");
    let log = dir.join("log.csv");
    let err = fails(
        &["run", SEED, SEED_CSV, "--lr", "1e6", "--save-weights", s(&weights), "--log", s(&log)],
        3,
        "training diverged in epoch 1",
    );
    assert!(err.contains("smaller learning rate"), "{err}");
    assert!(err.contains("last good weights"), "{err}");
    assert!(err.contains(s(&weights)), "{err}");
    assert_eq!(entries(&dir), ["last_good.safetensors", "log.csv"], "no temporary files");

    let text = std::fs::read_to_string(root().join(SEED)).unwrap();
    let program = nnc::pipeline::frontend(&text).unwrap_or_else(|_| panic!("seed.nn checks")).program;
    let (params, _) = weights::load(&weights, &program).expect("the saved weights load");
    assert!(params.values.iter().all(|v| v.is_finite()));
    let initial = Params::init(&program, 0);
    assert_eq!(params.values, initial.values, "diverged in epoch 1: the last good weights are the initial ones");

    // They train with a sane learning rate.
    succeeds(&["run", SEED, SEED_CSV, "--epochs", "2", "--quiet", "--init-weights", s(&weights)]);
}

#[test]
fn divergence_without_data_names_the_step() {
    let dir = scratch("divergence_steps");
    let model = dir.join("blowup.nn");
    std::fs::write(&model, "param x = 2\nloss x^4\ntrain { optimizer = sgd(lr = 10) steps = 50 }\n").unwrap();
    let weights = dir.join("w.safetensors");
    let err = fails(&["run", s(&model), "--save-weights", s(&weights)], 3, "diverged");
    assert!(err.contains("smaller learning rate"), "{err}");
    let text = std::fs::read_to_string(&model).unwrap();
    let program = nnc::pipeline::frontend(&text).unwrap_or_else(|_| panic!("checks")).program;
    let (params, _) = weights::load(&weights, &program).expect("the saved weights load");
    assert!(params.values.iter().all(|v| v.is_finite()), "{:?}", params.values);
}

// ---------------------------------------------------------------------------
// Limits: absurd sizes, deep nesting, long files — a diagnostic or a quick
// success, never a crash, an allocation failure or minutes of CPU.

fn check_text(test: &str, text: &str) -> (Option<i32>, String, Duration) {
    let dir = scratch(test);
    let model = dir.join("model.nn");
    std::fs::write(&model, text).unwrap();
    let start = Instant::now();
    let output = nnc(&["check", s(&model)]);
    let elapsed = start.elapsed();
    let err = stderr(&output);
    assert!(!err.contains("panicked") && !err.contains("stack overflow"), "{test}: {err}");
    (output.status.code(), err, elapsed)
}

#[test]
fn absurd_sizes_are_diagnostics() {
    let data = "data { input x[4] target y[1] }\n";
    for (test, model, code) in [
        ("units", "model { out = dense(x, 1000000000) }", "E0304"),
        ("units_1e300", "model { out = dense(x, 1e300) }", "E0304"),
        ("units_overflow", "model { out = dense(x, 1e999) }", "E0002"),
        ("params", "model { h = dense(x, 65536) g = dense(h, 65536) out = dense(g, 1) }", "E0304"),
    ] {
        let text = format!("{data}{model}\nloss mse(out, y)\n");
        let (code_got, err, elapsed) = check_text(test, &text);
        assert_eq!(code_got, Some(1), "{test}: {err}");
        assert!(err.contains(code), "{test}: {err}");
        assert!(elapsed < Duration::from_secs(20), "{test}: {elapsed:?}");
    }
    let (code, err, _) = check_text(
        "input_width",
        "data { input x[100000] target y[1] }\nmodel { out = dense(x, 1) }\nloss mse(out, y)\n",
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("E0304"), "{err}");
}

#[test]
fn deep_nesting_is_a_diagnostic() {
    let n = 100_000;
    for (test, text) in [
        ("parens", format!("param x = 1\nloss {}x{}\n", "(".repeat(n), ")".repeat(n))),
        ("calls", format!("param x = 1\nloss {}x{}\n", "exp(".repeat(n), ")".repeat(n))),
        ("lists", format!("data {{ input x[2] target y[1] }}\nmodel {{ h = dense(x, 2, {}) }}\n", "[".repeat(n))),
        ("minus", format!("param x = 1\nloss {}x\n", "-".repeat(10_000))),
        ("sum", format!("param x = 1\nloss x{}\n", " + x".repeat(10_000))),
    ] {
        let (code, err, elapsed) = check_text(test, &text);
        assert_eq!(code, Some(1), "{test}: {err}");
        assert!(err.contains("E0003"), "{test}: {err}");
        assert!(elapsed < Duration::from_secs(30), "{test}: {elapsed:?}");
    }
}

/// Just under the nesting limit, every stage after the parser copes too
/// (on the 2 MiB stack of a spawned thread).
#[test]
fn nesting_at_the_limit_checks_and_differentiates() {
    let depth = nnc::syntax::MAX_DEPTH - 2;
    let texts = [
        format!("param x = 0.5\nloss {}x{}\n", "tanh(".repeat(depth), ")".repeat(depth)),
        format!("param x = 0.5\nloss {}x{}\n", "(x * ".repeat(depth / 2), ")".repeat(depth / 2)),
        format!("param x = 0.5\nloss x{}\n", " - x".repeat(depth)),
        format!("param x = 0.5\nloss x{}\n", "^x".repeat(depth / 2)),
    ];
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            for text in &texts {
                let front = nnc::pipeline::frontend(text).unwrap_or_else(|_| panic!("{}", &text[..60]));
                let graphs = nnc::pipeline::graphs(&front.program);
                assert!(graphs.train.output("loss").is_some());
            }
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
}

#[test]
fn long_files_check_quickly() {
    // 1 MB of params.
    let mut text = String::from("loss p0^2\n");
    let mut i = 0;
    while text.len() < 1 << 20 {
        text.push_str(&format!("param p{i} = {i}\n"));
        i += 1;
    }
    let (code, err, elapsed) = check_text("many_params", &text);
    assert!(code == Some(0) || err.contains("E0003"), "{err}");
    assert!(elapsed < Duration::from_secs(30), "{i} params: {elapsed:?}");

    // A chain of 5000 layers.
    let mut text = String::from("data { input x[2] target y[1] }\nmodel {\n  h0 = dense(x, 2, tanh)\n");
    for i in 1..5000 {
        text.push_str(&format!("  h{i} = dense(h{}, 2, tanh)\n", i - 1));
    }
    text.push_str("  out = dense(h4999, 1)\n}\nloss mse(out, y)\n");
    let (code, err, elapsed) = check_text("many_layers", &text);
    assert_eq!(code, Some(0), "{err}");
    assert!(elapsed < Duration::from_secs(30), "5000 layers: {elapsed:?}");

    // Differentiating and simplifying a long chain.
    let mut text = String::from("data { input x[2] target y[1] }\nmodel {\n  h0 = dense(x, 2, tanh)\n");
    for i in 1..1000 {
        text.push_str(&format!("  h{i} = dense(h{}, 2, tanh)\n", i - 1));
    }
    text.push_str("  out = dense(h999, 1)\n}\nloss mse(out, y)\n");
    let dir = scratch("chain");
    std::fs::write(dir.join("chain.nn"), &text).unwrap();
    let start = Instant::now();
    succeeds(&["ir", s(&dir.join("chain.nn")), "--stage", "opt"]);
    assert!(start.elapsed() < Duration::from_secs(60), "1000 layers: {:?}", start.elapsed());

    // Twenty thousand errors: all counted, the first hundred drawn, quickly
    // (drawing one costs a pass over the file).
    let mut text = String::from("param x = 1\nloss x^2\nmodel {\n");
    for i in 0..20_000 {
        text.push_str(&format!("  h{i} = nope{i}\n"));
    }
    text.push_str("}\n");
    let (code, err, elapsed) = check_text("many_errors", &text);
    assert_eq!(code, Some(1), "{err}");
    let tail: String = err.chars().skip(err.chars().count().saturating_sub(300)).collect();
    assert!(err.contains("20000 errors in"), "{tail}");
    assert!(err.contains("… and 19900 more not shown"), "{tail}");
    assert_eq!(err.matches("error[E").count(), 100, "{tail}");
    assert!(elapsed < Duration::from_secs(30), "20000 errors: {elapsed:?}");

    // A megabyte-long name and a megabyte of spaces.
    let long = "a".repeat(1 << 20);
    let (code, err, elapsed) = check_text("long_name", &format!("param {long} = 1\nloss {long}^2 + b\n"));
    assert_eq!(code, Some(1), "{}", err.chars().take(500).collect::<String>());
    assert!(err.len() < 4 << 20, "{} bytes of messages", err.len());
    assert!(elapsed < Duration::from_secs(30), "long name: {elapsed:?}");
    let (code, err, elapsed) = check_text("spaces", &format!("param x = 1\nloss{}x^2\n", " ".repeat(1 << 20)));
    assert_eq!(code, Some(0), "{err}");
    assert!(elapsed < Duration::from_secs(30), "spaces: {elapsed:?}");
}

#[test]
fn class_indices_out_of_range_name_the_row_and_column() {
    let dir = scratch("class_indices");
    let model = dir.join("model.nn");
    std::fs::write(
        &model,
        "data { input x[2] target y[1] }\nmodel { out = dense(x, 3, softmax) }\nloss cross_entropy(out, y)\n",
    )
    .unwrap();
    let good = dir.join("good.csv");
    std::fs::write(&good, "a,b,label\n0.1,0.2,0\n0.3,0.4,2\n0.5,0.6,1\n").unwrap();
    succeeds(&["run", s(&model), s(&good), "--epochs", "2", "--quiet"]);
    for (bad, shown) in [("3", "class `3`"), ("-1", "class `-1`"), ("1.5", "class `1.5`")] {
        let data = dir.join("bad.csv");
        std::fs::write(&data, format!("a,b,label\n0.1,0.2,0\n0.3,0.4,{bad}\n")).unwrap();
        let err = fails(&["run", s(&model), s(&data), "--quiet"], 1, shown);
        assert!(err.contains("from 0 to 2"), "{err}");
        assert!(err.contains(":3:3") || err.contains("row 3"), "names the row and column: {err}");
        assert!(err.contains("class indices for `cross_entropy` over 3 classes"), "{err}");
    }
}
