//! Parquet files, through the arrow-rs `parquet` crate's record API: only
//! the bound columns are projected and read. Float, integer, boolean, string
//! and dictionary-encoded columns are read; a null is a missing cell. A
//! place in messages is `file:ROW:COLUMN` (1-based, the header not counted).

use super::layout::{self, Header};
use super::table::{Cells, Table};
use super::{BindError, DataError, ReadOptions, shorten};
use crate::ir::program::Binding;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::Type;
use std::sync::Arc;

/// Parquet files start (and end) with `PAR1`.
pub fn is_parquet(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PAR1")
}

/// A cell as text (for labels) or a number, or missing.
enum Value {
    Missing,
    Number(f64),
    Text(String),
}

fn value(field: &Field) -> Option<Value> {
    Some(match field {
        Field::Null => Value::Missing,
        Field::Bool(b) => Value::Number(f64::from(u8::from(*b))),
        Field::Byte(v) => Value::Number(f64::from(*v)),
        Field::Short(v) => Value::Number(f64::from(*v)),
        Field::Int(v) => Value::Number(f64::from(*v)),
        Field::Long(v) => Value::Number(*v as f64),
        Field::UByte(v) => Value::Number(f64::from(*v)),
        Field::UShort(v) => Value::Number(f64::from(*v)),
        Field::UInt(v) => Value::Number(f64::from(*v)),
        Field::ULong(v) => Value::Number(*v as f64),
        Field::Float(v) => Value::Number(f64::from(*v)),
        Field::Double(v) => Value::Number(*v),
        Field::Str(s) => Value::Text(s.clone()),
        _ => return None,
    })
}

/// Read the bound columns of a Parquet file's `bytes` (shared, not copied).
pub fn read_parquet(
    file: &str,
    bytes: bytes::Bytes,
    bindings: &[Binding],
    options: ReadOptions,
) -> Result<Table, BindError> {
    let error = |row: Option<usize>, column: Option<usize>, message: String, help: Option<String>| DataError {
        file: file.to_string(),
        line: row,
        column,
        message,
        help,
    };
    let unreadable = |e: parquet::errors::ParquetError| {
        error(None, None, format!("unreadable Parquet file: {e}"), Some("is the file complete?".into()))
    };
    let reader = SerializedFileReader::new(bytes).map_err(unreadable)?;
    let schema = reader.metadata().file_metadata().schema();
    let fields = schema.get_fields();
    let names: Vec<String> = fields.iter().map(|f| f.name().to_string()).collect();
    let header = Header { file: file.to_string(), names: Some(names), width: fields.len() };
    let layout = layout::resolve(bindings, &header, options.targets_optional)?;
    let mut table = Table::new(header, bindings, &layout);
    table.place = "row";
    // The bound columns, in file order, and where each goes.
    let mut bound: Vec<(usize, usize, usize)> = Vec::new();
    for (i, cols) in layout.columns.iter().enumerate() {
        for (k, &c) in cols.iter().flatten().enumerate() {
            bound.push((c, i, k));
        }
    }
    bound.sort_unstable();
    for &(c, _, _) in &bound {
        if !fields[c].is_primitive() {
            return Err(BindError::Data(error(
                None,
                Some(c + 1),
                format!("{} is a nested column (a list or a struct)", table.header.column_name(c)),
                Some("nnc reads flat columns of numbers or text".into()),
            )));
        }
    }
    let selected: Vec<Arc<Type>> = bound.iter().map(|&(c, _, _)| fields[c].clone()).collect();
    let projection = Type::group_type_builder(schema.name()).with_fields(selected).build().map_err(unreadable)?;
    let rows = reader.get_row_iter(Some(projection)).map_err(unreadable)?;
    for (r, row) in rows.enumerate() {
        let row = row.map_err(unreadable)?;
        table.lines.push((r + 1) as u32);
        table.cells.iter_mut().for_each(Cells::grow);
        for (&(c, i, k), (_, field)) in bound.iter().zip(row.get_column_iter()) {
            let Some(v) = value(field) else {
                return Err(BindError::Data(error(
                    Some(r + 1),
                    Some(c + 1),
                    format!("{} holds {field:?}, which nnc does not read", table.header.column_name(c)),
                    Some("nnc reads columns of numbers (float, integer, boolean) or text".into()),
                )));
            };
            match &mut table.cells[i] {
                Cells::Labels(labels) => match v {
                    Value::Missing => labels.push("", r as u32),
                    Value::Number(n) => labels.push(&n.to_string(), r as u32),
                    Value::Text(s) => labels.push(s.trim(), r as u32),
                },
                Cells::Numbers { .. } | Cells::Floats { .. } => {
                    let number = match v {
                        Value::Missing => f64::NAN,
                        Value::Number(n) if n.is_finite() => n,
                        Value::Number(n) if n.is_nan() => f64::NAN,
                        Value::Text(s) if super::table::is_missing(s.trim()) => f64::NAN,
                        Value::Text(s) if s.trim().parse::<f64>().is_ok_and(f64::is_finite) => {
                            s.trim().parse::<f64>().unwrap_or(f64::NAN)
                        }
                        Value::Number(n) => {
                            return Err(BindError::Data(error(
                                Some(r + 1),
                                Some(c + 1),
                                format!("`{n}` in {} is not a finite number", table.header.column_name(c)),
                                None,
                            )));
                        }
                        Value::Text(s) => {
                            return Err(BindError::Data(error(
                                Some(r + 1),
                                Some(c + 1),
                                format!("`{}` in {} is not a number", shorten(&s), table.header.column_name(c)),
                                Some(
                                    "a numeric binding reads numbers; for a column of categories use \
                                     `one_hot(column)`"
                                        .into(),
                                ),
                            )));
                        }
                    };
                    let place = |width: usize| table.rows * width + k;
                    match &mut table.cells[i] {
                        Cells::Numbers { values, width } => values[place(*width)] = number,
                        Cells::Floats { values, width } => {
                            let rounded = number as f32;
                            if rounded.is_infinite() {
                                return Err(BindError::Data(error(
                                    Some(r + 1),
                                    Some(c + 1),
                                    format!(
                                        "`{number}` in {} is beyond ±3.4e38, the range of 32-bit floats",
                                        table.header.column_name(c)
                                    ),
                                    Some("nnc trains in 32-bit floats: scale the column down, e.g. `/ 1e6`".into()),
                                )));
                            }
                            values[place(*width)] = rounded;
                        }
                        _ => {}
                    }
                }
                Cells::Absent => {}
            }
        }
        table.rows += 1;
    }
    if table.rows == 0 {
        return Err(BindError::Data(error(None, None, "the Parquet file has no rows".into(), None)));
    }
    Ok(table)
}
