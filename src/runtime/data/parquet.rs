//! Parquet files (not yet read: a clear error).

use super::{BindError, DataError, ReadOptions, Table};
use crate::ir::program::Binding;

/// Parquet files start (and end) with `PAR1`.
pub fn is_parquet(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PAR1")
}

pub fn read_parquet(
    file: &str,
    _bytes: &[u8],
    _bindings: &[Binding],
    _options: ReadOptions,
) -> Result<Table, BindError> {
    Err(BindError::Data(DataError {
        file: file.to_string(),
        line: None,
        column: None,
        message: "Parquet files are not read yet".into(),
        help: None,
    }))
}
