//! Reading CSV data into the column layout the kernels want.
//!
//! Columns bind by position: inputs take the first columns in declaration
//! order, targets the last. A first row that is not all numbers is a header.
//! Every value is parsed and checked here, once, so the kernels only ever see
//! finite f32s laid out contiguously, one row-major matrix per data binding.

use crate::ir::program::{Binding, Encoding, Program};
use std::fmt;
use std::path::Path;

/// The rows of a CSV file, split into the model's inputs and targets.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub rows: usize,
    /// One `rows × width` matrix per `graph.inputs` entry.
    pub inputs: Vec<Vec<f32>>,
    /// One `rows × width` matrix per `graph.targets` entry.
    pub targets: Vec<Vec<f32>>,
    /// Column names from the header, or `column N`.
    pub columns: Vec<String>,
    pub has_header: bool,
}

/// A problem with the data file, located by 1-based row and column as an
/// editor shows them (row 1 is the file's first line, header included).
#[derive(Clone, Debug, PartialEq)]
pub struct DataError {
    pub file: String,
    pub row: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub help: Option<String>,
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(row) = self.row {
            write!(f, ":{row}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DataError {}

/// Read and bind a CSV file for a program.
pub fn load(path: &Path, program: &Program) -> Result<Dataset, DataError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| DataError {
        file: file.clone(),
        row: None,
        column: None,
        message: format!("cannot read the data file: {e}"),
        help: None,
    })?;
    parse(&file, &bytes, program)
}

/// Bind CSV text (already read) for a program.
pub fn parse(file: &str, bytes: &[u8], program: &Program) -> Result<Dataset, DataError> {
    let error = |row: Option<usize>, column: Option<usize>, message: String, help: Option<String>| DataError {
        file: file.to_string(),
        row,
        column,
        message,
        help,
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
    let mut records = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line() as usize).unwrap_or(i + 1);
            error(Some(line), None, format!("unreadable CSV: {e}"), None)
        })?;
        let line = record.position().map_or(i + 1, |p| p.line() as usize);
        // Blank lines are skipped by the csv crate; a line of only spaces is not.
        if record.len() == 1 && record[0].trim().is_empty() {
            continue;
        }
        records.push((line, record));
    }
    if records.is_empty() {
        return Err(error(
            None,
            None,
            "the data file is empty".into(),
            Some("expected a header line and rows of numbers".into()),
        ));
    }
    let is_number = |s: &str| s.trim().parse::<f64>().is_ok();
    let has_header = !records[0].1.iter().all(is_number);
    let width = records[0].1.len();
    let columns: Vec<String> = if has_header {
        records[0].1.iter().map(|s| s.trim().to_string()).collect()
    } else {
        (1..=width).map(|i| format!("column {i}")).collect()
    };
    let body = if has_header { &records[1..] } else { &records[..] };
    if body.is_empty() {
        return Err(error(None, None, "the data file has a header but no rows".into(), None));
    }
    let expected = program.csv_columns();
    if width != expected {
        return Err(error(
            Some(records[0].0),
            None,
            format!("the file has {width} columns but the model's data block binds {expected}"),
            Some(binding_summary(&program.data)),
        ));
    }
    let rows = body.len();
    let mut inputs: Vec<Vec<f32>> = vec![Vec::new(); program.graph.inputs.len()];
    let mut targets: Vec<Vec<f32>> = vec![Vec::new(); program.graph.targets.len()];
    for binding in &program.data {
        let list = if binding.is_target { &mut targets } else { &mut inputs };
        list[binding.index as usize].reserve(rows * binding.width() as usize);
    }
    for (line, record) in body {
        if record.len() != width {
            return Err(error(
                Some(*line),
                None,
                format!("this row has {} fields but the first row has {width}", record.len()),
                None,
            ));
        }
        let mut values = Vec::with_capacity(width);
        for (c, field) in record.iter().enumerate() {
            let text = field.trim();
            let value: f64 = text.parse().map_err(|_| {
                error(Some(*line), Some(c + 1), format!("`{text}` in column `{}` is not a number", columns[c]), None)
            })?;
            if !value.is_finite() {
                return Err(error(
                    Some(*line),
                    Some(c + 1),
                    format!("`{text}` in column `{}` is not a finite number", columns[c]),
                    Some("remove or fill in rows with missing values before training".into()),
                ));
            }
            values.push(value);
        }
        for binding in &program.data {
            let list = if binding.is_target { &mut targets } else { &mut inputs };
            let out = &mut list[binding.index as usize];
            match binding.encoding {
                Encoding::Raw { width } => {
                    let cols = binding.first_column..binding.first_column + width as usize;
                    out.extend(values[cols].iter().map(|&v| v as f32));
                }
                Encoding::OneHot { classes } => {
                    let c = binding.first_column;
                    let class = values[c];
                    if class.fract() != 0.0 || class < 0.0 || class >= classes as f64 {
                        return Err(error(
                            Some(*line),
                            Some(c + 1),
                            format!("class `{class}` in column `{}` is not one of 0..{}", columns[c], classes - 1),
                            Some(format!("`{}` is declared as one_hot({classes})", binding.name)),
                        ));
                    }
                    out.extend((0..classes).map(|k| f32::from(k as f64 == class)));
                }
            }
        }
    }
    Ok(Dataset { rows, inputs, targets, columns, has_header })
}

/// `x ← columns 1-4, y ← column 5 (one_hot 3)`
pub fn binding_summary(bindings: &[Binding]) -> String {
    let parts: Vec<String> = bindings
        .iter()
        .map(|b| {
            let first = b.first_column + 1;
            let last = b.first_column + b.columns();
            let cols = if first == last { format!("column {first}") } else { format!("columns {first}-{last}") };
            match b.encoding {
                Encoding::Raw { .. } => format!("{} ← {cols}", b.name),
                Encoding::OneHot { classes } => format!("{} ← {cols} (one_hot {classes})", b.name),
            }
        })
        .collect();
    parts.join(", ")
}
