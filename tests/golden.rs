//! Golden text of every `nnc ir` stage for the main examples, and of
//! `nnc grad` for every example.
//!
//! A change in any stage shows up as a snapshot diff. To accept intended
//! changes: `INSTA_UPDATE=always cargo test --test golden` (or
//! `cargo insta review`), then read the diff before committing it.
//! The `asm` stage is left out: machine code depends on the CPU's features.

use std::process::Command;

const MODELS: &[&str] = &["minimize", "seed", "iris", "functions"];
const STAGES: &[&str] = &["ast", "graph", "grad", "opt", "kernel", "clif"];

fn nnc(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the nnc binary runs");
    assert!(output.status.success(), "nnc {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

#[test]
fn every_stage_of_every_example() {
    for model in MODELS {
        let path = format!("examples/{model}.nn");
        for stage in STAGES {
            let text = nnc(&["ir", &path, "--stage", stage]);
            insta::assert_snapshot!(format!("{model}.{stage}"), text);
        }
        for stage in ["kernel", "clif"] {
            let text = nnc(&["ir", &path, "--stage", stage, "--kernel", "eval"]);
            insta::assert_snapshot!(format!("{model}.{stage}.eval"), text);
        }
    }
}

/// `nnc grad` of every shipped example: the derivatives as a learner reads them.
#[test]
fn printed_derivatives_of_every_example() {
    let mut models: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
        .expect("the examples folder")
        .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".nn").map(str::to_string))
        .collect();
    // penguins.nn counts its one-hot widths in its data, and `nnc grad` reads no data.
    models.retain(|m| m != "penguins");
    models.sort();
    assert!(models.len() >= 10, "{models:?}");
    for model in models {
        let text = nnc(&["grad", &format!("examples/{model}.nn")]);
        insta::assert_snapshot!(format!("{model}.math"), text);
    }
}
