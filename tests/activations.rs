//! Every activation of the built-ins' table against PyTorch: nnc's spelling
//! of it and its symbolic derivative, evaluated on the reference interpreter
//! (f64), agree with `torch.nn.functional` and autograd at the points of
//! `tests/data/activations.json` (written by `peers/activations.py`), and the
//! derivative agrees with central differences of the value. An activation
//! added to the table without a reference fails here.

use nnc::check::builtins::{BUILTINS, Kind};
use nnc::ir::interp::{self, Env, Tensor};

/// The value and derivative of `name` at `x`: `loss name(p)` with `p = x`.
fn value_and_derivative(name: &str, x: f64) -> (f64, f64) {
    let source = format!("param p = 0\nloss {name}(p)");
    let program = nnc::pipeline::frontend(&source).unwrap_or_else(|d| panic!("{name}: {d:?}")).program;
    let mut graph = program.graph.clone();
    nnc::autodiff::grad(&mut graph);
    let env = Env { params: vec![Tensor::new(1, 1, vec![x])], ..Env::default() };
    let values = interp::eval(&graph, &env);
    let at = |output: &str| values[graph.output(output).expect("an output").index()].data[0];
    (at("loss"), at("grad.p"))
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * (1.0 + b.abs())
}

#[test]
fn every_activation_agrees_with_pytorch_and_finite_differences() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/activations.json"))
        .expect("tests/data/activations.json (python3 peers/activations.py)");
    let reference: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let points: Vec<f64> =
        reference["points"].as_array().expect("points").iter().map(|p| p.as_f64().unwrap()).collect();
    let activations: Vec<&str> =
        BUILTINS.iter().filter(|d| d.kind == Kind::Activation && d.name != "softmax").map(|d| d.name).collect();
    assert!(activations.len() >= 10, "the table's activations: {activations:?}");
    for name in activations {
        let torch = &reference["activations"][name];
        assert!(torch.is_object(), "`{name}` has no PyTorch reference: add it to peers/activations.py and run it");
        for (i, &x) in points.iter().enumerate() {
            let (value, derivative) = value_and_derivative(name, x);
            let (expected, expected_derivative) =
                (torch["value"][i].as_f64().unwrap(), torch["derivative"][i].as_f64().unwrap());
            assert!(close(value, expected, 1e-12), "{name}({x}) = {value}, PyTorch {expected}");
            assert!(
                close(derivative, expected_derivative, 1e-12),
                "{name}'({x}) = {derivative}, PyTorch's autograd {expected_derivative}"
            );
            let h = 1e-6 * x.abs().max(1.0);
            let difference = (value_and_derivative(name, x + h).0 - value_and_derivative(name, x - h).0) / (2.0 * h);
            assert!(
                close(derivative, difference, 1e-6),
                "{name}'({x}) = {derivative}, central difference {difference}"
            );
        }
    }
}
