//! Reading CSV data into the layout the kernels want.
//!
//! Three steps, each with its own errors:
//! 1. [`read_table`] parses the file: a UTF-8 BOM and CRLF line endings are
//!    fine, a first line that is not all numbers is a header;
//! 2. [`resolve`] decides which columns each binding reads — by position,
//!    by header name, or "the rest" — reporting a missing name as a
//!    diagnostic in the model file;
//! 3. [`Dataset::build`] parses the bound cells (reporting the row and column
//!    of anything that is not a finite number or a valid class), applies the
//!    scale and standardisation, and lays each binding out as one contiguous
//!    row-major matrix.
//!
//! Standardisation statistics are measured on the training rows only
//! ([`fit_transforms`]) and saved with the weights, so prediction applies
//! exactly the same transformation.

use crate::diag::{Diagnostic, suggest};
use crate::ir::program::{Binding, ColumnRef, Columns, Encoding, Program};
use std::fmt;
use std::ops::Range;
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

/// The raw cells of a CSV file.
#[derive(Clone, Debug)]
pub struct Table {
    pub file: String,
    /// Column names, when the first line is a header.
    pub header: Option<Vec<String>>,
    pub width: usize,
    /// Each data row with its 1-based line number.
    pub rows: Vec<(usize, csv::StringRecord)>,
}

impl Table {
    /// A column for messages: ``column `name` `` by its header name, or
    /// `column N` (1-based) without a header.
    pub fn column_name(&self, c: usize) -> String {
        match &self.header {
            Some(names) => format!("column `{}`", shorten(&names[c])),
            None => format!("column {}", c + 1),
        }
    }

    fn error(&self, line: Option<usize>, column: Option<usize>, message: String, help: Option<String>) -> DataError {
        DataError { file: self.file.clone(), line, column, message, help }
    }
}

/// Read a CSV file from disk.
pub fn read_file(path: &Path) -> Result<Table, DataError> {
    let file = path.display().to_string();
    let fail = |message: String| DataError { file: file.clone(), line: None, column: None, message, help: None };
    if path.is_dir() {
        return Err(fail("is a directory, not a data file".into()));
    }
    // A device such as /dev/zero never ends. (Pipes are fine: `<(zcat ..)`.)
    if std::fs::metadata(path).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_char_device() || m.file_type().is_block_device()
    }) {
        return Err(fail("is a device, not a data file".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read the data file: {e}")))?;
    read_table(&file, &bytes)
}

/// Parse CSV bytes (already read).
pub fn read_table(file: &str, bytes: &[u8]) -> Result<Table, DataError> {
    let error = |line: Option<usize>, message: String| DataError {
        file: file.to_string(),
        line,
        column: None,
        message,
        help: None,
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
    let mut records = Vec::new();
    let mut lines = Lines { bytes, offset: 0, line: 1 };
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(i + 1, |p| lines.at(p.byte() as usize));
            match e.kind() {
                csv::ErrorKind::Utf8 { err, .. } => DataError {
                    column: Some(err.field() + 1),
                    ..error(Some(line), format!("field {} is not valid UTF-8 text", err.field() + 1))
                },
                _ => error(Some(line), format!("unreadable CSV: {e}")),
            }
        })?;
        let line = record.position().map_or(i + 1, |p| lines.at(p.byte() as usize));
        // A line of only spaces is not a row.
        if record.len() == 1 && record[0].trim().is_empty() {
            continue;
        }
        records.push((line, record));
    }
    if records.is_empty() {
        return Err(DataError {
            help: Some("expected a header line and rows of numbers".into()),
            ..error(None, "the data file is empty".into())
        });
    }
    let is_number = |s: &str| s.trim().parse::<f64>().is_ok();
    let has_header = !records[0].1.iter().all(is_number);
    let width = records[0].1.len();
    let header = has_header.then(|| records[0].1.iter().map(|s| s.trim().to_string()).collect::<Vec<_>>());
    let rows: Vec<_> = if has_header { records.split_off(1) } else { records };
    if rows.is_empty() {
        return Err(error(None, "the data file has a header but no rows".into()));
    }
    for (line, record) in &rows {
        if record.len() != width {
            let first = if has_header { "the header has" } else { "the first row has" };
            let fields = |n: usize| if n == 1 { "1 field".to_string() } else { format!("{n} fields") };
            // Point at the first missing field, or the first extra one.
            let column = record.len().min(width) + 1;
            let mut help = None;
            if record.iter().any(|field| field.contains('\n')) {
                help = Some("a field here spans several lines: is a `\"` never closed?".to_string());
            }
            return Err(DataError {
                column: Some(column),
                help,
                ..error(Some(*line), format!("this row has {} but {first} {width}", fields(record.len())))
            });
        }
    }
    Ok(Table { file: file.to_string(), header, width, rows })
}

/// Line numbers from byte offsets. (The csv crate's own line count is off
/// after CRLF line ends: BurntSushi/rust-csv#395.) A record's offset may
/// point at the end of the line before it, so line breaks at the offset are
/// skipped: no record starts with one. `\n`, `\r\n` and a lone `\r` each end
/// a line. Offsets must not decrease from call to call.
struct Lines<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: usize,
}

impl Lines<'_> {
    fn at(&mut self, offset: usize) -> usize {
        let mut end = offset.min(self.bytes.len());
        while end < self.bytes.len() && matches!(self.bytes[end], b'\r' | b'\n') {
            end += 1;
        }
        let start = self.offset.min(end);
        for i in start..end {
            let ends_line = match self.bytes[i] {
                b'\n' => true,
                b'\r' => self.bytes.get(i + 1) != Some(&b'\n'),
                _ => false,
            };
            self.line += usize::from(ends_line);
        }
        self.offset = self.offset.max(end);
        self.line
    }
}

/// The CSV columns (0-based) each binding reads, in `program.data` order;
/// `None` for a target that is not in the file (prediction without labels).
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub columns: Vec<Option<Vec<usize>>>,
}

/// Decide which columns each binding reads. With `targets_optional`, a file
/// that lacks the targets (for prediction) binds inputs only.
pub fn resolve(program: &Program, table: &Table, targets_optional: bool) -> Result<Layout, BindError> {
    let all = resolve_with(program, table, true);
    match all {
        Err(_) if targets_optional => resolve_with(program, table, false).map_err(|_| all.unwrap_err()),
        result => result,
    }
}

fn resolve_with(program: &Program, table: &Table, with_targets: bool) -> Result<Layout, BindError> {
    let bound: Vec<&Binding> = program.data.iter().filter(|b| with_targets || !b.is_target).collect();
    let mut columns: Vec<Option<Vec<usize>>> = vec![None; program.data.len()];
    let mut diags = Vec::new();
    let mut owner: Vec<Option<&str>> = vec![None; table.width];
    // Named and numbered columns.
    for (i, binding) in program.data.iter().enumerate() {
        if !bound.contains(&binding) {
            continue;
        }
        let Columns::List(refs) = &binding.columns else { continue };
        let mut found = Vec::new();
        for r in refs {
            match lookup(table, r) {
                Ok(c) => {
                    claim(&mut owner, table, c, binding, r.span(), &mut diags);
                    found.push(c);
                }
                Err(diag) => diags.push(diag),
            }
        }
        columns[i] = Some(found);
    }
    // By position: inputs from the first column, targets up to the last.
    let positional: Vec<usize> = (0..program.data.len())
        .filter(|&i| bound.contains(&&program.data[i]) && program.data[i].columns == Columns::Positional)
        .collect();
    let all_positional = positional.len() == bound.len();
    let wanted: usize = positional.iter().map(|&i| program.data[i].column_count()).sum();
    if all_positional && wanted != table.width {
        let summary = describe(program, with_targets);
        let columns = if table.width == 1 { "1 column".to_string() } else { format!("{} columns", table.width) };
        let first = table.header.as_ref().map_or_else(|| table.rows[0].1[0].to_string(), |h| h[0].clone());
        let help = match (table.width, first.contains(';'), first.contains('\t')) {
            (1, true, _) => "the fields seem to be separated by `;`: nnc reads comma-separated values".to_string(),
            (1, _, true) => "the fields seem to be separated by tabs: nnc reads comma-separated values".to_string(),
            _ => format!("{summary}; name the columns (`x = columns(a, b)`) to use some of them"),
        };
        return Err(BindError::Data(table.error(
            Some(1),
            None,
            format!("the file has {columns} but the model's data block binds {wanted} by position"),
            Some(help),
        )));
    }
    let mut next = 0;
    for &i in positional.iter().filter(|&&i| !program.data[i].is_target) {
        let n = program.data[i].column_count();
        columns[i] = Some((next..next + n).collect());
        next += n;
    }
    let mut end = table.width;
    for &i in positional.iter().filter(|&&i| program.data[i].is_target).rev() {
        let n = program.data[i].column_count();
        if n > end {
            return Err(BindError::Data(table.error(
                None,
                None,
                format!("the file has too few columns for `{}`", program.data[i].name),
                None,
            )));
        }
        columns[i] = Some((end - n..end).collect());
        end -= n;
    }
    for &i in &positional {
        for &c in columns[i].as_ref().expect("assigned above") {
            claim(&mut owner, table, c, &program.data[i], program.data[i].span, &mut diags);
        }
    }
    // The rest: every column nobody else reads.
    for (i, binding) in program.data.iter().enumerate() {
        if !bound.contains(&binding) || binding.columns != Columns::Rest {
            continue;
        }
        let rest: Vec<usize> = (0..table.width).filter(|&c| owner[c].is_none()).collect();
        if rest.len() != binding.column_count() {
            diags.push(
                Diagnostic::new(
                    "E0307",
                    format!("`{}` = rest() expects {} columns", binding.name, binding.column_count()),
                )
                .with_label(binding.span, format!("{} column(s) of {} are left", rest.len(), table.file))
                .with_help(format!("declare `{}[{}] = rest()`", binding.name, rest.len())),
            );
        }
        for &c in &rest {
            owner[c] = Some(binding.name.as_str());
        }
        columns[i] = Some(rest);
    }
    if diags.is_empty() { Ok(Layout { columns }) } else { Err(BindError::Model(diags)) }
}

/// Record that `binding` reads column `c`; a second reader is an error.
fn claim<'p>(
    owner: &mut [Option<&'p str>],
    table: &Table,
    c: usize,
    binding: &'p Binding,
    span: crate::span::Span,
    diags: &mut Vec<Diagnostic>,
) {
    if let Some(other) = owner[c] {
        diags.push(
            Diagnostic::new("E0306", format!("{} is bound twice", table.column_name(c)))
                .with_label(span, format!("`{}` reads it", binding.name))
                .with_help(format!("`{other}` reads it too; each column can feed one binding")),
        );
    }
    owner[c] = Some(binding.name.as_str());
}

fn lookup(table: &Table, r: &ColumnRef) -> Result<usize, Diagnostic> {
    match r {
        ColumnRef::Index(c, span) => {
            if *c < table.width {
                Ok(*c)
            } else {
                Err(Diagnostic::new("E0305", format!("{} has no column {}", table.file, c + 1))
                    .with_label(*span, format!("the file has {} columns", table.width)))
            }
        }
        ColumnRef::Name(name, span) => {
            let Some(header) = &table.header else {
                return Err(Diagnostic::new("E0305", format!("{} has no header row to find `{name}` in", table.file))
                    .with_label(*span, "a column name")
                    .with_help("add a header line, or give 1-based column numbers: `columns(1, 2)`"));
            };
            if let Some(c) = header.iter().position(|h| h == name) {
                return Ok(c);
            }
            let diag = Diagnostic::new("E0305", format!("{} has no column `{name}`", table.file))
                .with_label(*span, "not in the header");
            Err(match suggest(name, header.iter().map(String::as_str)) {
                Some(s) => diag.with_help(format!("did you mean `{s}`?")),
                None => {
                    let mut names: Vec<String> = header.iter().take(20).map(|h| shorten(h)).collect();
                    if header.len() > names.len() {
                        names.push(format!("… ({} in all)", header.len()));
                    }
                    diag.with_help(format!("its columns are: {}", names.join(", ")))
                }
            })
        }
    }
}

fn describe(program: &Program, with_targets: bool) -> String {
    let parts: Vec<String> = program
        .data
        .iter()
        .filter(|b| with_targets || !b.is_target)
        .map(|b| format!("{}: {} column(s)", b.name, b.column_count()))
        .collect();
    parts.join(", ")
}

/// How a binding's raw values become model values: `(v · scale − mean) / std`.
#[derive(Clone, Debug, PartialEq)]
pub struct Transform {
    pub scale: f64,
    /// One per column; empty when the binding is not standardised.
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Transform {
    pub fn apply(&self, column: usize, value: f64) -> f64 {
        let scaled = value * self.scale;
        if self.mean.is_empty() { scaled } else { (scaled - self.mean[column]) / self.std[column] }
    }

    /// From model units back to the file's units (for predictions).
    pub fn invert(&self, column: usize, value: f64) -> f64 {
        let scaled = if self.mean.is_empty() { value } else { value * self.std[column] + self.mean[column] };
        scaled / self.scale
    }
}

/// Measure each binding's standardisation statistics on `rows` (the
/// training rows): mean and population standard deviation after scaling.
/// A constant column gets std 1, so it becomes all zeros rather than NaN.
pub fn fit_transforms(
    program: &Program,
    table: &Table,
    layout: &Layout,
    rows: Range<usize>,
) -> Result<Vec<Transform>, DataError> {
    let mut transforms = Vec::new();
    for (i, binding) in program.data.iter().enumerate() {
        let mut transform = Transform { scale: binding.scale, mean: Vec::new(), std: Vec::new() };
        if let (true, Some(cols)) = (binding.standardize, &layout.columns[i]) {
            for &c in cols {
                let mut sum = 0.0;
                let mut sum_sq = 0.0;
                for r in rows.clone() {
                    let v = cell(table, r, c)? * binding.scale;
                    sum += v;
                    sum_sq += v * v;
                }
                if !(sum.is_finite() && sum_sq.is_finite()) {
                    return Err(table.error(
                        None,
                        Some(c + 1),
                        format!("the values in {} are too large to standardize", table.column_name(c)),
                        Some("their squares overflow a 64-bit float: scale the column down first, e.g. `/ 1e6`".into()),
                    ));
                }
                let n = rows.len().max(1) as f64;
                let mean = sum / n;
                let var = (sum_sq / n - mean * mean).max(0.0);
                // Two-pass refinement for accuracy on large offsets.
                let mut ss = 0.0;
                for r in rows.clone() {
                    let d = cell(table, r, c)? * binding.scale - mean;
                    ss += d * d;
                }
                let var = if var > 0.0 { ss / n } else { var };
                transform.mean.push(mean);
                transform.std.push(if var > 0.0 { var.sqrt() } else { 1.0 });
            }
        }
        transforms.push(transform);
    }
    Ok(transforms)
}

/// A cell or a header name as messages show it: at most 40 chars.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// A finite number from row `r` (0-based data row), column `c`.
fn cell(table: &Table, r: usize, c: usize) -> Result<f64, DataError> {
    let (line, record) = &table.rows[r];
    let text = record[c].trim();
    let value: f64 = text.parse().map_err(|_| {
        let what = if text.is_empty() { "an empty cell".to_string() } else { format!("`{}`", shorten(text)) };
        table.error(Some(*line), Some(c + 1), format!("{what} in {} is not a number", table.column_name(c)), None)
    })?;
    if !value.is_finite() {
        return Err(table.error(
            Some(*line),
            Some(c + 1),
            format!("`{}` in {} is not a finite number", shorten(text), table.column_name(c)),
            Some("remove or fill in rows with missing values before training".into()),
        ));
    }
    Ok(value)
}

/// A cell whose value, once scaled or standardized, is beyond the range of
/// the 32-bit floats that training uses (about ±3.4e38).
fn beyond_f32(table: &Table, r: usize, c: usize, binding: &Binding) -> DataError {
    let text = shorten(table.rows[r].1[c].trim());
    let scaled = if binding.scale != 1.0 || binding.standardize { " once scaled" } else { "" };
    table.error(
        Some(table.rows[r].0),
        Some(c + 1),
        format!(
            "`{text}` in {} is too large{scaled}: beyond ±3.4e38, the range of 32-bit floats",
            table.column_name(c)
        ),
        Some(format!("nnc trains in 32-bit floats: scale `{}` down, e.g. `/ 1e6`, or standardize it", binding.name)),
    )
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

impl Dataset {
    /// Bind `rows` of the table with the given transforms.
    pub fn build(
        program: &Program,
        table: &Table,
        layout: &Layout,
        transforms: &[Transform],
        rows: Range<usize>,
    ) -> Result<Dataset, DataError> {
        let n = rows.len();
        let mut inputs: Vec<Vec<f32>> = vec![Vec::new(); program.graph.inputs.len()];
        let mut targets: Vec<Vec<f32>> = vec![Vec::new(); program.graph.targets.len()];
        let mut has_targets = !program.graph.targets.is_empty();
        for (i, binding) in program.data.iter().enumerate() {
            let Some(cols) = &layout.columns[i] else {
                has_targets = false;
                continue;
            };
            let out = if binding.is_target { &mut targets } else { &mut inputs };
            let out = &mut out[binding.index as usize];
            out.reserve(n * binding.width() as usize);
            for r in rows.clone() {
                match binding.encoding {
                    Encoding::Raw { .. } => {
                        for (k, &c) in cols.iter().enumerate() {
                            let value = transforms[i].apply(k, cell(table, r, c)?) as f32;
                            if !value.is_finite() {
                                return Err(beyond_f32(table, r, c, binding));
                            }
                            if let Some(classes) = binding.class_indices
                                && (value.fract() != 0.0 || value < 0.0 || value >= classes as f32)
                            {
                                return Err(table.error(
                                    Some(table.rows[r].0),
                                    Some(c + 1),
                                    format!(
                                        "class `{value}` in {} is not a class from 0 to {}",
                                        table.column_name(c),
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
                    }
                    Encoding::OneHot { classes } => {
                        let c = cols[0];
                        let class = cell(table, r, c)?;
                        if class.fract() != 0.0 || class < 0.0 || class >= classes as f64 {
                            return Err(table.error(
                                Some(table.rows[r].0),
                                Some(c + 1),
                                format!(
                                    "class `{class}` in {} is not a class from 0 to {}",
                                    table.column_name(c),
                                    classes - 1
                                ),
                                Some(format!("`{}` is declared as one_hot(.., {classes})", binding.name)),
                            ));
                        }
                        out.extend((0..classes).map(|k| f32::from(k as f64 == class)));
                    }
                }
            }
        }
        if !has_targets {
            targets.iter_mut().for_each(Vec::clear);
        }
        Ok(Dataset { rows: n, inputs, targets, has_targets })
    }
}

/// Training (and validation) data for a program, with the transforms fitted
/// on the training rows.
#[derive(Clone, Debug)]
pub struct Bound {
    pub train: Dataset,
    pub validation: Option<Dataset>,
    pub transforms: Vec<Transform>,
    pub layout: Layout,
    pub columns: usize,
    /// The training file's column names, when it has a header.
    pub header: Option<Vec<String>>,
}

/// Read, resolve and bind a training file; the last `validation` fraction
/// of its rows (in file order) is held out, or a separate validation file.
pub fn load_training(
    program: &Program,
    path: &Path,
    validation: f64,
    validation_file: Option<&Path>,
) -> Result<Bound, BindError> {
    let table = read_file(path)?;
    let layout = resolve(program, &table, false)?;
    let n = table.rows.len();
    let held_out = if validation_file.is_some() { 0 } else { ((n as f64) * validation).round() as usize };
    if held_out > 0 && held_out >= n {
        return Err(BindError::Data(table.error(
            None,
            None,
            format!("a validation split of {validation} leaves no training rows out of {n}"),
            None,
        )));
    }
    let train_rows = 0..n - held_out;
    let transforms = fit_transforms(program, &table, &layout, train_rows.clone())?;
    let train = Dataset::build(program, &table, &layout, &transforms, train_rows)?;
    let validation = match validation_file {
        Some(file) => {
            let table = read_file(file)?;
            let layout = resolve(program, &table, false)?;
            Some(Dataset::build(program, &table, &layout, &transforms, 0..table.rows.len())?)
        }
        None if held_out > 0 => Some(Dataset::build(program, &table, &layout, &transforms, n - held_out..n)?),
        None => None,
    };
    Ok(Bound { train, validation, transforms, layout, columns: table.width, header: table.header })
}

/// All rows of a training file, bound for `program` (no validation split).
pub fn load(path: &Path, program: &Program) -> Result<Dataset, BindError> {
    Ok(load_training(program, path, 0.0, None)?.train)
}

/// `x ← columns 1-4, y ← column 5 (one_hot 3)`
pub fn binding_summary(program: &Program, layout: &Layout, table_header: Option<&[String]>) -> String {
    let parts: Vec<String> = program
        .data
        .iter()
        .zip(&layout.columns)
        .filter_map(|(b, cols)| {
            let cols = cols.as_ref()?;
            let contiguous = cols.windows(2).all(|w| w[1] == w[0] + 1);
            let text = match (cols.as_slice(), contiguous, table_header) {
                ([c], _, Some(h)) => format!("`{}`", shorten(&h[*c])),
                ([c], _, None) => format!("column {}", c + 1),
                ([first, .., last], true, _) => format!("columns {}-{}", first + 1, last + 1),
                _ => format!("{} columns", cols.len()),
            };
            let mut extra = String::new();
            if let Encoding::OneHot { classes } = b.encoding {
                extra.push_str(&format!(" one_hot {classes}"));
            }
            if b.scale != 1.0 {
                extra.push_str(&format!(" ×{}", b.scale));
            }
            if b.standardize {
                extra.push_str(" standardized");
            }
            Some(format!("{} ← {text}{extra}", b.name))
        })
        .collect();
    parts.join(", ")
}
