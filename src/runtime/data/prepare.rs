//! From a [`Table`] of cells to the matrices the kernels read.
//!
//! In order: labels become category indices ([`vocabulary`]) or numbers
//! (a one-column target used as a number); rows with a missing cell are an
//! error or dropped (`missing = drop`) unless their binding fills them; the
//! rows are split into training and validation ([`Split`]); everything
//! fitted from data — categories, means and deviations, fill values — is
//! fitted ([`Transform`]), on the training rows alone except the category
//! lists, which name every label of the training file; then each binding is
//! laid out as one row-major matrix ([`Dataset`]).
//!
//! Prediction and evaluation files go through [`apply`] with the transforms
//! saved with the weights: an unknown label is an error there.

use super::table::{Cells, Labels, Table};
use super::{BindError, DataError, shorten};
use crate::diag::Diagnostic;
use crate::ir::program::{Binding, Categories, Encoding, FillValue, Missing, Program, SplitKind, Task};

/// One-hot bindings may have at most this many categories: a column with
/// more distinct values is an identifier or a number, not a category.
pub const MAX_CATEGORIES: usize = 1000;

/// How a binding's file values become model values: missing cells take
/// `fill`, then `(v · scale − mean) / std`; labels become the index of
/// their category.
#[derive(Clone, Debug, PartialEq)]
pub struct Transform {
    pub scale: f64,
    /// One per column; empty when the binding is not standardised.
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// The categories in index order (one-hot bindings and class targets);
    /// empty for numeric bindings.
    pub categories: Vec<String>,
    /// One per column, in the file's units; empty when not filled.
    pub fill: Vec<f64>,
}

impl Transform {
    pub fn identity(scale: f64) -> Transform {
        Transform { scale, mean: Vec::new(), std: Vec::new(), categories: Vec::new(), fill: Vec::new() }
    }

    pub fn apply(&self, column: usize, value: f64) -> f64 {
        let scaled = value * self.scale;
        if self.mean.is_empty() { scaled } else { (scaled - self.mean[column]) / self.std[column] }
    }

    /// From model units back to the file's units (for predictions).
    pub fn invert(&self, column: usize, value: f64) -> f64 {
        let scaled = if self.mean.is_empty() { value } else { value * self.std[column] + self.mean[column] };
        scaled / self.scale
    }

    /// Whether the categories are the class indices themselves (`0`, `1`, ..),
    /// as opposed to names read from the data.
    pub fn categories_are_indices(&self) -> bool {
        self.categories.iter().enumerate().all(|(k, name)| *name == k.to_string())
    }
}

/// Rows bound for the model: one row-major matrix per input and target.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub rows: usize,
    /// One `rows × width` matrix per `graph.inputs` entry.
    pub inputs: Vec<Vec<f32>>,
    /// One `rows × width` matrix per `graph.targets` entry (empty when the
    /// file has no targets).
    pub targets: Vec<Vec<f32>>,
    pub has_targets: bool,
}

/// Which rows are held out for validation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Split {
    pub fraction: f64,
    pub kind: SplitKind,
    pub seed: u64,
}

impl Split {
    pub const NONE: Split = Split { fraction: 0.0, kind: SplitKind::Auto, seed: 0 };
}

/// What preparing the training data did, for the run's echo.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Rows dropped for a missing cell (`missing = drop`).
    pub dropped: usize,
    /// Cells filled, per binding name.
    pub filled: Vec<(String, usize)>,
    /// A warning about the split (class proportions far apart).
    pub warnings: Vec<String>,
    /// How the validation rows were chosen, when some were.
    pub split: Option<SplitKind>,
}

/// The number of categories of each `one_hot(column)` written without it,
/// counted over every row of the training file.
pub fn categories(bindings: &[Binding], table: &Table) -> Result<Categories, DataError> {
    let mut found = Categories::new();
    for (i, (binding, cells)) in bindings.iter().zip(&table.cells).enumerate() {
        if let (Encoding::OneHot { .. }, Cells::Labels(labels)) = (binding.encoding, cells) {
            too_many(labels.distinct(), binding, i, table)?;
            if binding.encoding == (Encoding::OneHot { classes: 0 }) {
                found.insert(binding.name.clone(), labels.distinct() as u32);
            }
        }
    }
    Ok(found)
}

/// A label column with more than [`MAX_CATEGORIES`] distinct values.
fn too_many(distinct: usize, binding: &Binding, i: usize, table: &Table) -> Result<(), DataError> {
    if distinct <= MAX_CATEGORIES {
        return Ok(());
    }
    let column = table.header.column_name(table.column(i, 0));
    Err(error(
        table,
        None,
        Some(table.column(i, 0)),
        format!(
            "{column} has {distinct} distinct values: more than the {MAX_CATEGORIES} categories nnc one-hot encodes"
        ),
        Some(format!(
            "is `{}` an identifier or a number? Bind it with `columns(..)` to read it as numbers",
            binding.name
        )),
    ))
}

fn error(table: &Table, row: Option<usize>, column: Option<usize>, message: String, help: Option<String>) -> DataError {
    DataError {
        file: table.file().to_string(),
        line: row.map(|r| table.lines[r] as usize),
        column: column.map(|c| c + 1),
        message,
        help,
    }
}

/// The categories of a label column, in index order: with `classes` given
/// and every label a whole number below it, the numbers themselves (so a
/// class absent from the data keeps its place); otherwise the distinct
/// labels sorted — numerically when all are numbers, else by their text
/// (as scikit-learn's `LabelEncoder` does). A given number of classes that
/// differs from the labels found is an error in the model file.
pub fn vocabulary(
    labels: &Labels,
    classes: Option<u32>,
    binding: &Binding,
    i: usize,
    table: &Table,
) -> Result<Vec<String>, BindError> {
    let numbers: Option<Vec<f64>> = labels.names.iter().map(|n| n.parse::<f64>().ok()).collect();
    if let (Some(k), Some(values)) = (classes, &numbers) {
        // Numbers with a known count of classes are the class indices.
        let out_of_range = |v: f64| v.fract() != 0.0 || v < 0.0 || v >= k as f64;
        let first_bad = (0..values.len()).filter(|&c| out_of_range(values[c])).min_by_key(|&c| labels.first_row[c]);
        let Some(code) = first_bad else {
            return Ok((0..k).map(|c| c.to_string()).collect());
        };
        let bad = labels.codes.iter().filter(|&&c| c != Labels::MISSING && out_of_range(values[c as usize])).count();
        let c = table.column(i, 0);
        let help = match binding.encoding {
            Encoding::OneHot { .. } => format!("`{}` is declared as one_hot(.., {k})", binding.name),
            Encoding::Raw { .. } => {
                format!("`{}` holds class indices for `cross_entropy` over {k} classes", binding.name)
            }
        };
        return Err(BindError::Data(error(
            table,
            Some(labels.first_row[code] as usize),
            Some(c),
            format!(
                "class `{}` in {} is not a class from 0 to {}{}",
                shorten(&labels.names[code]),
                table.header.column_name(c),
                k - 1,
                more_cells(bad)
            ),
            Some(help),
        )));
    }
    let mut order: Vec<usize> = (0..labels.names.len()).collect();
    match &numbers {
        Some(values) => order.sort_by(|&a, &b| values[a].total_cmp(&values[b])),
        None => order.sort_by(|&a, &b| labels.names[a].cmp(&labels.names[b])),
    }
    let names: Vec<String> = order.iter().map(|&k| labels.names[k].clone()).collect();
    let column = table.header.column_name(table.column(i, 0));
    too_many(names.len(), binding, i, table)?;
    if let Some(k) = classes
        && names.len() != k as usize
    {
        let shown: Vec<String> = names.iter().take(12).map(|n| format!("`{}`", shorten(n))).collect();
        let more = if names.len() > shown.len() { format!(", … ({} in all)", names.len()) } else { String::new() };
        let what = if binding.class_indices.is_some() { "the model's output has" } else { "the binding declares" };
        return Err(BindError::Model(vec![
            Diagnostic::new(
                "E0309",
                format!("{column} of {} has {} classes but {what} {k}", table.file(), names.len()),
            )
            .with_label(binding.span, format!("{k} classes"))
            .with_help(format!("its labels are {}{more}", shown.join(", "))),
        ]));
    }
    Ok(names)
}

/// ` (and 3 more cells in this column)` after the first of `count` cells.
fn more_cells(count: usize) -> String {
    match count.saturating_sub(1) {
        0 => String::new(),
        1 => " (and 1 more cell in this column)".into(),
        n => format!(" (and {n} more cells in this column)"),
    }
}

/// Map each code of `labels` to its category index (`u32::MAX` when the
/// label is not a category).
fn code_map(labels: &Labels, categories: &[String]) -> Vec<u32> {
    let numeric = categories.iter().all(|c| c.parse::<f64>().is_ok());
    labels
        .names
        .iter()
        .map(|name| {
            let found = categories.iter().position(|c| c == name).or_else(|| {
                // `1.0` in a file names the class `1`.
                let value = name.parse::<f64>().ok().filter(|_| numeric)?;
                categories.iter().position(|c| c.parse::<f64>().ok() == Some(value))
            });
            found.map_or(u32::MAX, |k| k as u32)
        })
        .collect()
}

/// The labels of a one-column target used as numbers (regression, or a
/// 0/1 target of `binary_cross_entropy`), parsed.
fn labels_to_numbers(labels: &Labels, i: usize, table: &Table) -> Result<Cells, DataError> {
    let mut values = Vec::with_capacity(labels.names.len());
    let mut first_bad: Option<(u32, usize)> = None;
    for (code, name) in labels.names.iter().enumerate() {
        match name.parse::<f64>() {
            Ok(v) if v.is_finite() => values.push(v),
            _ => {
                values.push(f64::NAN);
                let row = labels.first_row[code];
                if first_bad.is_none_or(|(r, _)| row < r) {
                    first_bad = Some((row, code));
                }
            }
        }
    }
    if let Some((row, code)) = first_bad {
        let bad = labels.codes.iter().filter(|&&c| c != Labels::MISSING && values[c as usize].is_nan()).count();
        let more = match bad - 1 {
            0 => String::new(),
            1 => " (and 1 more cell in this column)".into(),
            n => format!(" (and {n} more cells in this column)"),
        };
        let column = table.column(i, 0);
        return Err(error(
            table,
            Some(row as usize),
            Some(column),
            format!("`{}` in {} is not a number{more}", shorten(&labels.names[code]), table.header.column_name(column)),
            Some("a numeric target reads numbers; class labels need `one_hot(column)` or `cross_entropy`".into()),
        ));
    }
    let codes = &labels.codes;
    let values = codes.iter().map(|&c| if c == Labels::MISSING { f64::NAN } else { values[c as usize] }).collect();
    Ok(Cells::Numbers { values, width: 1 })
}

/// A label column's categories (in index order) and, per interned code, its
/// category index (`u32::MAX`: not a category).
type Categorized = (Vec<String>, Vec<u32>);

/// Turn the table's label columns into what `program` needs: category
/// indices (returned per binding, with the categories) or numbers (in place).
fn resolve_labels(
    program: &Program,
    table: &mut Table,
    saved: Option<&[Transform]>,
) -> Result<Vec<Option<Categorized>>, BindError> {
    let mut out = Vec::new();
    for (i, binding) in program.data.iter().enumerate() {
        let Cells::Labels(labels) = &table.cells[i] else {
            out.push(None);
            continue;
        };
        let classes = match binding.encoding {
            Encoding::OneHot { classes } => Some(classes),
            Encoding::Raw { .. } => binding.class_indices,
        };
        let Some(classes) = classes else {
            let numbers = labels_to_numbers(labels, i, table)?;
            table.cells[i] = numbers;
            out.push(None);
            continue;
        };
        let categories = match saved {
            Some(saved) if !saved[i].categories.is_empty() => saved[i].categories.clone(),
            _ => vocabulary(labels, Some(classes), binding, i, table)?,
        };
        let map = code_map(labels, &categories);
        out.push(Some((categories, map)));
    }
    Ok(out)
}

/// Rows with a missing cell in a binding that does not fill it: an error
/// (counted per column, pointing at the first), or the rows to drop
/// (empty when there are none).
fn missing_rows(program: &Program, table: &Table, policy: Missing) -> Result<Vec<bool>, DataError> {
    let mut missing = vec![false; table.rows];
    // Per file column: (count, first row).
    let mut counts: Vec<(usize, usize, usize)> = Vec::new();
    for (i, binding) in program.data.iter().enumerate() {
        if binding.fill.is_some() {
            continue;
        }
        if !table.may_miss(i) {
            continue;
        }
        match &table.cells[i] {
            Cells::Numbers { values, width } if has_nan(values) => {
                for k in 0..*width {
                    let found = missing_cells(&mut missing, |r| values[r * width + k].is_nan());
                    counts.extend(found.map(|(count, first)| (table.column(i, k), count, first)));
                }
            }
            Cells::Floats { values, width } if has_nan(values) => {
                for k in 0..*width {
                    let found = missing_cells(&mut missing, |r| values[r * width + k].is_nan());
                    counts.extend(found.map(|(count, first)| (table.column(i, k), count, first)));
                }
            }
            Cells::Numbers { .. } | Cells::Floats { .. } => {}
            Cells::Labels(labels) => {
                let found = missing_cells(&mut missing, |r| labels.codes[r] == Labels::MISSING);
                counts.extend(found.map(|(count, first)| (table.column(i, 0), count, first)));
            }
            Cells::Absent => {}
        }
    }
    if counts.is_empty() {
        // None: no row to mark (nor memory to look through).
        return Ok(Vec::new());
    }
    if policy == Missing::Drop {
        return Ok(missing);
    }
    counts.sort_by_key(|&(c, _, _)| c);
    let total: usize = counts.iter().map(|c| c.1).sum();
    let (column, _, first) = *counts.iter().min_by_key(|c| (c.2, c.0)).expect("not empty");
    let per_column: Vec<String> = counts
        .iter()
        .take(10)
        .map(|&(c, n, _)| format!("{} {n}", table.header.column_name(c).trim_start_matches("column ")))
        .collect();
    let cells = if total == 1 { "1 missing cell".to_string() } else { format!("{total} missing cells") };
    Err(error(
        table,
        Some(first),
        Some(column),
        format!("{cells} in bound columns ({}); the first is here", per_column.join(", ")),
        Some(
            "drop those rows with `missing = drop` in the `data` block, or fill a numeric binding's cells \
             with `fill(mean)`, `fill(median)` or `fill(0)` after it (add `indicator` for a 0/1 column \
             marking them)"
                .into(),
        ),
    ))
}

/// Whether any of `values` is NaN (missing), looked for in blocks without
/// an early exit inside each, which the compiler turns into vector code.
fn has_nan<T: Copy + PartialEq>(values: &[T]) -> bool {
    // NaN is the one value not equal to itself.
    #[allow(clippy::eq_op)]
    values.chunks(4096).any(|block| block.iter().fold(false, |found, &v| found | (v != v)))
}

/// Mark the rows where `is_missing(row)`: how many there are and the first.
fn missing_cells(missing: &mut [bool], is_missing: impl Fn(usize) -> bool) -> Option<(usize, usize)> {
    let mut count = 0;
    let mut first = usize::MAX;
    for (r, flag) in missing.iter_mut().enumerate() {
        if is_missing(r) {
            *flag = true;
            count += 1;
            first = first.min(r);
        }
    }
    (count > 0).then_some((count, first))
}

/// The class of each row, when the target is a class (for stratifying).
fn row_classes(program: &Program, labels: &[Option<Categorized>], table: &Table) -> Option<Vec<u32>> {
    if !matches!(program.task, Task::Classification { .. }) {
        return None;
    }
    let i = program.data.iter().position(|b| b.is_target)?;
    let (_, map) = labels[i].as_ref()?;
    let Cells::Labels(cells) = &table.cells[i] else { return None };
    Some(cells.codes.iter().map(|&c| if c == Labels::MISSING { u32::MAX } else { map[c as usize] }).collect())
}

/// Split `rows` (in file order) into training and validation rows, both
/// kept in file order.
fn split_rows(rows: Vec<usize>, split: Split, classes: Option<&[u32]>) -> (Vec<usize>, Vec<usize>, SplitKind) {
    let n = rows.len();
    let held = ((n as f64) * split.fraction).round() as usize;
    if held == 0 {
        return (rows, Vec::new(), SplitKind::Auto);
    }
    let kind = match (split.kind, classes) {
        (SplitKind::Auto, Some(_)) => SplitKind::Stratified,
        (SplitKind::Auto, None) => SplitKind::Random,
        (SplitKind::Stratified, None) => SplitKind::Random,
        (kind, _) => kind,
    };
    let mut validation = vec![false; n];
    let mut rng = SplitRng::new(split.seed);
    match kind {
        SplitKind::Last => validation[n - held..].iter_mut().for_each(|v| *v = true),
        SplitKind::Random | SplitKind::Auto => {
            for &p in &rng.sample(n, held) {
                validation[p] = true;
            }
        }
        SplitKind::Stratified => {
            let classes = classes.expect("stratified needs classes");
            let mut by_class: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
            for (p, &r) in rows.iter().enumerate() {
                by_class.entry(classes[r]).or_default().push(p);
            }
            for positions in by_class.values() {
                let take = ((positions.len() as f64) * split.fraction).round() as usize;
                for &k in &rng.sample(positions.len(), take.min(positions.len().saturating_sub(1))) {
                    validation[positions[k]] = true;
                }
            }
        }
    }
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (p, &r) in rows.iter().enumerate() {
        if validation[p] { val.push(r) } else { train.push(r) }
    }
    (train, val, kind)
}

/// A small seeded generator for the split (SplitMix64): the split must not
/// change when a dependency's generator does.
pub(super) struct SplitRng(u64);

impl SplitRng {
    pub(super) fn new(seed: u64) -> SplitRng {
        SplitRng(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `k` distinct positions of `0..n`, by a partial Fisher–Yates shuffle.
    pub(super) fn sample(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        for i in 0..k.min(n) {
            let j = i + (self.next() % (n - i) as u64) as usize;
            order.swap(i, j);
        }
        order.truncate(k.min(n));
        order
    }
}

/// Fit scale, standardisation and fill values on the training `rows`.
fn fit(
    program: &Program,
    table: &Table,
    rows: &[usize],
    labels: &[Option<Categorized>],
) -> Result<Vec<Transform>, DataError> {
    let mut transforms = Vec::new();
    for (i, binding) in program.data.iter().enumerate() {
        let mut transform = Transform::identity(binding.scale);
        if let Some((categories, _)) = &labels[i] {
            transform.categories = categories.clone();
        }
        if let Cells::Numbers { values, width } = &table.cells[i] {
            let column = |k: usize| rows.iter().map(move |&r| values[r * width + k]).filter(|v| !v.is_nan());
            if let Some(fill) = binding.fill {
                for k in 0..*width {
                    let value = match fill.value {
                        FillValue::Constant(v) => v,
                        FillValue::Mean => {
                            let (sum, n) = column(k).fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
                            if n == 0 { 0.0 } else { sum / n as f64 }
                        }
                        FillValue::Median => {
                            let mut sorted: Vec<f64> = column(k).collect();
                            sorted.sort_by(f64::total_cmp);
                            match sorted.len() {
                                0 => 0.0,
                                n if n % 2 == 1 => sorted[n / 2],
                                n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
                            }
                        }
                    };
                    transform.fill.push(value);
                }
            }
            if binding.standardize {
                for k in 0..*width {
                    let fill = transform.fill.get(k).copied();
                    let value = |r: usize| {
                        let v = values[r * width + k];
                        if v.is_nan() { fill.unwrap_or(0.0) } else { v }
                    };
                    let n = rows.len().max(1) as f64;
                    let mut sum = 0.0;
                    for &r in rows {
                        sum += value(r) * binding.scale;
                    }
                    let mean = sum / n;
                    let mut ss = 0.0;
                    for &r in rows {
                        let d = value(r) * binding.scale - mean;
                        ss += d * d;
                    }
                    if !(mean.is_finite() && ss.is_finite()) {
                        let c = table.column(i, k);
                        return Err(error(
                            table,
                            None,
                            Some(c),
                            format!("the values in {} are too large to standardize", table.header.column_name(c)),
                            Some(
                                "their squares overflow a 64-bit float: scale the column down first, e.g. `/ 1e6`"
                                    .into(),
                            ),
                        ));
                    }
                    let var = ss / n;
                    transform.mean.push(mean);
                    transform.std.push(if var > 0.0 { var.sqrt() } else { 1.0 });
                }
            }
        }
        transforms.push(transform);
    }
    Ok(transforms)
}

/// Lay out `rows` of the table as the model's matrices, with `transforms`.
/// A binding's `f32` cells already taken out of the table (`moved`, when
/// `rows` are all of its rows) become its matrix without a copy.
fn build(
    program: &Program,
    table: &Table,
    rows: &[usize],
    transforms: &[Transform],
    labels: &[Option<Categorized>],
    moved: &mut [Option<Vec<f32>>],
) -> Result<Dataset, DataError> {
    let n = rows.len();
    let mut inputs: Vec<Vec<f32>> = vec![Vec::new(); program.graph.inputs.len()];
    let mut targets: Vec<Vec<f32>> = vec![Vec::new(); program.graph.targets.len()];
    let mut has_targets = !program.graph.targets.is_empty();
    for (i, binding) in program.data.iter().enumerate() {
        let out = if binding.is_target { &mut targets } else { &mut inputs };
        let out = &mut out[binding.index as usize];
        if let Some(values) = moved.get_mut(i).and_then(Option::take) {
            *out = values;
            continue;
        }
        let transform = &transforms[i];
        if !matches!(table.cells[i], Cells::Labels(_)) {
            out.reserve(n * binding.width() as usize);
        }
        match &table.cells[i] {
            Cells::Absent => has_targets = false,
            // Rows with a missing cell were refused or dropped, so every
            // cell is finite: the kernels read these values as they are.
            Cells::Floats { values, width } => {
                for &r in rows {
                    out.extend_from_slice(&values[r * width..(r + 1) * width]);
                }
            }
            Cells::Numbers { values, width } => {
                let indicator = binding.fill.is_some_and(|f| f.indicator);
                for &r in rows {
                    for k in 0..*width {
                        let raw = values[r * width + k];
                        let v = if raw.is_nan() { transform.fill.get(k).copied().unwrap_or(f64::NAN) } else { raw };
                        let value = transform.apply(k, v) as f32;
                        if !value.is_finite() {
                            let c = table.column(i, k);
                            let message = if raw.is_nan() {
                                format!(
                                    "a missing cell in {} has no value to fill it with",
                                    table.header.column_name(c)
                                )
                            } else {
                                format!(
                                    "`{raw}` in {} is beyond ±3.4e38 once scaled, the range of 32-bit floats",
                                    table.header.column_name(c)
                                )
                            };
                            return Err(error(
                                table,
                                Some(r),
                                Some(c),
                                message,
                                Some(format!("nnc trains in 32-bit floats: check how `{}` is scaled", binding.name)),
                            ));
                        }
                        if let Some(classes) = binding.class_indices
                            && (value.fract() != 0.0 || value < 0.0 || value >= classes as f32)
                        {
                            let c = table.column(i, k);
                            return Err(error(
                                table,
                                Some(r),
                                Some(c),
                                format!(
                                    "class `{value}` in {} is not a class from 0 to {}",
                                    table.header.column_name(c),
                                    classes - 1
                                ),
                                Some(format!(
                                    "`{}` holds class indices for `cross_entropy` over {classes} classes",
                                    binding.name
                                )),
                            ));
                        }
                        out.push(value);
                    }
                    if indicator {
                        out.extend((0..*width).map(|k| f32::from(values[r * width + k].is_nan())));
                    }
                }
            }
            Cells::Labels(cells) => {
                let (categories, map) = labels[i].as_ref().expect("label columns are resolved first");
                let one_hot = matches!(binding.encoding, Encoding::OneHot { .. });
                // Rows of zeros (fresh zeroed memory, not written twice)
                // with a one at the class, on 2 MB pages where the memory
                // is fresh: binding 10⁶ CSV rows of 3 classes took 10.3 ms
                // instead of 13.0 (median of 5). After a Parquet read glibc
                // keeps freed memory, and the time did not change.
                let classes = categories.len();
                if one_hot {
                    *out = vec![0.0; n * classes];
                    super::table::advise_huge_pages(out);
                } else {
                    out.reserve(n);
                }
                for (j, &r) in rows.iter().enumerate() {
                    let code = cells.codes[r];
                    let index = if code == Labels::MISSING { u32::MAX } else { map[code as usize] };
                    if index == u32::MAX {
                        let c = table.column(i, 0);
                        let text = if code == Labels::MISSING { None } else { Some(&cells.names[code as usize]) };
                        let shown: Vec<String> =
                            categories.iter().take(12).map(|n| format!("`{}`", shorten(n))).collect();
                        let more = if categories.len() > 12 {
                            format!(", … ({} in all)", categories.len())
                        } else {
                            String::new()
                        };
                        let unseen = cells
                            .codes
                            .iter()
                            .filter(|&&k| k != Labels::MISSING && map[k as usize] == u32::MAX)
                            .count();
                        let others = match unseen.saturating_sub(1) {
                            0 => String::new(),
                            1 => " (and 1 more cell in this column)".into(),
                            m => format!(" (and {m} more cells in this column)"),
                        };
                        let message = match text {
                            Some(text) => format!(
                                "`{}` in {} is not one of the {} categories seen in training{others}",
                                shorten(text),
                                table.header.column_name(c),
                                categories.len()
                            ),
                            None => format!("a missing cell in {} has no category", table.header.column_name(c)),
                        };
                        return Err(error(
                            table,
                            Some(r),
                            Some(c),
                            message,
                            Some(format!("`{}` knows {}{more}", binding.name, shown.join(", "))),
                        ));
                    }
                    if one_hot {
                        out[j * classes + index as usize] = 1.0;
                    } else {
                        out.push(index as f32);
                    }
                }
            }
        }
    }
    if !has_targets {
        targets.iter_mut().for_each(Vec::clear);
    }
    Ok(Dataset { rows: n, inputs, targets, has_targets })
}

/// Training (and validation) data for a program, with everything fitted on
/// the training rows.
#[derive(Clone, Debug)]
pub struct Bound {
    pub train: Dataset,
    pub validation: Option<Dataset>,
    pub transforms: Vec<Transform>,
    pub report: Report,
    /// The training file's columns and how they were read.
    pub header: super::layout::Header,
    pub layout: super::layout::Layout,
    pub delimiter: u8,
}

/// Prepare a training table (and a separate validation table, if any).
pub fn training(
    program: &Program,
    table: Table,
    split: Split,
    validation_table: Option<Table>,
) -> Result<Bound, BindError> {
    let split = if validation_table.is_some() { Split::NONE } else { split };
    // Each row's class is only needed to hold rows out (stratified).
    let mut resolved = resolve_rows(program, table, split.fraction > 0.0)?;
    let kept = std::mem::take(&mut resolved.kept);
    let rows = kept.len();
    let (train_rows, val_rows, kind) = split_rows(kept, split, resolved.classes.as_deref());
    if train_rows.is_empty() {
        return Err(BindError::Data(error(
            &resolved.table,
            None,
            None,
            format!("a validation split of {} leaves no training rows out of {rows}", split.fraction),
            None,
        )));
    }
    let mut warnings = Vec::new();
    if !val_rows.is_empty()
        && let Some(classes) = &resolved.classes
    {
        warnings.extend(proportion_warning(classes, &train_rows, &val_rows, program, &resolved.labels));
    }
    let mut bound = resolved.into_bound(program, &train_rows, &val_rows)?;
    if !val_rows.is_empty() {
        bound.report.split = Some(kind);
        bound.report.warnings.extend(warnings);
    }
    if let Some(other) = validation_table {
        bound.validation = Some(apply(program, other, &bound.transforms)?);
    }
    Ok(bound)
}

/// A training table with its labels resolved and its missing cells dealt
/// with: what is left is choosing rows ([`Resolved::bind`]). Cross-validation
/// binds it once per fold.
pub struct Resolved {
    table: Table,
    labels: Vec<Option<Categorized>>,
    /// The rows kept (not dropped for a missing cell), in file order.
    pub kept: Vec<usize>,
    /// Each row's class (classification only), for stratifying.
    pub classes: Option<Vec<u32>>,
    dropped: usize,
}

/// Resolve a training table's labels and missing cells.
pub fn resolve(program: &Program, table: Table) -> Result<Resolved, BindError> {
    resolve_rows(program, table, true)
}

/// [`resolve`], each row's class found only when `classes`.
fn resolve_rows(program: &Program, mut table: Table, classes: bool) -> Result<Resolved, BindError> {
    widen(program, &mut table);
    let labels = resolve_labels(program, &mut table, None)?;
    let missing = missing_rows(program, &table, program.missing)?;
    // Without missing cells every row is kept: a loop without a test.
    let kept: Vec<usize> = if missing.contains(&true) {
        (0..table.rows).filter(|&r| !missing[r]).collect()
    } else {
        (0..table.rows).collect()
    };
    if kept.is_empty() {
        return Err(BindError::Data(error(
            &table,
            None,
            None,
            format!("every one of the {} rows has a missing cell: `missing = drop` leaves none", table.rows),
            None,
        )));
    }
    let classes = if classes { row_classes(program, &labels, &table) } else { None };
    let dropped = table.rows - kept.len();
    Ok(Resolved { table, labels, kept, classes, dropped })
}

impl Resolved {
    /// The class names (in index order) of the target, when it has classes.
    pub fn class_names(&self, program: &Program) -> Option<&[String]> {
        let i = program.data.iter().position(|b| b.is_target)?;
        self.labels[i].as_ref().map(|(names, _)| names.as_slice())
    }

    /// Fit everything fitted from data on `train_rows` and lay out the
    /// training and (when any) validation rows.
    pub fn bind(&self, program: &Program, train_rows: &[usize], val_rows: &[usize]) -> Result<Bound, BindError> {
        self.bind_moving(program, train_rows, val_rows, &mut [])
    }

    /// [`Resolved::bind`] for the last time: when every row trains, the
    /// `f32` cells become the training matrices without a copy.
    pub fn into_bound(
        mut self,
        program: &Program,
        train_rows: &[usize],
        val_rows: &[usize],
    ) -> Result<Bound, BindError> {
        let mut moved: Vec<Option<Vec<f32>>> = vec![None; self.table.cells.len()];
        if val_rows.is_empty() && train_rows.len() == self.table.rows {
            for (cells, moved) in self.table.cells.iter_mut().zip(&mut moved) {
                if let Cells::Floats { values, .. } = cells {
                    *moved = Some(std::mem::take(values));
                }
            }
        }
        self.bind_moving(program, train_rows, val_rows, &mut moved)
    }

    fn bind_moving(
        &self,
        program: &Program,
        train_rows: &[usize],
        val_rows: &[usize],
        moved: &mut [Option<Vec<f32>>],
    ) -> Result<Bound, BindError> {
        let table = &self.table;
        let mut report = Report { dropped: self.dropped, ..Report::default() };
        let transforms = fit(program, table, train_rows, &self.labels)?;
        for (i, binding) in program.data.iter().enumerate() {
            if let (Some(_), Cells::Numbers { values, .. }) = (binding.fill, &table.cells[i]) {
                let filled = values.iter().filter(|v| v.is_nan()).count();
                if filled > 0 {
                    report.filled.push((binding.name.clone(), filled));
                }
            }
        }
        let train = build(program, table, train_rows, &transforms, &self.labels, moved)?;
        let validation = match val_rows {
            [] => None,
            rows => Some(build(program, table, rows, &transforms, &self.labels, &mut [])?),
        };
        Ok(Bound {
            train,
            validation,
            transforms,
            report,
            header: table.header.clone(),
            layout: table.layout.clone(),
            delimiter: table.delimiter,
        })
    }
}

/// Bind a file for prediction or evaluation with saved transforms: labels
/// map to the saved categories, missing cells take the saved fill values
/// (any other missing cell is an error: dropping it would misalign the
/// predictions with the rows).
pub fn apply(program: &Program, mut table: Table, transforms: &[Transform]) -> Result<Dataset, BindError> {
    widen(program, &mut table);
    let labels = resolve_labels(program, &mut table, Some(transforms))?;
    missing_rows(program, &table, Missing::Error).map_err(|e| DataError {
        help: Some(
            "every row gets a prediction, so a missing cell needs a value: fill those cells in the file, \
             or train with `fill(..)` on the binding so the fitted value is saved with the weights"
                .into(),
        ),
        ..e
    })?;
    let rows: Vec<usize> = (0..table.rows).collect();
    let mut moved: Vec<Option<Vec<f32>>> = table
        .cells
        .iter_mut()
        .map(|cells| match cells {
            Cells::Floats { values, .. } => Some(std::mem::take(values)),
            _ => None,
        })
        .collect();
    Ok(build(program, &table, &rows, transforms, &labels, &mut moved)?)
}

/// Cells kept in `f32` for a binding that fits or applies something to its
/// values (a table read for other bindings), back in `f64`.
fn widen(program: &Program, table: &mut Table) {
    for (binding, cells) in program.data.iter().zip(&mut table.cells) {
        if !super::table::keeps_f32(binding) {
            cells.widen();
        }
    }
}

/// A warning when the validation rows' classes are distributed far from the
/// training rows' (total variation distance above 0.2), as a split of a file
/// sorted by class gives.
fn proportion_warning(
    classes: &[u32],
    train: &[usize],
    validation: &[usize],
    program: &Program,
    labels: &[Option<Categorized>],
) -> Option<String> {
    let Task::Classification { classes: k } = program.task else { return None };
    let share = |rows: &[usize]| {
        let mut counts = vec![0.0; k as usize];
        for &r in rows {
            if let Some(c) = counts.get_mut(classes[r] as usize) {
                *c += 1.0;
            }
        }
        counts.iter().map(|c| c / rows.len().max(1) as f64).collect::<Vec<f64>>()
    };
    let (a, b) = (share(train), share(validation));
    let distance: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f64>() / 2.0;
    if distance <= 0.2 {
        return None;
    }
    let names = program.data.iter().position(|b| b.is_target).and_then(|i| labels[i].as_ref()).map(|l| &l.0);
    let describe = |s: &[f64]| {
        s.iter()
            .enumerate()
            .map(|(c, p)| {
                let name = names.and_then(|n| n.get(c)).cloned().unwrap_or_else(|| c.to_string());
                format!("{} {:.0}%", shorten(&name), p * 100.0)
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(format!(
        "the validation rows' classes ({}) are far from the training rows' ({}): is the file sorted by class? \
         `validation = stratified({})` holds out the same share of each class",
        describe(&b),
        describe(&a),
        validation.len() as f64 / (train.len() + validation.len()) as f64
    ))
}
