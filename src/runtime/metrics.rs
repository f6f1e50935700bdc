//! What a model's predictions score against the labels: accuracy, the
//! confusion matrix and scikit-learn's `classification_report` figures for
//! classification (softmax classes, yes/no and multi-label sigmoid units),
//! MSE, RMSE, MAE and R² per target column for regression.
//!
//! The true labels are what the loss compares the output with
//! ([`Program::label`]): a target read as it is, or an expression of
//! targets (`species == 1`), which is evaluated here on the reference
//! interpreter over the target columns alone.

use super::data::{Dataset, Transform};
use crate::ir::interp::{self, Env, Tensor};
use crate::ir::program::{Program, Task};
use crate::ir::{Graph, NodeId, Op};

/// The labels the loss compares the output with, `rows × width` row-major.
pub struct Labels {
    pub values: Vec<f32>,
    pub width: usize,
}

/// The label matrix of `data` (which has targets), if the program has one.
/// Without a recorded label (a loss written by hand), a classification
/// model's target of the output's width (one-hot) or of width 1 (class
/// indices) is used.
pub fn labels(program: &Program, data: &Dataset) -> Option<Labels> {
    let rows = data.rows;
    let Some(label) = program.label else {
        let Task::Classification { classes } = program.task else { return None };
        let target = data.targets.iter().find(|t| t.len() == rows * classes as usize || t.len() == rows)?;
        return Some(Labels { values: target.clone(), width: target.len() / rows.max(1) });
    };
    let graph = &program.graph;
    let width = graph.shape(label).width().unwrap_or(1) as usize;
    if let Op::Target(i) = graph.node(label).op {
        return Some(Labels { values: data.targets.get(i as usize)?.clone(), width });
    }
    let sub = subgraph(graph, label);
    if sub.nodes.iter().any(|n| matches!(n.op, Op::Input(_) | Op::Param(_) | Op::State(_))) {
        return None;
    }
    let env = Env {
        targets: graph
            .targets
            .iter()
            .zip(&data.targets)
            .map(|(v, m)| {
                let w = v.width as usize;
                Tensor::new(m.len() / w.max(1), w, m.iter().map(|&x| x as f64).collect())
            })
            .collect(),
        ..Env::default()
    };
    let value = interp::output(&sub, &env, "label")?;
    let values: Vec<f32> = if value.rows == rows && value.cols == width {
        value.data.iter().map(|&v| v as f32).collect()
    } else {
        // A label that does not depend on the rows (a constant): the same for each.
        let at = |r: usize, c: usize| {
            let (r, c) = (if value.rows == 1 { 0 } else { r }, if value.cols == 1 { 0 } else { c });
            value.data.get(r * value.cols + c).copied().unwrap_or(f64::NAN) as f32
        };
        (0..rows * width).map(|i| at(i / width, i % width)).collect()
    };
    Some(Labels { values, width })
}

/// The nodes `node` depends on, copied into a graph of their own with
/// `node` as the output `label`.
fn subgraph(graph: &Graph, node: NodeId) -> Graph {
    let mut needed = vec![false; graph.nodes.len()];
    needed[node.index()] = true;
    for i in (0..=node.index()).rev() {
        if needed[i] {
            for arg in &graph.nodes[i].args {
                needed[arg.index()] = true;
            }
        }
    }
    let mut out = graph.empty_like();
    let mut map: Vec<Option<NodeId>> = vec![None; graph.nodes.len()];
    for (i, n) in graph.nodes.iter().enumerate().take(node.index() + 1) {
        if needed[i] {
            let args: Vec<NodeId> = n.args.iter().map(|a| map[a.index()].expect("topological order")).collect();
            map[i] = Some(out.add_declared(n.op.clone(), &args, n.shape, n.origin.clone()).expect("same shapes"));
        }
    }
    out.set_output("label", map[node.index()].expect("copied"));
    out
}

/// For each row, the true class and the predicted one (softmax
/// classification). Rows whose label names no class are left out.
pub fn class_pairs(labels: &Labels, predict: &[f32], classes: usize, rows: usize) -> Vec<(usize, usize)> {
    (0..rows)
        .filter_map(|r| {
            let truth = if labels.width == 1 {
                let v = labels.values[r];
                (v >= 0.0 && v.fract() == 0.0 && (v as usize) < classes).then_some(v as usize)?
            } else {
                argmax(&labels.values[r * labels.width..(r + 1) * labels.width])
            };
            Some((truth, argmax(&predict[r * classes..(r + 1) * classes])))
        })
        .collect()
}

/// Accuracy of the predictions: the share of rows whose class is right, or
/// for yes/no units the share of answers that are right (over every unit
/// of every row).
pub fn accuracy(program: &Program, data: &Dataset, predict: &[f32]) -> Option<f64> {
    let labels = labels(program, data)?;
    let rows = data.rows;
    match program.task {
        Task::Classification { classes } => {
            let pairs = class_pairs(&labels, predict, classes as usize, rows);
            let correct = pairs.iter().filter(|(t, p)| t == p).count();
            Some(correct as f64 / rows.max(1) as f64)
        }
        Task::Binary { labels: units } => {
            let threshold = program.train.threshold.value;
            let n = rows * units as usize;
            let correct = (0..n).filter(|&i| (labels.values[i] >= 0.5) == (predict[i] as f64 >= threshold)).count();
            Some(correct as f64 / n.max(1) as f64)
        }
        Task::Regression | Task::Minimize => None,
    }
}

/// Counts of (true class, predicted class): rows are the true class.
#[derive(Clone, Debug, PartialEq)]
pub struct Confusion {
    pub classes: usize,
    /// `classes × classes`, row-major.
    pub counts: Vec<u64>,
}

impl Confusion {
    pub fn new(classes: usize, pairs: impl IntoIterator<Item = (usize, usize)>) -> Confusion {
        let mut counts = vec![0; classes * classes];
        for (truth, predicted) in pairs {
            counts[truth * classes + predicted] += 1;
        }
        Confusion { classes, counts }
    }

    pub fn get(&self, truth: usize, predicted: usize) -> u64 {
        self.counts[truth * self.classes + predicted]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn accuracy(&self) -> f64 {
        let correct: u64 = (0..self.classes).map(|c| self.get(c, c)).sum();
        ratio(correct as f64, self.total() as f64)
    }

    /// Precision, recall, F1 and support of each class, scikit-learn's way
    /// (a ratio with nothing to divide by is 0).
    pub fn scores(&self) -> Vec<Scores> {
        (0..self.classes)
            .map(|c| {
                let tp = self.get(c, c) as f64;
                let predicted: u64 = (0..self.classes).map(|t| self.get(t, c)).sum();
                let support: u64 = (0..self.classes).map(|p| self.get(c, p)).sum();
                Scores::from_counts(tp, predicted as f64, support)
            })
            .collect()
    }
}

/// One line of a classification report.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

impl Scores {
    /// From true positives, predicted positives and actual positives.
    fn from_counts(tp: f64, predicted: f64, support: u64) -> Scores {
        let actual = support as f64;
        Scores {
            precision: ratio(tp, predicted),
            recall: ratio(tp, actual),
            f1: ratio(2.0 * tp, predicted + actual),
            support,
        }
    }

    /// The unweighted mean of each figure; the support is the total.
    fn macro_average(rows: &[Scores]) -> Scores {
        let n = rows.len() as f64;
        Scores {
            precision: rows.iter().map(|s| s.precision).sum::<f64>() / n,
            recall: rows.iter().map(|s| s.recall).sum::<f64>() / n,
            f1: rows.iter().map(|s| s.f1).sum::<f64>() / n,
            support: rows.iter().map(|s| s.support).sum(),
        }
    }

    /// Each figure weighted by its support.
    fn weighted_average(rows: &[Scores]) -> Scores {
        let total: u64 = rows.iter().map(|s| s.support).sum();
        let weighted =
            |f: fn(&Scores) -> f64| ratio(rows.iter().map(|s| f(s) * s.support as f64).sum::<f64>(), total as f64);
        Scores {
            precision: weighted(|s| s.precision),
            recall: weighted(|s| s.recall),
            f1: weighted(|s| s.f1),
            support: total,
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// scikit-learn's `classification_report`: one line per class (or label),
/// then the averages by name ("accuracy" is a single figure).
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub names: Vec<String>,
    pub rows: Vec<Scores>,
    /// Single-label classification: the accuracy over all rows.
    pub accuracy: Option<(f64, u64)>,
    /// `micro avg` (multi-label), `macro avg`, `weighted avg`, `samples avg` (multi-label).
    pub averages: Vec<(&'static str, Scores)>,
}

/// Everything `nnc eval` reports for a classification model.
#[derive(Clone, Debug, PartialEq)]
pub struct Classification {
    /// One confusion matrix: the classes (softmax), or no/yes (one sigmoid
    /// unit); for several sigmoid units, one no/yes matrix per label.
    pub confusions: Vec<Confusion>,
    pub report: Report,
    /// Several sigmoid units: the share of right answers per label, and of
    /// rows with every label right (scikit-learn's `accuracy_score`).
    pub label_accuracy: Vec<f64>,
    pub exact_match: Option<f64>,
}

/// The class names to show: the given ones, or "0".."K-1".
fn names(given: Option<&[String]>, count: usize) -> Vec<String> {
    match given {
        Some(names) if names.len() == count => names.to_vec(),
        _ => (0..count).map(|c| c.to_string()).collect(),
    }
}

/// The confusion matrices and the report of a classification model on
/// labelled data; `class_names` name the classes (softmax) or the labels
/// (several sigmoid units).
pub fn classification(
    program: &Program,
    data: &Dataset,
    predict: &[f32],
    class_names: Option<&[String]>,
) -> Option<Classification> {
    let labels = labels(program, data)?;
    let rows = data.rows;
    match program.task {
        Task::Classification { classes } => {
            let k = classes as usize;
            let confusion = Confusion::new(k, class_pairs(&labels, predict, k, rows));
            let scores = confusion.scores();
            let averages = vec![
                ("macro avg", Scores::macro_average(&scores)),
                ("weighted avg", Scores::weighted_average(&scores)),
            ];
            let report = Report {
                names: names(class_names, k),
                rows: scores,
                accuracy: Some((confusion.accuracy(), confusion.total())),
                averages,
            };
            Some(Classification { confusions: vec![confusion], report, label_accuracy: vec![], exact_match: None })
        }
        Task::Binary { labels: units } => {
            let units = units as usize;
            let threshold = program.train.threshold.value;
            let truth = |r: usize, u: usize| labels.values[r * units + u] >= 0.5;
            let said = |r: usize, u: usize| predict[r * units + u] as f64 >= threshold;
            let confusions: Vec<Confusion> = (0..units)
                .map(|u| Confusion::new(2, (0..rows).map(|r| (truth(r, u) as usize, said(r, u) as usize))))
                .collect();
            if units == 1 {
                let confusion = &confusions[0];
                let scores = confusion.scores();
                let report = Report {
                    names: names(class_names, 2),
                    averages: vec![
                        ("macro avg", Scores::macro_average(&scores)),
                        ("weighted avg", Scores::weighted_average(&scores)),
                    ],
                    rows: scores,
                    accuracy: Some((confusion.accuracy(), confusion.total())),
                };
                return Some(Classification { confusions, report, label_accuracy: vec![], exact_match: None });
            }
            // Multi-label: each label's "yes" is the positive class.
            let scores: Vec<Scores> = confusions.iter().map(|c| c.scores()[1]).collect();
            let (tp, predicted, actual) = confusions.iter().fold((0.0, 0.0, 0), |(tp, p, a), c| {
                (tp + c.get(1, 1) as f64, p + (c.get(0, 1) + c.get(1, 1)) as f64, a + c.get(1, 0) + c.get(1, 1))
            });
            let micro = Scores::from_counts(tp, predicted, actual);
            let per_row: Vec<Scores> = (0..rows)
                .map(|r| {
                    let tp = (0..units).filter(|&u| truth(r, u) && said(r, u)).count() as f64;
                    let predicted = (0..units).filter(|&u| said(r, u)).count() as f64;
                    let actual = (0..units).filter(|&u| truth(r, u)).count() as u64;
                    Scores::from_counts(tp, predicted, actual)
                })
                .collect();
            let samples = Scores { support: actual, ..Scores::macro_average(&per_row) };
            let averages = vec![
                ("micro avg", micro),
                ("macro avg", Scores::macro_average(&scores)),
                ("weighted avg", Scores::weighted_average(&scores)),
                ("samples avg", samples),
            ];
            let label_accuracy = confusions.iter().map(Confusion::accuracy).collect();
            let exact = (0..rows).filter(|&r| (0..units).all(|u| truth(r, u) == said(r, u))).count();
            let report = Report { names: names(class_names, units), rows: scores, accuracy: None, averages };
            Some(Classification {
                confusions,
                report,
                label_accuracy,
                exact_match: Some(ratio(exact as f64, rows as f64)),
            })
        }
        Task::Regression | Task::Minimize => None,
    }
}

/// Regression figures of one target column, in the target's units.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnFit {
    pub mse: f64,
    pub rmse: f64,
    pub mae: f64,
    /// Absent for a constant column (scikit-learn's `r2_score` gives 1 or 0 there).
    pub r2: Option<f64>,
}

/// MSE, RMSE, MAE and R² of each output column against the target of the
/// output's width, after undoing the target's preprocessing.
pub fn regression_columns(
    program: &Program,
    data: &Dataset,
    predict: &[f32],
    width: usize,
    transforms: Option<&[Transform]>,
) -> Vec<ColumnFit> {
    let rows = data.rows;
    let Some(index) = data.targets.iter().position(|t| t.len() == rows * width && width > 0) else {
        return vec![];
    };
    let target = &data.targets[index];
    let transform = transforms.and_then(|ts| {
        let i = program.data.iter().position(|b| b.is_target && b.index == index as u32)?;
        ts.get(i)
    });
    let unit = |c: usize, v: f32| transform.map_or(v as f64, |t| t.invert(c, v as f64));
    (0..width)
        .map(|c| {
            let (mut se, mut ae, mut sum) = (0.0, 0.0, 0.0);
            for r in 0..rows {
                let (y, p) = (unit(c, target[r * width + c]), unit(c, predict[r * width + c]));
                se += (p - y) * (p - y);
                ae += (p - y).abs();
                sum += y;
            }
            let n = rows as f64;
            let mean = sum / n;
            let ss_tot: f64 = (0..rows).map(|r| (unit(c, target[r * width + c]) - mean).powi(2)).sum();
            ColumnFit { mse: se / n, rmse: (se / n).sqrt(), mae: ae / n, r2: (ss_tot > 0.0).then(|| 1.0 - se / ss_tot) }
        })
        .collect()
}

pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best
}
