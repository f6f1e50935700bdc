//! `nnc run --report`: the run as one self-contained HTML page.

use super::{Failure, Model, write_atomically};
use nnc::ir::program::Task;
use nnc::picture::report::{self, Report};
use nnc::runtime::data::Bound;
use nnc::runtime::metrics;
use nnc::runtime::train::{Evaluation, Params};
use std::path::Path;

/// What the run knows that the page shows.
pub struct Inputs<'a> {
    pub model: &'a Model,
    pub bound: Option<&'a Bound>,
    /// The settings as `nnc run` echoed them.
    pub echoed: &'a [(&'static str, String)],
    pub metrics: Vec<(String, String)>,
    /// The training curves (SVG), when the run has per-epoch rows.
    pub curves: Option<String>,
}

pub fn write(path: &Path, inputs: &Inputs, params: &Params, evaluation: &Evaluation) -> Result<(), Failure> {
    let program = &inputs.model.front.program;
    let labels = inputs.bound.map(|b| super::draw::input_labels(program, b));
    let diagram = nnc::picture::diagram::draw(program, &inputs.model.text, labels.as_deref(), Some(params)).ok();
    let confusion = match (program.task, inputs.bound) {
        (Task::Classification { classes }, Some(bound)) => {
            let k = classes as usize;
            let rows = bound.train.rows;
            // The class names the data gave the target, else the indices.
            let names = program
                .data
                .iter()
                .zip(&bound.transforms)
                .find(|(b, t)| b.is_target && t.categories.len() == k)
                .map(|(_, t)| t.categories.clone())
                .unwrap_or_else(|| (0..k).map(|i| i.to_string()).collect());
            metrics::labels(program, &bound.train).map(|labels| {
                let pairs = metrics::class_pairs(&labels, &evaluation.predictions, k, rows);
                let matrix = metrics::Confusion::new(k, pairs);
                let counts = (0..k).map(|t| (0..k).map(|p| matrix.get(t, p) as usize).collect()).collect();
                report::Confusion { classes: names, counts }
            })
        }
        _ => None,
    };
    let page = Report {
        title: inputs.model.path.clone(),
        settings: inputs.echoed.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        metrics: inputs.metrics.clone(),
        diagram,
        curves: inputs.curves.clone(),
        confusion,
        source: inputs.model.text.clone(),
    };
    write_atomically(path, report::html(&page).as_bytes())
}
