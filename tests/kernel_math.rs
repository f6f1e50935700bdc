//! The accuracy of the kernels' inline `exp`, `sigmoid`, `tanh` and `log`
//! (f32 polynomials in `codegen/math.rs`) against f64, over [-20, 20]
//! ([0.001, 20] for `log`) — the figures quoted in that file's doc.

use nnc::codegen::Options;
use nnc::pipeline;
use nnc::runtime::data::Dataset;
use nnc::runtime::train::{self, Params};
use std::ops::RangeInclusive;

/// Max relative error of `f` (exp, log), or absolute (sigmoid, tanh), on a
/// 0.001 grid over `range`. A relative error where the exact value is 0 is
/// taken as absolute.
fn max_error(function: &str, exact: fn(f64) -> f64, relative: bool, range: RangeInclusive<f32>) -> f64 {
    let source = format!(
        "data {{ input x[1] target y[1] }}\nmodel {{ out = {function}(x) }}\nparam a = 0\nloss mse(out, y) + a^2\n"
    );
    let front = pipeline::frontend(&source).expect("checks");
    let program = &front.program;
    let (from, to) = range.into_inner();
    let steps = ((to - from) / 0.001).round() as u32;
    let xs: Vec<f32> = (0..=steps).map(|i| from + i as f32 * 0.001).collect();
    let rows = xs.len();
    let data = Dataset { rows, inputs: vec![xs.clone()], targets: vec![vec![0.0; rows]], has_targets: true };
    let graphs = pipeline::graphs(program);
    let kernels = pipeline::kernels(&graphs, 1, rows).expect("lowers");
    let native = pipeline::compile(program, &kernels, Options::default()).expect("compiles");
    let evaluation = train::evaluate(program, &native.eval, Some(&data), &Params::init(program, 0), None);
    xs.iter()
        .zip(&evaluation.predictions)
        .map(|(&x, &got)| {
            let want = exact(x as f64);
            let err = (got as f64 - want).abs();
            if relative && want != 0.0 { err / want.abs() } else { err }
        })
        .fold(0.0, f64::max)
}

#[test]
fn exp_is_within_three_ulp() {
    let err = max_error("exp", f64::exp, true, -20.0..=20.0);
    println!("exp: max relative error {err:.3e}");
    assert!(err < 3.0 * f32::EPSILON as f64, "{err:.3e}");
}

#[test]
fn sigmoid_and_tanh_are_within_3e_7_absolute() {
    let sigmoid = max_error("sigmoid", |x| 1.0 / (1.0 + (-x).exp()), false, -20.0..=20.0);
    let tanh = max_error("tanh", f64::tanh, false, -20.0..=20.0);
    println!("sigmoid: max absolute error {sigmoid:.3e}; tanh: {tanh:.3e}");
    assert!(sigmoid < 3e-7, "sigmoid {sigmoid:.3e}");
    assert!(tanh < 3e-7, "tanh {tanh:.3e}");
}

#[test]
fn log_is_within_three_ulp() {
    let err = max_error("log", f64::ln, true, 0.001..=20.0);
    println!("log: max relative error {err:.3e}");
    assert!(err < 3.0 * f32::EPSILON as f64, "{err:.3e}");
}
