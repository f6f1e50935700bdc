//! The breadth of the language (issue 6) end to end, through the `nnc`
//! binary: each example of `examples/` that shows a feature group trains on
//! its CSV; dropout repeats and is absent from evaluation and prediction;
//! `nnc grad` prints user functions' derivatives; and the checker's new
//! diagnostics (recursion, arity, names in functions, `h.w`, losses that
//! need a particular output, dropout rates) carry their codes.
//!
//! The op-level oracles are elsewhere: `gradcheck.rs` (finite differences)
//! and `jit_vs_interp.rs` (kernels against the interpreter).

mod common;
use common::nnc;

use std::path::Path;

fn ok(args: &[&str]) -> String {
    let output = nnc(args);
    assert!(output.status.success(), "nnc {args:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args)).expect("one JSON object")
}

/// `nnc check` of a model written to a temporary file: the exit code and stderr.
fn check_source(name: &str, source: &str) -> (i32, String) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("language");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.nn"));
    std::fs::write(&path, source).unwrap();
    let output = nnc(&["check", path.to_str().unwrap()]);
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// The model checks, or the test fails with its diagnostics.
#[track_caller]
fn assert_checks(name: &str, source: &str) {
    let (code, stderr) = check_source(name, source);
    assert_eq!(code, 0, "{name}:\n{stderr}");
}

/// The model is rejected with `code` and a message containing `words`.
#[track_caller]
fn assert_error(name: &str, source: &str, code: &str, words: &str) {
    let (exit, stderr) = check_source(name, source);
    assert_eq!(exit, 1, "{name}: expected an error\n{stderr}");
    assert!(stderr.contains(&format!("error[{code}]")), "{name}: expected {code}\n{stderr}");
    assert!(stderr.contains(words), "{name}: expected {words:?}\n{stderr}");
}

// ---- the examples --------------------------------------------------------------------

/// (example, data, what it shows)
const EXAMPLES: &[(&str, &str)] =
    &[("activations", "iris"), ("functions", "diabetes"), ("skip", "iris"), ("losses", "diabetes"), ("binary", "iris")];

#[test]
fn every_stage_of_every_new_example_prints() {
    for (model, _) in EXAMPLES {
        let path = format!("examples/{model}.nn");
        for stage in ["ast", "graph", "grad", "opt", "kernel", "clif"] {
            assert!(!ok(&["ir", &path, "--stage", stage]).trim().is_empty(), "{model} {stage} printed nothing");
        }
        assert!(ok(&["grad", &path]).contains("d loss/d "), "{model}: no gradients printed");
    }
}

#[test]
fn activations_classify_iris_from_class_indices() {
    let result = json(&["run", "examples/activations.nn", "examples/iris.csv", "--json", "--quiet"]);
    assert!(result["accuracy"].as_f64().unwrap() >= 0.95, "{result}");
}

#[test]
fn skip_connections_and_dropout_classify_iris() {
    let result = json(&["run", "examples/skip.nn", "examples/iris.csv", "--json", "--quiet"]);
    assert!(result["accuracy"].as_f64().unwrap() >= 0.95, "{result}");
}

#[test]
fn regression_examples_fit_diabetes() {
    for model in ["functions", "losses"] {
        let path = format!("examples/{model}.nn");
        let result = json(&["run", &path, "examples/diabetes.csv", "--json", "--quiet"]);
        let r2 = result["metrics"]["r2"].as_f64().unwrap();
        assert!(r2 > 0.45, "{model}: R² {r2}\n{result}");
    }
}

#[test]
fn binary_cross_entropy_learns_versicolor() {
    let first = json(&["run", "examples/binary.nn", "examples/iris.csv", "--epochs", "1", "--json", "--quiet"]);
    let last = json(&["run", "examples/binary.nn", "examples/iris.csv", "--json", "--quiet"]);
    let (first, last) = (first["final_loss"].as_f64().unwrap(), last["final_loss"].as_f64().unwrap());
    assert!(last < 0.2 && last < first / 3.0, "binary cross-entropy {first} → {last}");
}

#[test]
fn dropout_runs_repeat_and_prediction_has_no_dropout() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("language-dropout");
    std::fs::create_dir_all(&dir).unwrap();
    let weights = dir.join("skip.safetensors");
    let weights = weights.to_str().unwrap();
    let run = || {
        let args = ["run", "examples/skip.nn", "examples/iris.csv", "--epochs", "5", "--json", "--quiet"];
        let mut args = args.to_vec();
        args.extend(["--save-weights", weights]);
        let mut result = json(&args);
        result["timings_ms"] = serde_json::Value::Null;
        result["samples_per_second"] = serde_json::Value::Null;
        (result, std::fs::read(weights).unwrap())
    };
    let (first, first_weights) = run();
    let (second, second_weights) = run();
    assert_eq!(first, second, "the same run twice");
    assert_eq!(first_weights, second_weights, "bitwise the same weights");
    // Prediction is deterministic (no dropout), and its loss is the final loss.
    let predict = |out: &str| {
        let path = dir.join(out);
        let out = path.to_str().unwrap();
        let output = nnc(&["predict", "examples/skip.nn", "examples/iris.csv", "--weights", weights, "--out", out]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        (std::fs::read_to_string(path).unwrap(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (a, report) = predict("a.csv");
    let (b, _) = predict("b.csv");
    assert_eq!(a, b, "predictions repeat");
    let final_loss = first["final_loss"].as_f64().unwrap();
    assert!(report.contains(&format!("{final_loss:.6}")), "prediction loss {report:?} vs final loss {final_loss}");
}

#[test]
fn grad_prints_user_functions_and_their_derivatives() {
    let text = ok(&["grad", "examples/functions.nn"]);
    for line in [
        "swish(z) = sigmoid(z) * z",
        "d swish/d z = sigmoid(z) * z + sigmoid(z) - sigmoid(z)^2 * z",
        "huber(d, delta) = if abs(d) <= delta then d^2 / 2 else abs(d) * delta - delta^2 / 2",
        "d huber/d d = if abs(d) <= delta then d else delta * sign(d)",
        "d clip/d z = if z > hi then 0 else if z < lo then 0 else 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
}

// ---- what the checker accepts ----------------------------------------------------------

#[test]
fn functions_conditionals_and_dotted_names_check() {
    assert_checks(
        "accepted",
        "fn f(a, b) = if a < b then a else if a == b then 0 else where(a != b, b, -a)
         fn g(x) = f(x, 1) + h2(x)
         fn h2(x) = x^2                       # used before its definition: fine
         fn relu(x) = x * (x > 0)             # a built-in may be redefined
         data { input x[3] target y[1] }
         param s = 1
         model {
           h = dense(x, 4, [g, relu, leaky_relu(s), elu(0.5)])
           k = dense(concat(h, x), 2, gelu, bias = false)
           out = dense(k + dropout(k, 0.5), 1)
         }
         loss mse(out, y) + 1e-3 * l2(weights) + l1(h.w) + l2(h.b) + l1(s) + mean(g(out))",
    );
}

// ---- what it rejects --------------------------------------------------------------------

#[test]
fn recursion_is_rejected_with_the_cycle() {
    assert_error("direct", "fn f(x) = f(x) + 1\nparam p = 0\nloss f(p)", "E0110", "function `f` calls itself");
    assert_error(
        "mutual",
        "fn f(x) = g(x)\nfn g(x) = 2 * h(x)\nfn h(x) = f(x)\nparam p = 0\nloss f(p)",
        "E0110",
        "`f` calls `g` calls `h` calls `f`",
    );
}

#[test]
fn function_mistakes_are_reported_once_at_the_definition() {
    let source = "fn f(x) = x * w\nparam w = 1\nloss f(w) + f(2 * w)";
    let (_, stderr) = check_source("unknown in function", source);
    assert_eq!(stderr.matches("error[E0101]").count(), 1, "{stderr}");
    assert!(stderr.contains("unknown name `w` in function `f`"), "{stderr}");
    assert_error("arity", "fn f(x, y) = x * y\nparam w = 1\nloss f(w)", "E0105", "`f` takes 2 arguments, got 1");
    assert_error("duplicate parameter", "fn f(x, x) = x\nparam w = 1\nloss f(w, w)", "E0103", "duplicate parameter");
    assert_error("duplicate function", "fn f(x) = x\nfn f(y) = y\nparam w = 1\nloss f(w)", "E0103", "function `f`");
    assert_error("dense in a function", "fn f(x) = dense(x, 2)\nparam w = 1\nloss f(w)", "E0108", "`dense`");
    assert_error(
        "activation arity",
        "fn f(x, a) = a * x\ndata { input x[2] target y[1] }\nmodel { out = dense(x, 1, f) }\nloss mse(out, y)",
        "E0105",
        "`f` takes 1 argument after the layer's value, got 0",
    );
}

#[test]
fn shape_errors_inside_functions_point_at_the_call() {
    let source = "fn f(a, b) = a + b\ndata { input x[2] input z[3] target y[1] }\nparam w = 1\nloss mean(f(x, z)) + w";
    let (_, stderr) = check_source("shape in function", source);
    assert!(stderr.contains("error[E0201]") && stderr.contains("in this call of `f`"), "{stderr}");
}

#[test]
fn loss_and_parameter_mistakes() {
    assert_error(
        "bce of a non-sigmoid",
        "data { input x[2] target y[1] }\nmodel { out = dense(x, 1, tanh) }\nloss binary_cross_entropy(out, y)",
        "E0204",
        "`binary_cross_entropy` needs a probability",
    );
    assert_error(
        "unknown parameter",
        "data { input x[2] target y[1] }\nmodel { out = dense(x, 1, bias = false) }\nloss mse(out, y) + l2(out.b)",
        "E0101",
        "unknown parameter `out.b`",
    );
    assert_error("no weights", "param p = 1\nloss p^2 + l2(weights)", "E0205", "`weights` to name the weight matrices");
    assert_error(
        "dropout rate",
        "data { input x[2] target y[1] }\nmodel { out = dense(dropout(x, 1.5), 1) }\nloss mse(out, y)",
        "E0301",
        "the dropout rate must be at least 0 and below 1",
    );
    assert_error(
        "huber threshold",
        "data { input x[2] target y[1] }\nmodel { out = dense(x, 1) }\nloss huber(out, y, 0)",
        "E0301",
        "the `huber` threshold must be positive",
    );
    assert_error(
        "conditional shapes",
        "data { input x[2] target y[3] }\nmodel { out = dense(x, 2) }\nloss mean(if out > 0 then y else out)",
        "E0201",
        "shape mismatch in a conditional",
    );
    assert_error(
        "concat rows",
        "data { input x[2] target y[1] }\nparam p = 1\nmodel { out = dense(concat(x, p), 1) }\nloss mse(out, y)",
        "E0201",
        "shape mismatch in `concat`",
    );
}

/// `nnc ir --stage graph` of a model written to a temporary file.
fn graph_of(name: &str, source: &str) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("language");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.nn"));
    std::fs::write(&path, source).unwrap();
    ok(&["ir", path.to_str().unwrap(), "--stage", "graph"])
}

#[test]
fn built_in_parameters_with_defaults_may_be_named() {
    let model = |leaky: &str, huber: &str| {
        format!(
            "data {{ input x[2] target y[1] }}\nmodel {{ h = dense(x, 3, {leaky})  out = dense(h, 1) }}\n\
             loss {huber} + mean(elu(out, 0.5))"
        )
    };
    let positional = graph_of("positional", &model("leaky_relu(0.2)", "huber(out, y, 0.5)"));
    let named = graph_of("named", &model("leaky_relu(alpha = 0.2)", "huber(out, y, delta = 0.5)"));
    assert_eq!(positional, named);
    let defaults = graph_of("defaults", &model("leaky_relu(0.01)", "huber(out, y, 1)"));
    let spelled = graph_of("spelled", &model("leaky_relu(alpha = 0.01)", "huber(out, y, delta = 1)"));
    assert_eq!(defaults, spelled);
    assert_ne!(positional, defaults, "the arguments are used");
}

#[test]
fn named_argument_mistakes_are_located() {
    let layer = |activation: &str| {
        format!("data {{ input x[2] target y[1] }}\nmodel {{ out = dense(x, 1, {activation}) }}\nloss mse(out, y)")
    };
    assert_error("unknown name", &layer("leaky_relu(slope = 0.2)"), "E0106", "its named arguments are: alpha");
    assert_error("no named arguments", "param w = 1\nloss exp(w, base = 2)", "E0106", "takes no named arguments");
    assert_error("required by name", "param w = 1\nloss mse(a = w, b = 2)", "E0106", "`mse` has no argument `a`");
    assert_error("twice", "param w = 1\nloss huber(w, 1, 2, delta = 3)", "E0103", "duplicate argument `delta`");
    assert_error("positional after named", &layer("elu(alpha = 1, 2)"), "E0105", "`elu` takes 0 or 1 arguments");
    assert_error("in a function", "fn f(z) = leaky_relu(z, beta = 1)\nparam w = 1\nloss f(w)^2", "E0106", "alpha");
}
