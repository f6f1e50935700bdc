//! Golden text of every `nnc ir` stage (training and evaluation kernels)
//! and of `nnc grad` for every shipped example.
//!
//! A change in any stage shows up as a snapshot diff. To accept intended
//! changes: `INSTA_UPDATE=always cargo test --test golden` (or
//! `cargo insta review`), then read the diff before committing it.
//! The `asm` stage is left out: machine code depends on the CPU's features.

use std::process::Command;

const STAGES: &[&str] = &["ast", "graph", "grad", "opt", "kernel", "clif"];

/// Every model of `examples/`, by name.
fn examples() -> Vec<String> {
    let mut models: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
        .expect("the examples folder")
        .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".nn").map(str::to_string))
        .collect();
    models.sort();
    assert!(models.len() >= 10, "{models:?}");
    models
}

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
    for model in examples() {
        if model == "penguins" {
            continue; // below: `nnc ir` reads no data, and its one-hot widths are counted in it
        }
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

/// penguins.nn's stages as `nnc ir` prints them, with the categories its
/// `one_hot(column)` bindings take from its data counted as `nnc run` does.
#[test]
fn every_stage_of_the_example_whose_widths_come_from_its_data() {
    use nnc::runtime::data;
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/examples/penguins.nn")).expect("penguins.nn");
    let csv = format!("{root}/examples/penguins.csv");
    let counted = nnc::pipeline::frontend_counting(&text, |bindings| {
        let table = data::read_file(std::path::Path::new(&csv), bindings, data::ReadOptions::default())?;
        data::categories(bindings, &table)
    });
    let Ok(front) = counted else { panic!("penguins.nn checks with its data") };
    let program = &front.program;
    let graphs = nnc::pipeline::graphs(program);
    let batch = program.train.batch.value as usize;
    let kernels = nnc::pipeline::kernels(&graphs, batch, batch).expect("lowers");
    let listings = nnc::codegen::Options { listings: true, ..Default::default() };
    let clif = |kernel| {
        nnc::pipeline::compile_kernel(program, kernel, listings).expect("compiles").clif.clone().unwrap_or_default()
    };
    insta::assert_snapshot!("penguins.ast", nnc::syntax::print::ast(&front.ast));
    insta::assert_snapshot!("penguins.graph", nnc::ir::print::graph(&program.graph));
    insta::assert_snapshot!("penguins.grad", nnc::ir::print::graph(&graphs.grad));
    insta::assert_snapshot!("penguins.opt", nnc::ir::print::graph(&graphs.train));
    insta::assert_snapshot!("penguins.kernel", nnc::kernel::print(&kernels.0));
    insta::assert_snapshot!("penguins.clif", clif(&kernels.0));
    insta::assert_snapshot!("penguins.kernel.eval", nnc::kernel::print(&kernels.1));
    insta::assert_snapshot!("penguins.clif.eval", clif(&kernels.1));
}

/// `nnc grad` of every shipped example: the derivatives as a learner reads them.
#[test]
fn printed_derivatives_of_every_example() {
    // penguins.nn counts its one-hot widths in its data, and `nnc grad` reads no data.
    for model in examples().into_iter().filter(|m| m != "penguins") {
        let text = nnc(&["grad", &format!("examples/{model}.nn")]);
        insta::assert_snapshot!(format!("{model}.math"), text);
    }
}
