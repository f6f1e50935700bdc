//! `nnc predict`: apply trained weights to CSV rows.
//!
//! The preprocessing saved with the weights (scale, standardisation) is
//! applied to the inputs, and regression outputs are converted back to the
//! target's units. Classification prints the class and the probabilities.

use super::{Failure, bind_error, check_not_an_input, check_output, internal, read_model, write_atomically};
use nnc::codegen::Options;
use nnc::ir::program::{ColumnRef, Columns, Program, Task};
use nnc::kernel::{self, KernelKind};
use nnc::pipeline;
use nnc::runtime::data::{self, Dataset, Transform};
use nnc::runtime::train;
use nnc::runtime::weights;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct PredictArgs {
    /// The model file
    model: PathBuf,
    /// Rows to predict (CSV); target columns may be present or not
    data: PathBuf,
    /// Trained weights, as saved by `nnc run --save-weights`
    #[arg(long, value_name = "FILE")]
    weights: PathBuf,
    /// Write the predictions here instead of stdout
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print nothing on stderr
    #[arg(long)]
    quiet: bool,
}

/// The transforms saved in the weights file, in `program.data` order.
pub fn saved_transforms(
    program: &Program,
    metadata: &BTreeMap<String, String>,
    file: &str,
) -> Result<Vec<Transform>, Failure> {
    let needs = program.data.iter().any(|b| b.standardize || b.scale != 1.0);
    let Some(text) = metadata.get("nnc.preprocessing") else {
        if needs {
            return Err(Failure::input(format!(
                "{file} has no preprocessing statistics, but the model scales or standardizes its data"
            )));
        }
        return Ok(program.data.iter().map(|b| Transform { scale: b.scale, mean: vec![], std: vec![] }).collect());
    };
    let bad = |why: &str| Failure::input(format!("{file}: the preprocessing statistics are unreadable: {why}"));
    let list: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
    let mut out = Vec::new();
    for binding in &program.data {
        let entry = list
            .iter()
            .find(|e| e["name"] == binding.name)
            .ok_or_else(|| bad(&format!("nothing for `{}`", binding.name)))?;
        let numbers = |key: &str| -> Result<Vec<f64>, Failure> {
            entry[key].as_array().ok_or_else(|| bad(key))?.iter().map(|v| v.as_f64().ok_or_else(|| bad(key))).collect()
        };
        let transform = Transform {
            scale: entry["scale"].as_f64().ok_or_else(|| bad("scale"))?,
            mean: numbers("mean")?,
            std: numbers("std")?,
        };
        let width = binding.column_count();
        if binding.standardize && (transform.mean.len() != width || transform.std.len() != width) {
            return Err(bad(&format!("`{}` needs {width} means and standard deviations", binding.name)));
        }
        out.push(transform);
    }
    Ok(out)
}

pub fn predict(args: &PredictArgs) -> Result<(), Failure> {
    let model = read_model(&args.model)?;
    let program = &model.front.program;
    if !program.has_data() {
        return Err(Failure::Usage(format!("{} has no data block: there is nothing to predict from", model.path)));
    }
    if let Some(out) = &args.out {
        let inputs = [
            (args.model.as_path(), "model file"),
            (args.data.as_path(), "data file"),
            (args.weights.as_path(), "weights file"),
        ];
        check_not_an_input(out, "--out", &inputs)?;
        check_output(out, "output file")?;
    }
    let weights_name = args.weights.display().to_string();
    let (params, metadata) = weights::load(&args.weights, program).map_err(Failure::input)?;
    if !args.quiet && metadata.get("nnc.source_hash").is_some_and(|h| *h != weights::source_hash(&model.text)) {
        eprintln!("note: {weights_name} was saved from a different version of {} (the source changed)", model.path);
    }
    let transforms = saved_transforms(program, &metadata, &weights_name)?;
    let table = data::read_file(&args.data).map_err(Failure::input)?;
    let layout = data::resolve(program, &table, true).map_err(|e| bind_error(e, &model))?;
    let dataset = Dataset::build(program, &table, &layout, &transforms, 0..table.rows.len()).map_err(Failure::input)?;
    let graphs = pipeline::graphs(program);
    let kind = if dataset.has_targets { KernelKind::Eval } else { KernelKind::Predict };
    let kernel = kernel::lower(&graphs.eval, kind, dataset.rows).map_err(internal)?;
    let shapes: Vec<_> = program.graph.params.iter().map(|p| p.shape).collect();
    let compiled = nnc::codegen::compile(&kernel, &shapes, Options::default()).map_err(internal)?;
    let evaluator = train::Evaluator::Compiled(Box::new(compiled));
    let evaluation = train::evaluate(program, &evaluator, Some(&dataset), &params, Some(&transforms));
    let (k, rows) = (evaluation.width, dataset.rows);
    let mut text = String::new();
    match program.task {
        Task::Classification { .. } => {
            let probabilities: Vec<String> = (0..k).map(|c| format!("p{c}")).collect();
            text.push_str(&format!("class,{}\n", probabilities.join(",")));
            for r in 0..rows {
                let row = &evaluation.predictions[r * k..(r + 1) * k];
                let class = (0..k).fold(0, |best, c| if row[c] > row[best] { c } else { best });
                let cells: Vec<String> = row.iter().map(|p| p.to_string()).collect();
                text.push_str(&format!("{class},{}\n", cells.join(",")));
            }
        }
        _ => {
            // Outputs in the target's units, named after its columns.
            let target = program.data.iter().position(|b| b.is_target && b.width() as usize == k);
            let names: Vec<String> = match target.map(|i| (&program.data[i], i)) {
                Some((b, _)) if k == 1 => vec![b.name.clone()],
                Some((b, _)) => match &b.columns {
                    Columns::List(refs) => refs
                        .iter()
                        .map(|r| match r {
                            ColumnRef::Name(n, _) => n.clone(),
                            ColumnRef::Index(c, _) => format!("column{}", c + 1),
                        })
                        .collect(),
                    _ => (1..=k).map(|c| format!("{}{c}", b.name)).collect(),
                },
                None => (1..=k).map(|c| format!("output{c}")).collect(),
            };
            text.push_str(&names.join(","));
            text.push('\n');
            for r in 0..rows {
                let cells: Vec<String> = (0..k)
                    .map(|c| {
                        let v = evaluation.predictions[r * k + c] as f64;
                        let v = target.map_or(v, |i| transforms[i].invert(c, v));
                        format!("{v}")
                    })
                    .collect();
                text.push_str(&cells.join(","));
                text.push('\n');
            }
        }
    }
    match &args.out {
        Some(path) => write_atomically(path, text.as_bytes())?,
        None => print!("{text}"),
    }
    if !args.quiet && dataset.has_targets {
        let m = &evaluation.metrics;
        let mut line = format!("{rows} rows");
        if let Some(loss) = m.loss {
            line.push_str(&format!("; loss {loss:.6}"));
        }
        if let Some(accuracy) = m.accuracy {
            line.push_str(&format!("; accuracy {accuracy:.4}"));
        }
        if let (Some(mse), Some(mae)) = (m.mse, m.mae) {
            line.push_str(&format!("; mse {mse:.6}; mae {mae:.6}"));
        }
        if let Some(r2) = m.r2 {
            line.push_str(&format!("; r2 {r2:.4}"));
        }
        eprintln!("{line}");
    }
    Ok(())
}
