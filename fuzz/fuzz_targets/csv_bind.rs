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
];

fn programs() -> &'static [Program] {
    static PROGRAMS: OnceLock<Vec<Program>> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        MODELS.iter().map(|m| nnc::pipeline::frontend(m).unwrap_or_else(|_| panic!("{m}")).program).collect()
    })
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(table) = data::read_table("fuzz.csv", bytes) else { return };
    for program in programs() {
        for targets_optional in [false, true] {
            let Ok(layout) = data::resolve(program, &table, targets_optional) else { continue };
            let rows = 0..table.rows.len();
            let Ok(transforms) = data::fit_transforms(program, &table, &layout, rows.clone()) else { continue };
            if let Ok(dataset) = Dataset::build(program, &table, &layout, &transforms, rows) {
                for values in dataset.inputs.iter().chain(&dataset.targets) {
                    assert!(values.iter().all(|v| v.is_finite()));
                }
            }
        }
    }
});
