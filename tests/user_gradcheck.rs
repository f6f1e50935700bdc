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
    let right = gradcheck::kernel_gradient(&program, &params, Some(&batch)).unwrap();
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
