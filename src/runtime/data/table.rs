//! The column model every reader fills: the cells of the bound columns,
//! kept per binding — a row-major matrix for numeric bindings (NaN where a
//! cell is missing), interned labels for one-hot bindings and one-column
//! targets — with each row's line in the file for messages.
//!
//! A numeric binding that takes its values as they are (no scale, no
//! standardisation, no fill) is kept in `f32`, the type the kernels read:
//! its matrix becomes the bound input without a copy. The others keep the
//! file's `f64` values, from which their means, deviations and fill values
//! are fitted, so the fitted figures are those of the file's numbers.

use super::layout::{Header, Layout};
use crate::ir::program::Binding;
use std::collections::HashMap;

/// Cells recognised as missing: empty, `NA`, `N/A`, `NaN`, `nan`, `?`,
/// `NULL`, `null`, `None` (compared after trimming spaces).
pub const MISSING_TOKENS: &[&str] = &["", "NA", "N/A", "n/a", "NaN", "nan", "NAN", "?", "NULL", "null", "None"];

pub fn is_missing(text: &str) -> bool {
    MISSING_TOKENS.contains(&text)
}

/// The bound cells of one data file.
#[derive(Clone, Debug)]
pub struct Table {
    pub header: Header,
    /// The columns each binding reads (`None`: a target the file lacks).
    pub layout: Layout,
    pub rows: usize,
    /// Each row's 1-based line in the file (CSV), or its 1-based row number
    /// (Parquet), for messages.
    pub lines: Vec<u32>,
    /// Per binding, in `bindings` order.
    pub cells: Vec<Cells>,
    /// The field delimiter (CSV), for the run's echo.
    pub delimiter: u8,
    /// What messages call a place: `line` for CSV, `row` for Parquet.
    pub place: &'static str,
}

#[derive(Clone, Debug)]
pub enum Cells {
    /// `rows × width`, row-major; NaN where a cell is missing.
    Numbers {
        values: Vec<f64>,
        width: usize,
    },
    /// The same in `f32` (each cell parsed as `f64` and rounded once), for
    /// bindings that [`keeps_f32`].
    Floats {
        values: Vec<f32>,
        width: usize,
    },
    Labels(Labels),
    /// A target the file does not have.
    Absent,
}

/// One column of labels, interned: `codes[r]` indexes `names`, or is
/// [`Labels::MISSING`].
#[derive(Clone, Debug, Default)]
pub struct Labels {
    pub codes: Vec<u32>,
    /// In order of first appearance.
    pub names: Vec<String>,
    /// The row where each name first appears.
    pub first_row: Vec<u32>,
    index: HashMap<String, u32>,
}

/// Whether a numeric binding's model values are its file values rounded to
/// `f32`: nothing is fitted from them or applied to them, so they need not
/// be kept in `f64`.
pub fn keeps_f32(binding: &Binding) -> bool {
    binding.scale == 1.0 && !binding.standardize && binding.fill.is_none() && binding.class_indices.is_none()
}

impl Cells {
    /// One more row of missing cells (numeric cells only).
    pub fn grow(&mut self) {
        match self {
            Cells::Numbers { values, width } => values.resize(values.len() + *width, f64::NAN),
            Cells::Floats { values, width } => values.resize(values.len() + *width, f32::NAN),
            Cells::Labels(_) | Cells::Absent => {}
        }
    }

    /// Room for `rows` more rows.
    pub fn reserve(&mut self, rows: usize) {
        match self {
            Cells::Numbers { values, width } => values.reserve(rows * *width),
            Cells::Floats { values, width } => values.reserve(rows * *width),
            Cells::Labels(labels) => labels.codes.reserve(rows),
            Cells::Absent => {}
        }
    }

    /// Numeric cells as `f64`, for the fitting that needs them (a table
    /// read for other bindings than it is prepared for).
    pub fn widen(&mut self) {
        if let Cells::Floats { values, width } = self {
            let values = values.iter().map(|&v| f64::from(v)).collect();
            *self = Cells::Numbers { values, width: *width };
        }
    }
}

impl Labels {
    pub const MISSING: u32 = u32::MAX;

    pub fn push(&mut self, text: &str, row: u32) {
        // A column of a few classes: a short scan beats hashing the text.
        if self.names.len() <= 8
            && let Some(code) = self.names.iter().position(|name| name == text)
        {
            self.codes.push(code as u32);
            return;
        }
        if is_missing(text) {
            self.codes.push(Labels::MISSING);
            return;
        }
        let code = match self.index.get(text) {
            Some(&code) => code,
            None => {
                let code = self.names.len() as u32;
                self.names.push(text.to_string());
                self.first_row.push(row);
                self.index.insert(text.to_string(), code);
                code
            }
        };
        self.codes.push(code);
    }

    /// Add `other`'s cells after these; its rows are numbered from `offset`.
    /// Names keep the order of their first appearance.
    pub fn append(&mut self, other: Labels, offset: u32) {
        let remap: Vec<u32> = other
            .names
            .iter()
            .zip(&other.first_row)
            .map(|(name, &row)| match self.index.get(name) {
                Some(&code) => code,
                None => {
                    let code = self.names.len() as u32;
                    self.names.push(name.clone());
                    self.first_row.push(row + offset);
                    self.index.insert(name.clone(), code);
                    code
                }
            })
            .collect();
        self.codes.extend(other.codes.iter().map(|&c| if c == Labels::MISSING { c } else { remap[c as usize] }));
    }

    /// The number of distinct labels.
    pub fn distinct(&self) -> usize {
        self.names.len()
    }
}

impl Table {
    /// An empty table for the bound columns of `header`.
    pub fn new(header: Header, bindings: &[Binding], layout: &Layout) -> Table {
        let cells = bindings
            .iter()
            .zip(&layout.columns)
            .map(|(binding, cols)| match cols {
                None => Cells::Absent,
                Some(_) if binding.reads_labels() => Cells::Labels(Labels::default()),
                Some(cols) if keeps_f32(binding) => Cells::Floats { values: Vec::new(), width: cols.len() },
                Some(cols) => Cells::Numbers { values: Vec::new(), width: cols.len() },
            })
            .collect();
        Table { header, layout: layout.clone(), rows: 0, lines: Vec::new(), cells, delimiter: b',', place: "line" }
    }

    /// Add the rows of a part read separately (the same bindings), after
    /// the rows already here.
    pub fn append(&mut self, cells: Vec<Cells>, lines: &[u32]) {
        let offset = self.rows as u32;
        for (mine, theirs) in self.cells.iter_mut().zip(cells) {
            match (mine, theirs) {
                (Cells::Numbers { values, .. }, Cells::Numbers { values: more, .. }) => extend(values, more),
                (Cells::Floats { values, .. }, Cells::Floats { values: more, .. }) => extend(values, more),
                (Cells::Labels(labels), Cells::Labels(more)) => labels.append(more, offset),
                _ => {}
            }
        }
        self.lines.extend_from_slice(lines);
        self.rows += lines.len();
    }

    /// The file column of binding `i`'s `k`-th column.
    pub fn column(&self, i: usize, k: usize) -> usize {
        self.layout.columns[i].as_ref().map_or(0, |cols| cols[k])
    }

    pub fn file(&self) -> &str {
        &self.header.file
    }
}

/// `more` after `values`, moved when `values` is empty.
fn extend<T: Copy>(values: &mut Vec<T>, more: Vec<T>) {
    if values.is_empty() {
        *values = more;
    } else {
        values.extend_from_slice(&more);
    }
}
