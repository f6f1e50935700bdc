//! `nnc check --gradcheck`: the compiled kernel's gradient against central
//! differences in f64, on the user's model and a batch of the user's rows.

use super::{Failure, internal};
use nnc::runtime::data::ReadOptions;
use nnc::runtime::gradcheck::{self, ATOL, EPS, RTOL};
use nnc::runtime::train::Params;
use nnc::runtime::weights;
use std::path::Path;

pub fn gradcheck(
    path: &Path,
    data_path: Option<&Path>,
    rows: Option<u64>,
    weights_path: Option<&Path>,
    options: ReadOptions,
) -> Result<(), Failure> {
    let (model, bound) = super::draw::model_with_data(path, data_path, options)?;
    // `weights = balanced` counted over every row of the file (no split here).
    let model = match (&bound, data_path) {
        (Some(b), Some(file)) => model.balance(b, &file.display().to_string())?,
        _ => model,
    };
    let program = &model.front.program;
    if program.has_data() && bound.is_none() {
        return Err(Failure::Usage(format!(
            "{0} has a data block: give a CSV file, e.g. `nnc check --gradcheck {0} data.csv`",
            model.path
        )));
    }
    if rows == Some(0) {
        return Err(Failure::Usage("--rows must be at least 1".into()));
    }
    let wanted = rows.unwrap_or(program.train.batch.value).min(1 << 20) as usize;
    let batch = bound.as_ref().map(|b| gradcheck::first_rows(program, &b.train, wanted));
    let params = match weights_path {
        Some(p) => weights::load(p, program).map_err(Failure::input)?.0,
        None => Params::init(program, program.train.seed.value),
    };
    let kernel = nnc::pipeline::kernel_gradient(program, &params, batch.as_ref()).map_err(internal)?;
    let checks = gradcheck::compare(program, &params, batch.as_ref(), &kernel);
    let on = match (&batch, data_path) {
        (Some(b), Some(file)) => format!("rows 1-{} of {}", b.rows, file.display()),
        _ => "no data".to_string(),
    };
    let start = match weights_path {
        Some(p) => format!("weights {}", p.display()),
        None => format!("initial weights (seed {})", program.train.seed.value),
    };
    println!("gradcheck {}: {on}, {start}", model.path);
    println!(
        "  the compiled training kernel's gradient vs central differences of the f64 interpreter's loss (eps {EPS:e})"
    );
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0).max(9);
    println!("  {:<width$}  {:>9}  {:>10}  {:>10}  result", "parameter", "checked", "worst |Δ|", "worst rel");
    for c in &checks {
        let checked = if c.checked == c.elements {
            format!("{}", c.elements)
        } else {
            format!("{} of {}", c.checked, c.elements)
        };
        let result = if c.passed() {
            "ok".to_string()
        } else {
            let (k, a, n) = c.worst.unwrap_or((0, f64::NAN, f64::NAN));
            format!("FAILED ({} elements; worst [{k}]: kernel {a:e}, numeric {n:e})", c.failures)
        };
        println!("  {:<width$}  {checked:>9}  {:>10.2e}  {:>10.2e}  {result}", c.name, c.worst_abs, c.worst_rel);
    }
    let failed: Vec<&str> = checks.iter().filter(|c| !c.passed()).map(|c| c.name.as_str()).collect();
    if failed.is_empty() {
        println!(
            "passed: every gradient within atol {ATOL:e} + rtol {RTOL:e} × |numeric| (PyTorch gradcheck's tolerances)"
        );
        Ok(())
    } else {
        Err(Failure::input(format!(
            "gradcheck failed for {}: the compiled gradient differs from central differences beyond atol {ATOL:e} + rtol {RTOL:e} × |numeric|\n  (a bug in nnc, or a loss that is not smooth at these weights, e.g. relu exactly at 0)",
            failed.join(", ")
        )))
    }
}
