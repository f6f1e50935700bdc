//! Reading a CSV file into a [`Table`] of the bound columns only.
//!
//! The dialect is detected from the first lines: the delimiter is the one
//! of `,` `;` tab `|` that splits every line into the same number of fields
//! (more than one), unless `--delimiter` names it; quoted fields may hold
//! the delimiter, quotes and line breaks. The first line is a header when
//! it holds a cell that is neither a number nor missing and either holds no
//! number at all or has text where the next line has a number (so a file
//! without a header whose rows start with labels is still read as data).
//!
//! Cells of numeric bindings are parsed straight into each binding's
//! row-major matrix (NaN where missing); cells of label bindings are
//! interned. A cell that is not a number is not reported at once: the
//! column's bad cells are counted to the end, so the message says how many
//! more there are.

use super::layout::{self, Header, Layout};
use super::table::{Cells, Table, is_missing};
use super::{BindError, DataError, shorten};
use crate::ir::program::Binding;

/// Delimiters tried, in order of preference.
pub const DELIMITERS: &[u8] = b",;\t|";

/// How to read a file.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOptions {
    /// The field delimiter; detected when `None`.
    pub delimiter: Option<u8>,
    /// Bind the inputs alone when the file lacks the targets (prediction).
    pub targets_optional: bool,
}

/// The delimiter that splits the first lines (up to 20) into the same number
/// of fields, more than one; `,` when none does.
pub fn sniff_delimiter(bytes: &[u8]) -> u8 {
    let lines: Vec<&[u8]> = bytes
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .take(20)
        .collect();
    let fields = |line: &[u8], d: u8| {
        let mut quoted = false;
        let mut n = 1;
        for &b in line {
            match b {
                b'"' => quoted = !quoted,
                _ if b == d && !quoted => n += 1,
                _ => {}
            }
        }
        n
    };
    // A line that ends inside quotes continues on the next: such files are
    // judged by their first line alone.
    let consistent = |d: u8| {
        let first = fields(lines.first()?, d);
        (first > 1 && lines.iter().all(|l| fields(l, d) == first)).then_some(first)
    };
    if let Some(&d) = DELIMITERS.iter().find(|&&d| consistent(d).is_some()) {
        return d;
    }
    let first = |d: u8| lines.first().map_or(1, |l| fields(l, d));
    DELIMITERS.iter().copied().filter(|&d| first(d) > 1).max_by_key(|&d| first(d)).unwrap_or(b',')
}

/// A delimiter's name for messages.
pub fn delimiter_name(d: u8) -> String {
    match d {
        b'\t' => "tab".to_string(),
        b' ' => "space".to_string(),
        _ => format!("`{}`", d as char),
    }
}

/// Whether the first record is a header (see the module doc).
fn is_header(first: &csv::ByteRecord, second: Option<&csv::ByteRecord>) -> bool {
    let text = |field: &[u8]| String::from_utf8_lossy(field).trim().to_string();
    let number = |s: &str| s.parse::<f64>().is_ok();
    let cells: Vec<String> = first.iter().map(text).collect();
    let has_text = cells.iter().any(|c| !number(c) && !is_missing(c));
    if !has_text {
        return false;
    }
    if !cells.iter().any(|c| number(c)) {
        return true;
    }
    let Some(second) = second else { return false };
    cells.iter().zip(second.iter().map(text)).any(|(a, b)| !number(a) && !is_missing(a) && number(&b))
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

/// Where a file column's cells go: binding `binding`, its `position`-th column.
#[derive(Clone, Copy)]
struct Dest {
    binding: usize,
    position: usize,
    labels: bool,
}

/// The first cell of a column that is not a number, and how many there are.
struct BadCells {
    line: usize,
    column: usize,
    text: String,
    count: usize,
}

/// Parse CSV bytes (already read) into the cells `bindings` read.
pub fn read_csv(file: &str, bytes: &[u8], bindings: &[Binding], options: ReadOptions) -> Result<Table, BindError> {
    let error = |line: Option<usize>, column: Option<usize>, message: String, help: Option<String>| DataError {
        file: file.to_string(),
        line,
        column,
        message,
        help,
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let delimiter = options.delimiter.unwrap_or_else(|| sniff_delimiter(bytes));
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(bytes);
    let mut lines = Lines { bytes, offset: 0, line: 1 };
    let mut record = csv::ByteRecord::new();
    let mut next = |record: &mut csv::ByteRecord| -> Result<Option<usize>, DataError> {
        loop {
            let more = reader.read_byte_record(record).map_err(|e| {
                let line = e.position().map_or(lines.line, |p| lines.at(p.byte() as usize));
                error(Some(line), None, format!("unreadable CSV: {e}"), None)
            })?;
            if !more {
                return Ok(None);
            }
            let line = record.position().map_or(lines.line, |p| lines.at(p.byte() as usize));
            // A line of only spaces is not a row.
            if record.len() == 1 && record[0].iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(line));
        }
    };
    let Some(first_line) = next(&mut record)? else {
        return Err(BindError::Data(error(
            None,
            None,
            "the data file is empty".into(),
            Some("expected a header line and rows of numbers".into()),
        )));
    };
    let first = record.clone();
    let second_line = next(&mut record)?;
    let has_header = is_header(&first, second_line.map(|_| &record));
    let width = first.len();
    let names = if has_header {
        let mut names = Vec::with_capacity(width);
        for (c, field) in first.iter().enumerate() {
            let name = std::str::from_utf8(field).map_err(|_| {
                error(Some(first_line), Some(c + 1), format!("header field {} is not valid UTF-8 text", c + 1), None)
            })?;
            names.push(name.trim().to_string());
        }
        Some(names)
    } else {
        None
    };
    let header = Header { file: file.to_string(), names, width };
    let layout = layout::resolve(bindings, &header, options.targets_optional)?;
    let mut table = Table::new(header, bindings, &layout);
    table.delimiter = delimiter;
    let dests = destinations(bindings, &layout, width);
    let mut bad: Vec<Option<BadCells>> = (0..width).map(|_| None).collect();
    let mut row = |line: usize, record: &csv::ByteRecord, table: &mut Table| -> Result<(), DataError> {
        if record.len() != width {
            let first = if has_header { "the header has" } else { "the first row has" };
            let fields = |n: usize| if n == 1 { "1 field".to_string() } else { format!("{n} fields") };
            // Point at the first missing field, or the first extra one.
            let column = record.len().min(width) + 1;
            let mut help = None;
            if record.iter().any(|field| field.contains(&b'\n')) {
                help = Some("a field here spans several lines: is a `\"` never closed?".to_string());
            } else if record.len() == 1 && width > 1 {
                help = Some(format!(
                    "the fields are separated by {}; give `--delimiter` if this file uses another",
                    delimiter_name(delimiter)
                ));
            }
            return Err(error(
                Some(line),
                Some(column),
                format!("this row has {} but {first} {width}", fields(record.len())),
                help,
            ));
        }
        table.lines.push(line as u32);
        for cells in &mut table.cells {
            if let Cells::Numbers { values, width } = cells {
                values.resize(values.len() + *width, f64::NAN);
            }
        }
        for (c, dest) in dests.iter().enumerate() {
            let Some(dest) = dest else { continue };
            let field = &record[c];
            let text = std::str::from_utf8(field)
                .map_err(|_| error(Some(line), Some(c + 1), format!("field {} is not valid UTF-8 text", c + 1), None))?
                .trim();
            match &mut table.cells[dest.binding] {
                Cells::Labels(labels) => labels.push(text, table.rows as u32),
                Cells::Numbers { values, width } => {
                    let value = if is_missing(text) {
                        f64::NAN
                    } else {
                        match text.parse::<f64>() {
                            Ok(v) if v.is_finite() => v,
                            Ok(_) => {
                                return Err(error(
                                    Some(line),
                                    Some(c + 1),
                                    format!(
                                        "`{}` in {} is not a finite number",
                                        shorten(text),
                                        table.header.column_name(c)
                                    ),
                                    Some("write missing values as an empty cell or `NA`".into()),
                                ));
                            }
                            Err(_) => {
                                let entry = bad[c].get_or_insert_with(|| BadCells {
                                    line,
                                    column: c + 1,
                                    text: text.to_string(),
                                    count: 0,
                                });
                                entry.count += 1;
                                f64::NAN
                            }
                        }
                    };
                    debug_assert!(dest.position < *width && !dest.labels);
                    values[table.rows * *width + dest.position] = value;
                }
                Cells::Absent => {}
            }
        }
        table.rows += 1;
        Ok(())
    };
    if !has_header {
        row(first_line, &first, &mut table)?;
    }
    if let Some(line) = second_line {
        row(line, &record, &mut table)?;
        while let Some(line) = next(&mut record)? {
            row(line, &record, &mut table)?;
        }
    }
    if table.rows == 0 {
        return Err(BindError::Data(error(None, None, "the data file has a header but no rows".into(), None)));
    }
    if let Some(b) = bad.into_iter().flatten().next() {
        let more = match b.count - 1 {
            0 => String::new(),
            1 => " (and 1 more cell in this column)".to_string(),
            n => format!(" (and {n} more cells in this column)"),
        };
        return Err(BindError::Data(error(
            Some(b.line),
            Some(b.column),
            format!("`{}` in {} is not a number{more}", shorten(&b.text), table.header.column_name(b.column - 1)),
            Some(
                "a numeric binding reads numbers; for a column of categories use `one_hot(column)`, \
                 and write missing values as an empty cell or `NA`"
                    .into(),
            ),
        )));
    }
    Ok(table)
}

/// For each column of the file, where its cells go (`None`: not read).
fn destinations(bindings: &[Binding], layout: &Layout, width: usize) -> Vec<Option<Dest>> {
    let mut dests = vec![None; width];
    for (i, binding) in bindings.iter().enumerate() {
        let Some(cols) = &layout.columns[i] else { continue };
        for (position, &c) in cols.iter().enumerate() {
            dests[c] = Some(Dest { binding: i, position, labels: binding.reads_labels() });
        }
    }
    dests
}
