//! Golden text of every `nnc ir` stage, and of `nnc grad`, for every example.
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
        insta::assert_snapshot!(format!("{model}.math"), nnc(&["grad", &path]));
    }
}
