//! Data as users have it, read into the layout the kernels want.
//!
//! One column model, [`table::Table`], fed by every reader: CSV in any
//! common dialect ([`read`]: `,` `;` tab or `|`, detected; a header
//! detected; quoted fields) and Parquet ([`parquet`]). Only the columns the
//! model binds are kept. The steps, each with its own errors:
//!
//! 1. [`layout::resolve`] decides which columns each binding reads — by
//!    position, by header name, or "the rest" — reporting a missing name as
//!    a diagnostic in the model file;
//! 2. a reader fills a [`Table`]: numbers (NaN where a cell is missing:
//!    empty, `NA`, `NaN`, `?`, … see [`table::MISSING_TOKENS`]) — in `f32`
//!    for bindings that take them as they are, `f64` for those that fit a
//!    mean, a deviation or a fill value — or interned labels, each cell
//!    placed by `file:line:col` in messages; a CSV file is parsed block by
//!    block as it is read, on every thread;
//! 3. [`prepare::categories`] counts the categories of `one_hot(column)`
//!    bindings for the checker;
//! 4. [`prepare::training`] turns labels into categories (sorted, as
//!    scikit-learn's `LabelEncoder` does), drops or fills missing cells,
//!    splits off validation rows, fits everything fitted from data on the
//!    training rows, and lays each binding out as a row-major matrix;
//!    [`prepare::apply`] does the same for prediction with saved transforms.
//!
//! Everything fitted — categories, fill values, means and deviations — is
//! saved with the weights, so prediction applies exactly the same
//! transformation.

mod bus_error;
mod contain;
mod decimal;
pub mod folds;
pub mod layout;
mod pages;
pub mod parquet;
pub mod prepare;
pub mod read;
pub mod table;

pub use layout::{Header, Layout};
pub use prepare::{Bound, Dataset, Report, Resolved, Split, Transform};
pub use read::ReadOptions;
pub use table::Table;

use crate::diag::Diagnostic;
use crate::ir::program::{Binding, Categories, Encoding, Program};
use std::fmt;
use std::io::Read;
use std::path::Path;

/// A problem with the data file, located by 1-based line and column as an
/// editor shows them (line 1 is the file's first line, header included).
#[derive(Clone, Debug, PartialEq)]
pub struct DataError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub help: Option<String>,
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
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

/// Why data could not be bound: the file is wrong, or the model asks for
/// something the file does not have (a diagnostic in the model file).
#[derive(Clone, Debug, PartialEq)]
pub enum BindError {
    Data(DataError),
    Model(Vec<Diagnostic>),
}

impl From<DataError> for BindError {
    fn from(e: DataError) -> BindError {
        BindError::Data(e)
    }
}

/// A cell or a header name as messages show it: at most 40 chars.
pub fn shorten(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// Read a data file from disk for `bindings`: Parquet when it starts with
/// Parquet's magic bytes, CSV otherwise (parsed block by block, so the
/// file is not held in memory).
pub fn read_file(path: &Path, bindings: &[Binding], options: ReadOptions) -> Result<Table, BindError> {
    let file = path.display().to_string();
    let fail = |message: String| DataError { file: file.clone(), line: None, column: None, message, help: None };
    if path.is_dir() {
        return Err(fail("is a directory, not a data file".into()).into());
    }
    // A device such as /dev/zero never ends. (Pipes are fine: `<(zcat ..)`.)
    if std::fs::metadata(path).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_char_device() || m.file_type().is_block_device()
    }) {
        return Err(fail("is a device, not a data file".into()).into());
    }
    let cannot = |e: std::io::Error| fail(format!("cannot read the data file: {e}"));
    let mut input = std::fs::File::open(path).map_err(cannot)?;
    // Both formats are read in place where the file can be mapped.
    let mut magic = Vec::with_capacity(4);
    std::io::Read::by_ref(&mut input).take(4).read_to_end(&mut magic).map_err(cannot)?;
    if parquet::is_parquet(&magic) {
        return match parquet::Mapped::new(&input) {
            Some(map) => {
                bus_error::guard(&file, map.bytes());
                parquet::read_parquet(&file, map, bindings, options)
            }
            None => parquet::read_parquet(&file, parquet::InPlace::new(input), bindings, options),
        };
    }
    // A regular file is parsed where it lies, through a map (no copy);
    // a pipe as it is read.
    if input.metadata().is_ok_and(|m| m.is_file() && m.len() > 0) {
        // SAFETY: the map is only read. As with every memory map, a file
        // cut short by another process while nnc reads it faults (an
        // error: `bus_error`); nnc itself never writes a data file.
        if let Ok(map) = unsafe { memmap2::Mmap::map(&input) } {
            bus_error::guard(&file, &map);
            return read::read_csv_mapped(&file, &map, bindings, options);
        }
    }
    read::read_csv_from(&file, &mut (&magic[..]).chain(input), bindings, options)
}

/// Read a data file's bytes (already read).
pub fn read_bytes(file: &str, bytes: &[u8], bindings: &[Binding], options: ReadOptions) -> Result<Table, BindError> {
    if parquet::is_parquet(bytes) {
        parquet::read_parquet(file, bytes::Bytes::copy_from_slice(bytes), bindings, options)
    } else {
        read::read_csv(file, bytes, bindings, options)
    }
}

/// The categories `check` needs from a training table.
pub fn categories(bindings: &[Binding], table: &Table) -> Result<Categories, BindError> {
    Ok(prepare::categories(bindings, table)?)
}

/// Read, resolve and bind a training file (and a separate validation file).
pub fn load_training(
    program: &Program,
    path: &Path,
    split: Split,
    validation_file: Option<&Path>,
    options: ReadOptions,
) -> Result<Bound, BindError> {
    let options = ReadOptions { targets_optional: false, ..options };
    let table = read_file(path, &program.data, options)?;
    let validation = match validation_file {
        Some(file) => Some(read_file(file, &program.data, options)?),
        None => None,
    };
    prepare::training(program, table, split, validation)
}

/// All rows of a training file, bound for `program` (no validation split).
pub fn load(path: &Path, program: &Program) -> Result<Dataset, BindError> {
    Ok(load_training(program, path, Split::NONE, None, ReadOptions::default())?.train)
}

/// `x ← columns 1-4, y ← `species` one_hot 3`
pub fn binding_summary(program: &Program, bound: &Bound) -> String {
    let header = bound.header.names.as_deref();
    let parts: Vec<String> = program
        .data
        .iter()
        .zip(&bound.layout.columns)
        .enumerate()
        .filter_map(|(i, (b, cols))| {
            let cols = cols.as_ref()?;
            let contiguous = cols.windows(2).all(|w| w[1] == w[0] + 1);
            let text = match (cols.as_slice(), contiguous, header) {
                ([c], _, Some(h)) => format!("`{}`", shorten(&h[*c])),
                ([c], _, None) => format!("column {}", c + 1),
                ([first, .., last], true, _) => format!("columns {}-{}", first + 1, last + 1),
                _ => format!("{} columns", cols.len()),
            };
            let mut extra = String::new();
            if let Encoding::OneHot { classes } = b.encoding {
                extra.push_str(&format!(" one_hot {classes}"));
            }
            let categories = &bound.transforms[i].categories;
            if !categories.is_empty() && !bound.transforms[i].categories_are_indices() {
                let shown: Vec<String> = categories.iter().take(6).map(|c| shorten(c)).collect();
                let more = if categories.len() > 6 { ", …" } else { "" };
                extra.push_str(&format!(" ({}{more})", shown.join(", ")));
            }
            if b.scale != 1.0 {
                extra.push_str(&format!(" ×{}", b.scale));
            }
            if b.standardize {
                extra.push_str(" standardized");
            }
            if let Some(fill) = b.fill {
                let value = match fill.value {
                    crate::ir::program::FillValue::Mean => "mean".to_string(),
                    crate::ir::program::FillValue::Median => "median".to_string(),
                    crate::ir::program::FillValue::Constant(v) => format!("{v}"),
                };
                extra.push_str(&format!(" fill {value}{}", if fill.indicator { " +indicator" } else { "" }));
            }
            Some(format!("{} ← {text}{extra}", b.name))
        })
        .collect();
    parts.join(", ")
}

/// `work(k, item)` for every item on `threads` threads (this one and
/// others), each taking the next item not yet taken, so a thread slowed by
/// other work takes fewer: the results in item order, `None` where a
/// thread panicked.
fn share<I: Send, T: Send>(threads: usize, items: Vec<I>, work: impl Fn(usize, I) -> T + Sync) -> Vec<Option<T>> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let items: Vec<Mutex<Option<I>>> = items.into_iter().map(|item| Mutex::new(Some(item))).collect();
    let done: Vec<Mutex<Option<T>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let worker = || {
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(k).and_then(|item| item.lock().ok()?.take()) else { break };
            let result = work(k, item);
            if let Ok(mut slot) = done[k].lock() {
                *slot = Some(result);
            }
        }
    };
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads.min(items.len())).map(|_| scope.spawn(worker)).collect();
        worker();
        helpers.into_iter().for_each(|helper| drop(helper.join()));
    });
    done.into_iter().map(|slot| slot.into_inner().ok().flatten()).collect()
}
