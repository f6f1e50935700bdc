//! `cross_entropy(out, y, weights = balanced)`: the class weights counted on
//! the training rows, scikit-learn's `compute_class_weight('balanced')`,
//! `n_rows / (K · count_c)`, so that every class carries the same total
//! weight. The checker builds the weighted loss with them as constants
//! (`check::check_weighted`); they are saved with the weights.

use super::data::Dataset;
use super::metrics;
use crate::ir::program::{Program, Task};

/// The balanced weight of each class over `data`'s rows, or the first
/// class that has no row (its weight would be infinite).
pub fn balanced(program: &Program, data: &Dataset) -> Result<Vec<f64>, usize> {
    let counts = class_counts(program, data);
    let k = counts.len();
    let n: usize = counts.iter().sum();
    if let Some(absent) = counts.iter().position(|&c| c == 0) {
        return Err(absent);
    }
    Ok(counts.iter().map(|&c| n as f64 / (k as f64 * c as f64)).collect())
}

/// Rows of each class: a one-hot row counts for its largest column, a
/// class-index row for its index (out-of-range indices are refused when
/// the data is read).
pub fn class_counts(program: &Program, data: &Dataset) -> Vec<usize> {
    let Task::Classification { classes } = program.task else { return Vec::new() };
    let k = classes as usize;
    let mut counts = vec![0; k];
    let Some(labels) = metrics::labels(program, data) else { return counts };
    for row in labels.values.chunks(labels.width.max(1)).take(data.rows) {
        let class = match row {
            [index] => *index as usize,
            _ => (0..row.len()).fold(0, |best, c| if row[c] > row[best] { c } else { best }),
        };
        if let Some(count) = counts.get_mut(class) {
            *count += 1;
        }
    }
    counts
}
