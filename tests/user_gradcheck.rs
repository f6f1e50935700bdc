//! `nnc check --gradcheck` end to end: it passes on every shipped example
//! with its data, reports every parameter, and a wrong gradient fails.

mod common;
use common::nnc;

use nnc::runtime::gradcheck;
use nnc::runtime::train::Params;

/// Each example with the data it trains on.
const EXAMPLES: &[(&str, Option<&str>)] = &[
    ("minimize", None),
    ("seed", Some("seed")),
    ("iris", Some("iris")),
    ("digits", Some("digits")),
    ("diabetes", Some("diabetes")),
    ("linnerud", Some("linnerud")),
    ("momentum", Some("iris")),
    ("adam", Some("digits")),
    ("adamw", Some("diabetes")),
    ("activations", Some("iris")),
    ("functions", Some("diabetes")),
    ("skip", Some("iris")),
    ("losses", Some("diabetes")),
    ("binary", Some("iris")),
    ("penguins", Some("penguins")),
    ("multilabel", Some("iris")),
    ("early_stop", Some("digits")),
    ("class_weights", Some("digits")),
];

#[test]
fn every_example_passes_with_every_parameter_reported() {
    let listed = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "nn"))
        .count();
    assert_eq!(listed, EXAMPLES.len(), "every example is listed here");
    for (model, data) in EXAMPLES {
        let path = format!("examples/{model}.nn");
        let data_path = data.map(|d| format!("examples/{d}.csv"));
        let mut args = vec!["check", "--gradcheck", &path];
        if let Some(d) = &data_path {
            args.push(d);
        }
        let output = nnc(&args);
        let out = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{model}: {out}\n{}", String::from_utf8_lossy(&output.stderr));
        assert!(out.contains("passed: every gradient within atol 1e-5 + rtol 1e-3"), "{model}: {out}");
        // The parameters, by name (penguins.nn's widths come from its data).
        let names: Vec<String> = if *model == "penguins" {
            ["h.w", "h.b", "out.w", "out.b"].map(String::from).to_vec()
        } else {
            common::program(&common::example(&format!("{model}.nn")))
                .graph
                .params
                .iter()
                .map(|p| p.name.clone())
                .collect()
        };
        for name in &names {
            let line = out.lines().find(|l| l.trim_start().starts_with(&format!("{name} ")));
            assert!(line.is_some_and(|l| l.ends_with(" ok")), "{model}: {name} not reported ok:\n{out}");
        }
    }
}

#[test]
fn a_wrong_gradient_fails_on_its_parameter_and_element() {
    let program = common::program(&common::example("seed.nn"));
    let table = nnc::runtime::data::load(std::path::Path::new("examples/seed.csv"), &program).unwrap();
    let batch = gradcheck::first_rows(&program, &table, 4);
    assert_eq!(batch.rows, 4);
    let params = Params::init(&program, 0);
    let right = nnc::pipeline::kernel_gradient(&program, &params, Some(&batch)).unwrap();
    let checks = gradcheck::compare(&program, &params, Some(&batch), &right);
    assert!(checks.iter().all(|c| c.passed()), "{checks:?}");
    // Element [1] of h.w (its row 0, column 1) off by 1e-3: beyond atol 1e-5 + rtol 1e-3 for gradients below 0.99.
    let mut wrong = right.clone();
    let at = params.offsets[0] + 1;
    assert!(right[at].abs() < 0.5, "a gradient well below 1: {}", right[at]);
    wrong[at] += 1e-3;
    let checks = gradcheck::compare(&program, &params, Some(&batch), &wrong);
    let h_w = &checks[0];
    assert_eq!((h_w.name.as_str(), h_w.failures), ("h.w", 1));
    assert_eq!(h_w.worst.map(|w| w.0), Some(1));
    assert!((h_w.worst_abs - 1e-3).abs() < 1e-6, "{}", h_w.worst_abs);
    assert!(checks[1].passed());
}

#[test]
fn gradcheck_flags_and_bad_input() {
    let fails = |args: &[&str], code: i32, fragment: &str| {
        let output = nnc(args);
        let err = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(fragment), "{args:?}: expected `{fragment}` in {err}");
    };
    fails(&["check", "--gradcheck", "examples/iris.nn"], 2, "give a CSV file");
    fails(&["check", "--gradcheck", "examples/minimize.nn", "examples/iris.csv"], 2, "no data block");
    fails(&["check", "--gradcheck", "examples/iris.nn", "examples/iris.csv", "--rows", "0"], 2, "--rows");
    fails(&["check", "--rows", "3", "examples/iris.nn"], 2, "--gradcheck");
    fails(
        &["check", "--gradcheck", "examples/iris.nn", "examples/iris.csv", "--weights", "nope.safetensors"],
        1,
        "nope.safetensors",
    );
    let output = nnc(&["check", "--gradcheck", "examples/iris.nn", "examples/iris.csv", "--rows", "5"]);
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success() && out.contains("rows 1-5 of examples/iris.csv"), "{out}");
}

/// The Euclidean norm of each layer's values (weights and bias together), by layer name.
fn layer_norms(program: &nnc::ir::program::Program, values: &dyn Fn(usize) -> Vec<f64>) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for (i, param) in program.graph.params.iter().enumerate() {
        let layer = param.layer.clone().unwrap_or(param.name.clone());
        let sum: f64 = values(i).iter().map(|x| x * x).sum();
        match out.iter_mut().find(|(n, _)| *n == layer) {
            Some((_, s)) => *s += sum,
            None => out.push((layer, sum)),
        }
    }
    out.into_iter().map(|(n, s)| (n, s.sqrt())).collect()
}

#[test]
fn trace_grads_are_the_interpreters_gradient_and_the_weights_change() {
    use nnc::ir::interp::{self, Env, Tensor};
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("trace_grads");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (log, weights) = (dir.join("log.csv"), dir.join("w.safetensors"));
    let output = nnc(&[
        "run",
        "examples/iris.nn",
        "examples/iris.csv",
        "--quiet",
        "--epochs",
        "1",
        "--trace-grads",
        "--log",
        log.to_str().unwrap(),
        "--save-weights",
        weights.to_str().unwrap(),
        "--json",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<f64> = lines.next().unwrap().split(',').map(|c| c.parse().unwrap()).collect();
    let column =
        |name: &str| row[header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("{name} in {header:?}"))];
    let program = common::program(&common::example("iris.nn"));
    let trained = nnc::runtime::weights::load(&weights, &program).unwrap().0;
    let initial = Params::init(&program, 0);
    // The gradient of the mean loss over the first 150 (≤ 256) rows, on the f64 interpreter.
    let data = nnc::runtime::data::load(std::path::Path::new("examples/iris.csv"), &program).unwrap();
    let mut graph = program.graph.clone();
    nnc::autodiff::grad(&mut graph);
    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let env = Env {
        inputs: vec![Tensor::new(data.rows, 4, f64s(&data.inputs[0]))],
        targets: vec![Tensor::new(data.rows, 3, f64s(&data.targets[0]))],
        params: (0..trained.shapes.len()).map(|i| common::tensor_f32(trained.shapes[i], trained.get(i))).collect(),
        ..Env::default()
    };
    let values = interp::eval(&graph, &env);
    let grads = layer_norms(&program, &|i| {
        values[graph.output(&format!("grad.{}", program.graph.params[i].name)).unwrap().index()].data.clone()
    });
    let weight_norms = layer_norms(&program, &|i| f64s(trained.get(i)));
    let before = layer_norms(&program, &|i| f64s(initial.get(i)));
    let change =
        layer_norms(&program, &|i| trained.get(i).iter().zip(initial.get(i)).map(|(a, b)| (*a - *b) as f64).collect());
    for (k, (layer, grad)) in grads.iter().enumerate() {
        let logged = column(&format!("grad_norm.{layer}"));
        assert!(common::close(logged, *grad, 1e-4, 1e-7), "{layer}: grad norm {logged} vs interpreter {grad}");
        assert!(common::close(column(&format!("weight_norm.{layer}")), weight_norms[k].1, 1e-6, 1e-9));
        let ratio = change[k].1 / before[k].1;
        assert!(common::close(column(&format!("update_ratio.{layer}")), ratio, 1e-4, 1e-9), "{layer}");
        assert!(common::close(json["trace"][0]["layers"][layer]["grad_norm"].as_f64().unwrap(), logged, 1e-12, 0.0));
    }
    assert_eq!(json["trace"][0]["epoch"], 1);
    let output = nnc(&["run", "examples/minimize.nn", "--trace-grads"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn vanishing_and_exploding_gradients_are_named_once() {
    use nnc::runtime::trace::{LayerTrace, warnings};
    let at = |grad_norm: f64| LayerTrace { layer: "h".into(), grad_norm, weight_norm: 1.0, update_ratio: 0.0 };
    let history = vec![(1, vec![at(1.0)]), (2, vec![at(1e-8)]), (3, vec![at(1e-9)]), (4, vec![at(5e3)])];
    assert_eq!(
        warnings(&history),
        vec![
            "the gradient of layer `h` vanished: norm 1.0e-8 < 1e-7 in epoch 2".to_string(),
            "the gradient of layer `h` exploded: norm 5.0e3 > 1e3 in epoch 4".to_string(),
        ]
    );
    assert!(warnings(&history[..1]).is_empty());
}
