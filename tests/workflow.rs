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

/// The log's `best` column marks each epoch whose weights became the kept
/// ones (each new best of the monitored figure, here val_accuracy), and the
/// plot marks the last of them: the best epoch, not the lowest val_loss.
#[test]
fn the_log_and_plot_mark_the_epoch_whose_weights_are_kept() {
    let dir = scratch("best_column");
    let model = dir.join("acc.nn");
    std::fs::write(&model, EARLY.replace("STOP", "early_stop(patience = 15, monitor = val_accuracy)")).expect("write");
    let (log, plot) = (dir.join("log.csv"), dir.join("curves.svg"));
    let args =
        ["run", path(&model), "examples/iris.csv", "--json", "--quiet", "--log", path(&log), "--plot", path(&plot)];
    let json = run_json(&args);
    let best_epoch = json["early_stop"]["best_epoch"].as_u64().expect("a best epoch");
    let text = std::fs::read_to_string(&log).expect("log");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let (acc, best) = (
        header.iter().position(|h| *h == "val_accuracy").expect("val_accuracy"),
        header.iter().position(|h| *h == "best").expect("best"),
    );
    let mut record = f64::NEG_INFINITY;
    let mut last_marked = 0;
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let value: f64 = cells[acc].parse().expect("number");
        let improved = value > record;
        record = record.max(value);
        assert_eq!(cells[best], if improved { "1" } else { "0" }, "{text}");
        if improved {
            last_marked = cells[0].parse().expect("epoch");
        }
    }
    assert_eq!(last_marked, best_epoch, "{text}");
    let svg = std::fs::read_to_string(&plot).expect("plot");
    assert!(svg.contains(&format!(">kept epoch {best_epoch}<")), "the plot marks epoch {best_epoch}");
    assert!(svg.contains(&format!("the weights kept are epoch {best_epoch}")), "subtitle");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The shipped example stops well before its 500 epochs and keeps the best
/// epoch, which its log marks.
#[test]
fn the_early_stopping_example_stops_and_keeps_its_best_epoch() {
    let dir = scratch("example");
    let log = dir.join("log.csv");
    let json =
        run_json(&["run", "examples/early_stop.nn", "examples/digits.csv", "--json", "--quiet", "--log", path(&log)]);
    let stop = &json["early_stop"];
    assert_eq!(stop["stopped"], true, "{json}");
    let (run, best) = (stop["epochs_run"].as_u64().unwrap(), stop["best_epoch"].as_u64().unwrap());
    assert!(run < 500 && best + 10 == run, "{json}");
    assert!(json["validation"]["accuracy"].as_f64().unwrap() >= 0.97, "{json}");
    let text = std::fs::read_to_string(&log).expect("log");
    let marked = text.lines().skip(1).filter(|l| l.ends_with(",1")).last().expect("a marked row");
    assert_eq!(marked.split(',').next(), Some(best.to_string().as_str()), "{text}");
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

/// The article's example stops on the gradient: `|f'(x)| = |x² − 1|`
/// written out by hand at the final x is what nnc reports, and it is below
/// the tolerance, reached before the step limit.
#[test]
fn minimize_stops_when_the_gradient_is_below_the_tolerance() {
    let json = run_json(&["run", "examples/minimize.nn", "--json", "--quiet"]);
    let x = json["params"]["x"].as_f64().expect("x");
    let gradient = &json["gradient"];
    let norm = gradient["norm"].as_f64().expect("norm");
    assert!((norm - (x * x - 1.0).abs()).abs() < 1e-9, "reported {norm}, |x² − 1| = {}", (x * x - 1.0).abs());
    assert!(norm < 1e-6, "{json}");
    assert_eq!(gradient["reached"], true, "{json}");
    let steps = gradient["steps"].as_u64().expect("steps");
    assert!(steps > 10 && steps < 200, "{json}");
    assert!((x - 1.0).abs() < 1e-6, "x = {x}");
    // One step fewer and the gradient was still above the tolerance.
    let earlier = run_json(&["run", "examples/minimize.nn", "--json", "--quiet", "--steps", &(steps - 1).to_string()]);
    assert_eq!(earlier["gradient"]["reached"], false, "{earlier}");
    let out = nnc(&["run", "examples/minimize.nn"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("stopped after {steps} steps: |∂loss/∂x| = ")), "{stderr}");
}

/// Ctrl-C during a long run: training stops after the current epoch, the
/// weights and the log are written whole, the status is 130. A second
/// Ctrl-C at once leaves no temporary file behind.
#[test]
fn sigint_stops_a_long_run_and_writes_the_outputs() {
    use std::io::Read;
    let dir = scratch("sigint");
    let (weights, log) = (dir.join("w.safetensors"), dir.join("log.csv"));
    let args = ["run", "examples/digits.nn", "examples/digits.csv", "--epochs", "10000000"];
    let outputs = ["--save-weights", path(&weights), "--log", path(&log)];
    // The first epoch's progress line (not the echoed `epochs` setting): training is under way.
    let (mut child, mut stderr, mut seen) = common::spawn_until(&[&args[..], &outputs].concat(), "/10000000  loss");
    common::sigint(&child);
    stderr.read_to_end(&mut seen).expect("read stderr");
    let status = child.wait().expect("nnc ends");
    let text = String::from_utf8_lossy(&seen);
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(text.contains("interrupted after"), "{text}");
    assert!(text.contains("written: weights"), "{text}");
    let epochs: usize = text
        .split("interrupted after ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("epochs");
    let rows = std::fs::read_to_string(&log).expect("the log is written").lines().count();
    assert_eq!(rows, epochs + 1, "one row per epoch and the header");
    let saved = tensors(&std::fs::read(&weights).expect("the weights are written"));
    assert_eq!(saved.len(), 5, "{:?}", saved.keys());

    // Two interrupts during one long epoch (200 000 rows through a
    // 20-256-256-3 network, seconds per epoch): out at once, before the
    // epoch ends, with no output and no temporary file left.
    let again = dir.join("again");
    std::fs::create_dir_all(&again).expect("dir");
    let mut csv = String::with_capacity(200_000 * 45);
    let mut rng = common::Rng::new(7);
    for r in 0..200_000 {
        for _ in 0..20 {
            csv.push_str(&format!("{:.2},", rng.uniform(-1.0, 1.0)));
        }
        csv.push_str(&format!("{}\n", r % 3));
    }
    std::fs::write(again.join("big.csv"), csv).expect("write");
    let model = "data { input x[20]  target y = one_hot(3) }\n\
                 model { h = dense(x, 256, relu)  g = dense(h, 256, relu)  out = dense(g, 3, softmax) }\n\
                 loss cross_entropy(out, y)\ntrain { epochs = 1000  batch = 64 }\n";
    std::fs::write(again.join("big.nn"), model).expect("write");
    let [model, data, weights, log] = ["big.nn", "big.csv", "w.safetensors", "log.csv"].map(|name| again.join(name));
    let args = ["run", path(&model), path(&data), "--threads", "1"];
    let outputs = ["--save-weights", path(&weights), "--log", path(&log)];
    let (child, mut stderr, mut seen) = common::spawn_until(&[&args[..], &outputs].concat(), "compiled");
    let start = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_millis(200));
    for _ in 0..2 {
        common::sigint(&child);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let output = child.wait_with_output().expect("nnc ends");
    stderr.read_to_end(&mut seen).expect("read stderr");
    let text = String::from_utf8_lossy(&seen);
    assert_eq!(output.status.code(), Some(130), "{text}");
    assert!(output.stdout.is_empty(), "the run went on to report: {}", String::from_utf8_lossy(&output.stdout));
    assert!(!text.contains("/1000  loss"), "the first epoch finished before the second Ctrl-C: {text}");
    assert!(start.elapsed().as_secs_f64() < 5.0, "took {:?} to exit", start.elapsed());
    for name in ["w.safetensors", "log.csv"] {
        assert!(!again.join(name).exists(), "{name} was written by an interrupted epoch");
    }
    for entry in std::fs::read_dir(&again).expect("dir") {
        let name = entry.expect("entry").file_name().to_string_lossy().to_string();
        assert!(!name.ends_with(".tmp"), "a temporary file is left: {name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn swapped_arguments_are_named() {
    for command in ["run", "predict", "eval"] {
        let mut args = vec![command, "examples/iris.csv", "examples/iris.nn"];
        if command != "run" {
            args.extend(["--weights", "tests/data/eval/iris.safetensors"]);
        }
        let out = nnc(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("looks like a data file, not a model"), "{stderr}");
        assert!(stderr.contains(&format!("nnc {command} examples/iris.nn examples/iris.csv")), "{stderr}");
    }
}

#[test]
fn counts_and_zeros_print_plainly() {
    let out = nnc(&["run", "examples/iris.nn", "examples/iris.csv", "--epochs", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("trained 1 epoch in"), "{stderr}");
    assert!(stderr.contains(" rows/s)"), "{stderr}");
    // A loss that rounds to zero from below prints without a sign.
    let dir = scratch("zero");
    let model = dir.join("zero.nn");
    std::fs::write(&model, "param x = 0\nloss 1e-9 * x - 1e-9\ntrain { steps = 1 }\n").expect("write");
    let out = nnc(&["run", path(&model)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("final loss 0.000000 "), "{stdout}");
    assert!(!stdout.contains("final loss -"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
