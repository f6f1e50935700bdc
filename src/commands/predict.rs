//! `nnc predict`: apply trained weights to CSV rows.
//!
//! The preprocessing saved with the weights (scale, standardisation) is
//! applied to the inputs, and regression outputs are converted back to the
//! target's units. Classification prints the class and the probabilities.

use super::{
    Failure, Model, bind_error, check_not_an_input, check_output, internal, model_for_weights, write_atomically,
};
use nnc::ir::program::{ColumnRef, Columns, Task};
use nnc::pipeline;
use nnc::runtime::data::{self, Dataset, Transform};
use nnc::runtime::train;
use nnc::runtime::weights;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct PredictArgs {
    /// The model file, then the data; or the data alone, and the model is
    /// the one the weights file embeds
    #[arg(value_name = "MODEL")]
    first: PathBuf,
    /// Rows to predict (CSV); target columns may be present or not
    #[arg(value_name = "DATA")]
    second: Option<PathBuf>,
    /// Trained weights, as saved by `nnc run --save-weights`
    #[arg(long, value_name = "FILE")]
    weights: PathBuf,
    /// Write the predictions here instead of stdout
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print nothing on stderr
    #[arg(long)]
    quiet: bool,
    /// The data file's field delimiter (detected when not given)
    #[arg(long, value_name = "CHAR", value_parser = super::parse_delimiter)]
    delimiter: Option<u8>,
}

/// A model, its saved weights and preprocessing, applied to a data file.
pub struct Applied {
    pub model: Model,
    pub dataset: Dataset,
    pub transforms: Vec<Transform>,
    pub evaluation: train::Evaluation,
}

/// Read the model (without a model file, the one the weights file embeds),
/// the weights (with their preprocessing) and the data, and evaluate: the
/// loss and metrics when the file has the targets (required when
/// `need_targets`), the predictions always.
pub fn apply(
    model: Option<&Path>,
    data_path: &Path,
    weights_path: &Path,
    need_targets: bool,
    quiet: bool,
    delimiter: Option<u8>,
) -> Result<Applied, Failure> {
    let model = model_for_weights(model, weights_path, quiet)?;
    let program = &model.front.program;
    if !program.has_data() {
        return Err(Failure::Usage(format!("{} has no data block: there is nothing to predict from", model.path)));
    }
    let weights_name = weights_path.display().to_string();
    let (params, metadata) = weights::load(weights_path, program).map_err(Failure::input)?;
    let transforms = weights::saved_transforms(program, &metadata, &weights_name).map_err(Failure::input)?;
    let options = data::ReadOptions { delimiter, targets_optional: !need_targets, threads: 0 };
    let table = data::read_file(data_path, &program.data, options).map_err(|e| bind_error(e, &model))?;
    let dataset = data::prepare::apply(program, table, &transforms).map_err(|e| bind_error(e, &model))?;
    let evaluator = pipeline::evaluation(program, dataset.rows, dataset.has_targets).map_err(internal)?;
    let evaluation = train::evaluate(program, &evaluator, Some(&dataset), &params, Some(&transforms));
    Ok(Applied { model, dataset, transforms, evaluation })
}

pub fn predict(args: &PredictArgs) -> Result<(), Failure> {
    let (model_path, data_path) = match &args.second {
        Some(data) => (Some(args.first.as_path()), data.as_path()),
        None => (None, args.first.as_path()),
    };
    if let Some(model) = model_path {
        super::check_argument_order(model, Some(data_path), "predict")?;
    }
    if let Some(out) = &args.out {
        let mut inputs = vec![(data_path, "data file"), (args.weights.as_path(), "weights file")];
        inputs.extend(model_path.map(|m| (m, "model file")));
        check_not_an_input(out, "--out", &inputs)?;
        check_output(out, "output file")?;
    }
    let Applied { model, dataset, transforms, evaluation } =
        apply(model_path, data_path, &args.weights, false, args.quiet, args.delimiter)?;
    let program = &model.front.program;
    let (k, rows) = (evaluation.width, dataset.rows);
    let mut text = String::new();
    match program.task {
        Task::Classification { .. } => {
            // Class names when the target's labels were names (`Adelie`),
            // indices (`p0`, `p1`) when they were the indices themselves.
            let names = program
                .data
                .iter()
                .position(|b| b.is_target)
                .map(|i| &transforms[i])
                .filter(|t| t.categories.len() == k && !t.categories_are_indices())
                .map(|t| t.categories.clone());
            let probabilities: Vec<String> = match &names {
                Some(names) => names.iter().map(|n| format!("p_{}", csv_field(n))).collect(),
                None => (0..k).map(|c| format!("p{c}")).collect(),
            };
            text.push_str(&format!("class,{}\n", probabilities.join(",")));
            for r in 0..rows {
                let row = &evaluation.predictions[r * k..(r + 1) * k];
                let class = (0..k).fold(0, |best, c| if row[c] > row[best] { c } else { best });
                let cells: Vec<String> = row.iter().map(|p| p.to_string()).collect();
                let class = names.as_ref().map_or_else(|| class.to_string(), |n| csv_field(&n[class]));
                text.push_str(&format!("{class},{}\n", cells.join(",")));
            }
        }
        Task::Binary { labels } => {
            // The answer at the threshold, then the probability of "yes".
            let threshold = program.train.threshold.value;
            let header: Vec<String> = if labels == 1 {
                vec!["class".into(), "probability".into()]
            } else {
                (0..k).map(|u| format!("label{u}")).chain((0..k).map(|u| format!("p{u}"))).collect()
            };
            text.push_str(&header.join(","));
            text.push('\n');
            for r in 0..rows {
                let row = &evaluation.predictions[r * k..(r + 1) * k];
                let answers = row.iter().map(|&p| u8::from(p as f64 >= threshold).to_string());
                let cells: Vec<String> = answers.chain(row.iter().map(|p| p.to_string())).collect();
                text.push_str(&cells.join(","));
                text.push('\n');
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
            line.push_str(&format!("; loss {}", super::fixed(loss, 6)));
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

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}
