//! `nnc eval`: the loss and metrics of saved weights on a labelled file —
//! for classification a confusion matrix and scikit-learn's
//! `classification_report` layout, for regression MSE, RMSE, MAE and R² per
//! target column in the target's units.

use super::Failure;
use super::predict::{Applied, apply};
use nnc::ir::program::{ColumnRef, Columns, Program, Task};
use nnc::runtime::metrics::{self, Classification, ColumnFit, Report, Scores};
use serde_json::{Value, json};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct EvalArgs {
    /// The model file
    model: PathBuf,
    /// Labelled rows (CSV) with the model's input and target columns
    data: PathBuf,
    /// Trained weights, as saved by `nnc run --save-weights`
    #[arg(long, value_name = "FILE")]
    weights: PathBuf,
    /// Print one JSON object with every figure on stdout
    #[arg(long)]
    json: bool,
    /// Print nothing on stderr
    #[arg(long)]
    quiet: bool,
    /// The data file's field delimiter (detected when not given)
    #[arg(long, value_name = "CHAR", value_parser = super::parse_delimiter)]
    delimiter: Option<u8>,
}

pub fn eval(args: &EvalArgs) -> Result<(), Failure> {
    super::check_argument_order(&args.model, Some(&args.data), "eval")?;
    let Applied { model, dataset, transforms, evaluation } =
        apply(Some(&args.model), &args.data, &args.weights, true, args.quiet, args.delimiter)?;
    let program = &model.front.program;
    let rows = dataset.rows;
    let predict = &evaluation.predictions;
    let loss = evaluation.metrics.loss;
    // The target's class names when its labels were names (`Adelie`), else indices.
    let class_names: Option<&[String]> = program
        .data
        .iter()
        .position(|b| b.is_target)
        .map(|i| &transforms[i])
        .filter(|t| !t.categories.is_empty() && !t.categories_are_indices())
        .map(|t| t.categories.as_slice());
    let classification = metrics::classification(program, &dataset, predict, class_names);
    let columns = match program.task {
        Task::Regression => {
            metrics::regression_columns(program, &dataset, predict, evaluation.width, Some(&transforms))
        }
        _ => vec![],
    };
    let column_names = target_names(program, evaluation.width);
    if args.json {
        let mut out = serde_json::Map::new();
        out.insert("model".into(), json!(model.path));
        out.insert("data".into(), json!(args.data.display().to_string()));
        out.insert("rows".into(), json!(rows));
        out.insert("loss".into(), number(loss));
        out.insert("accuracy".into(), number(evaluation.metrics.accuracy));
        if let Some(c) = &classification {
            classification_json(c, program.train.threshold.value, &mut out);
        }
        if !columns.is_empty() {
            let list: Vec<Value> = columns
                .iter()
                .zip(&column_names)
                .map(|(fit, name)| {
                    json!({"name": name, "mse": fit.mse, "rmse": fit.rmse, "mae": fit.mae, "r2": number(fit.r2)})
                })
                .collect();
            out.insert("targets".into(), Value::Array(list));
        }
        println!("{}", Value::Object(out));
        return Ok(());
    }
    let mut text = format!("loss {} ({rows} rows)\n", loss.map_or("n/a".into(), |l| super::fixed(l, 6)));
    if let Some(c) = &classification {
        text.push_str(&classification_text(c, program, rows));
    }
    if !columns.is_empty() {
        text.push_str(&regression_text(&columns, &column_names));
    }
    print!("{text}");
    Ok(())
}

fn number(x: Option<f64>) -> Value {
    match x {
        Some(v) if v.is_finite() => json!(v),
        _ => Value::Null,
    }
}

/// The target's column names, or `y1, y2, ..`.
fn target_names(program: &Program, width: usize) -> Vec<String> {
    let Some(binding) = program.data.iter().find(|b| b.is_target && b.width() as usize == width) else {
        return (1..=width).map(|c| format!("output{c}")).collect();
    };
    match &binding.columns {
        Columns::List(refs) if refs.len() == width => refs
            .iter()
            .map(|r| match r {
                ColumnRef::Name(n, _) => n.clone(),
                ColumnRef::Index(c, _) => format!("column{}", c + 1),
            })
            .collect(),
        _ if width == 1 => vec![binding.name.clone()],
        _ => (1..=width).map(|c| format!("{}{c}", binding.name)).collect(),
    }
}

fn scores_json(s: &Scores) -> Value {
    json!({"precision": s.precision, "recall": s.recall, "f1-score": s.f1, "support": s.support})
}

/// The report as scikit-learn's `classification_report(output_dict=True)`
/// spells it, with the confusion matrices beside it.
fn classification_json(c: &Classification, threshold: f64, out: &mut serde_json::Map<String, Value>) {
    let report = &c.report;
    out.insert("classes".into(), json!(report.names));
    let matrices: Vec<Vec<Vec<u64>>> = c
        .confusions
        .iter()
        .map(|m| (0..m.classes).map(|t| (0..m.classes).map(|p| m.get(t, p)).collect()).collect())
        .collect();
    if c.exact_match.is_some() {
        out.insert("confusion".into(), json!(matrices));
        out.insert("label_accuracy".into(), json!(c.label_accuracy));
        out.insert("exact_match".into(), number(c.exact_match));
    } else {
        out.insert("confusion".into(), json!(matrices[0]));
    }
    if c.confusions.iter().all(|m| m.classes == 2) {
        out.insert("threshold".into(), json!(threshold));
    }
    let mut dict = serde_json::Map::new();
    for (name, scores) in report.names.iter().zip(&report.rows) {
        dict.insert(name.clone(), scores_json(scores));
    }
    if let Some((accuracy, _)) = report.accuracy {
        dict.insert("accuracy".into(), json!(accuracy));
    }
    for (name, scores) in &report.averages {
        dict.insert((*name).into(), scores_json(scores));
    }
    out.insert("report".into(), Value::Object(dict));
}

fn classification_text(c: &Classification, program: &Program, rows: usize) -> String {
    let mut text = String::new();
    let threshold = program.train.threshold.value;
    if let Some((accuracy, total)) = c.report.accuracy {
        let correct = (accuracy * total as f64).round() as u64;
        text.push_str(&format!("accuracy {accuracy:.4} ({correct} of {rows} rows)\n"));
    }
    if let Some(exact) = c.exact_match {
        text.push_str(&format!("exact match {exact:.4} (rows with every label right, threshold {threshold})\n"));
        for (name, accuracy) in c.report.names.iter().zip(&c.label_accuracy) {
            text.push_str(&format!("  label {name}: accuracy {accuracy:.4}\n"));
        }
    }
    if matches!(program.task, Task::Binary { labels: 1 }) {
        text.push_str(&format!("(yes where the probability is at least {threshold})\n"));
    }
    for (i, matrix) in c.confusions.iter().enumerate() {
        let names: Vec<String> = if c.exact_match.is_some() {
            text.push_str(&format!("\nlabel {}: ", c.report.names[i]));
            vec!["0".into(), "1".into()]
        } else {
            text.push('\n');
            c.report.names.clone()
        };
        text.push_str("confusion matrix (rows: true class, columns: predicted class)\n");
        text.push_str(&confusion_text(matrix, &names));
    }
    text.push('\n');
    text.push_str(&report_text(&c.report));
    text
}

fn confusion_text(matrix: &metrics::Confusion, names: &[String]) -> String {
    let widest_count = matrix.counts.iter().max().map_or(1, |m| m.to_string().len());
    let cell = names.iter().map(String::len).max().unwrap_or(1).max(widest_count);
    let label = names.iter().map(String::len).max().unwrap_or(1);
    let mut text = format!("{:>label$} ", "");
    for name in names {
        text.push_str(&format!(" {name:>cell$}"));
    }
    text.push('\n');
    for (t, name) in names.iter().enumerate() {
        text.push_str(&format!("{name:>label$} "));
        for p in 0..matrix.classes {
            text.push_str(&format!(" {:>cell$}", matrix.get(t, p)));
        }
        text.push('\n');
    }
    text
}

/// scikit-learn's `classification_report` text, two digits.
fn report_text(report: &Report) -> String {
    let width = report.names.iter().map(String::len).chain([12]).max().unwrap_or(12);
    let row = |name: &str, s: &Scores| {
        format!("{name:>width$}  {:>9.2} {:>9.2} {:>9.2} {:>9}\n", s.precision, s.recall, s.f1, s.support)
    };
    let mut text = format!("{:>width$}  {:>9} {:>9} {:>9} {:>9}\n\n", "", "precision", "recall", "f1-score", "support");
    for (name, scores) in report.names.iter().zip(&report.rows) {
        text.push_str(&row(name, scores));
    }
    text.push('\n');
    if let Some((accuracy, total)) = report.accuracy {
        text.push_str(&format!("{:>width$}  {:>9} {:>9} {accuracy:>9.2} {total:>9}\n", "accuracy", "", ""));
    }
    for (name, scores) in &report.averages {
        text.push_str(&row(name, scores));
    }
    text
}

fn regression_text(columns: &[ColumnFit], names: &[String]) -> String {
    let width = names.iter().map(String::len).chain([6]).max().unwrap_or(6);
    let mut text = format!("\n{:<width$}  {:>12} {:>12} {:>12} {:>8}\n", "target", "mse", "rmse", "mae", "r2");
    for (fit, name) in columns.iter().zip(names) {
        let r2 = fit.r2.map_or("n/a".to_string(), |r| format!("{r:.4}"));
        text.push_str(&format!("{name:<width$}  {:>12.6} {:>12.6} {:>12.6} {r2:>8}\n", fit.mse, fit.rmse, fit.mae));
    }
    text.push_str("(in the target's units)\n");
    text
}
