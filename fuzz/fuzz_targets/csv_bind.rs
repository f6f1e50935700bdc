//! CSV bytes read, bound and built for a fixed model with every kind of
//! binding. Nothing may panic, and a built dataset holds only finite values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nnc::ir::program::Program;
use nnc::runtime::data::{self, Dataset};
use std::sync::OnceLock;

const MODELS: &[&str] = &[
    "data { input x[3] target y[1] } model { out = dense(x, 1) } loss mse(out, y)",
    "data { input x = columns(a, 2) standardize  input z[1] = rest() / 16  target y = one_hot(c, 3) }
     model { h = dense(x, 2)  out = dense(z, 3, softmax) } loss cross_entropy(out, y) + mean(h)",
    "data { input x = columns(a, b) fill(mean, indicator)  input c = one_hot(c, 3)  target y = column(y)  missing = drop }
     model { out = dense(concat(x, c), 2, softmax) } loss cross_entropy(out, y)",
];

fn programs() -> &'static [Program] {
    static PROGRAMS: OnceLock<Vec<Program>> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        MODELS.iter().map(|m| nnc::pipeline::frontend(m).unwrap_or_else(|_| panic!("{m}")).program).collect()
    })
}

fuzz_target!(|bytes: &[u8]| {
    for program in programs() {
        let options = data::ReadOptions::default();
        let Ok(table) = data::read_bytes("fuzz.csv", bytes, &program.data, options) else { continue };
        let split = data::Split { fraction: 0.3, kind: nnc::ir::program::SplitKind::Auto, seed: 1 };
        let Ok(bound) = data::prepare::training(program, table, split, None) else { continue };
        for dataset in std::iter::once(&bound.train).chain(&bound.validation) {
            finite(dataset);
        }
        let options = data::ReadOptions { targets_optional: true, ..options };
        if let Ok(dataset) = data::read_bytes("fuzz.csv", bytes, &program.data, options)
            .and_then(|table| data::prepare::apply(program, table, &bound.transforms))
        {
            finite(&dataset);
        }
    }
});

fn finite(dataset: &Dataset) {
    for values in dataset.inputs.iter().chain(&dataset.targets) {
        assert!(values.iter().all(|v| v.is_finite()));
    }
}
