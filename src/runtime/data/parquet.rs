//! Parquet files, through the arrow-rs `parquet` crate's typed column
//! readers: only the bound columns are read, each straight into the
//! table's cells (`f32` for bindings that keep them, as CSV's), the rows of
//! each row group split into ranges read on every thread. Float, integer,
//! boolean and text (UTF-8, dictionary-encoded or not) columns are read; a
//! null is a missing cell. A place in messages is `file:ROW:COLUMN`
//! (1-based, the header not counted).

use super::layout::{self, Header};
use super::table::{Chunk, Room, Slot, Table, is_missing};
use super::{BindError, DataError, ReadOptions, shorten};
use crate::ir::program::Binding;
use parquet::basic::{ConvertedType, LogicalType, Type as Physical};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::DataType;
use parquet::file::reader::{ChunkReader, FileReader, Length, SerializedFileReader};
use parquet::schema::types::ColumnDescriptor;
use std::fs::File;
use std::io::{BufReader, Read};
use std::mem::MaybeUninit;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Parquet files start (and end) with `PAR1`.
pub fn is_parquet(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PAR1")
}

/// A Parquet file read in place: each thread reads the pages it decodes at
/// their offsets (`pread`), so the file is never held whole and threads do
/// not share a file position.
pub struct InPlace(Arc<File>);

impl InPlace {
    pub fn new(file: File) -> InPlace {
        InPlace(Arc::new(file))
    }
}

/// A reader of [`InPlace`] from an offset.
pub struct At {
    file: Arc<File>,
    offset: u64,
}

impl Read for At {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.file.read_at(buffer, self.offset)?;
        self.offset += read as u64;
        Ok(read)
    }
}

impl Length for InPlace {
    fn len(&self) -> u64 {
        self.0.metadata().map_or(0, |m| m.len())
    }
}

impl ChunkReader for InPlace {
    type T = BufReader<At>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(BufReader::new(At { file: self.0.clone(), offset: start }))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        let mut buffer = vec![0; length];
        self.0.read_exact_at(&mut buffer, start)?;
        Ok(buffer.into())
    }
}

/// How a bound column's values are read.
#[derive(Clone, Copy)]
enum Kind {
    Signed,
    Unsigned,
    Float,
    Bool,
    Text,
}

/// How to read a column, or `None` for what nnc does not read (dates,
/// times, decimals, raw bytes, …).
fn kind(column: &ColumnDescriptor) -> Option<Kind> {
    let converted = column.converted_type();
    let logical = column.logical_type_ref();
    let integer = matches!(logical, None | Some(LogicalType::Integer { .. }));
    let unsigned = matches!(
        converted,
        ConvertedType::UINT_8 | ConvertedType::UINT_16 | ConvertedType::UINT_32 | ConvertedType::UINT_64
    );
    let signed = matches!(
        converted,
        ConvertedType::NONE
            | ConvertedType::INT_8
            | ConvertedType::INT_16
            | ConvertedType::INT_32
            | ConvertedType::INT_64
    );
    let text = matches!(converted, ConvertedType::UTF8 | ConvertedType::ENUM | ConvertedType::JSON)
        || matches!(logical, Some(LogicalType::String | LogicalType::Enum | LogicalType::Json));
    match column.physical_type() {
        Physical::BOOLEAN if logical.is_none() => Some(Kind::Bool),
        Physical::INT32 | Physical::INT64 if integer && unsigned => Some(Kind::Unsigned),
        Physical::INT32 | Physical::INT64 if integer && signed => Some(Kind::Signed),
        Physical::FLOAT | Physical::DOUBLE if logical.is_none() && converted == ConvertedType::NONE => {
            Some(Kind::Float)
        }
        Physical::BYTE_ARRAY if text => Some(Kind::Text),
        _ => None,
    }
}

/// A cell as read: missing, a number, or text.
enum Cell<'a> {
    Missing,
    Number(f64),
    Text(&'a [u8]),
}

/// A bound column: its place in the file and in the bindings.
#[derive(Clone, Copy)]
struct Bound {
    /// The file column (a field of the schema), for messages.
    field: usize,
    /// Its leaf column in the row groups.
    column: usize,
    /// The binding, and the binding's column.
    binding: usize,
    position: usize,
    kind: Kind,
}

/// Rows `start..start + rows` of row group `group`, whose first row is the
/// file's row `first` (from 0).
#[derive(Clone, Copy)]
struct Range {
    group: usize,
    start: usize,
    rows: usize,
    first: usize,
}

/// Read the bound columns of a Parquet file (the whole file in memory,
/// shared, or a file read in place).
pub fn read_parquet<R: ChunkReader + 'static>(
    file: &str,
    input: R,
    bindings: &[Binding],
    options: ReadOptions,
) -> Result<Table, BindError> {
    read_in_ranges(file, input, bindings, options, None)
}

/// [`read_parquet`] in ranges of at most `most` rows (by default, about
/// one per thread).
fn read_in_ranges<R: ChunkReader + 'static>(
    file: &str,
    input: R,
    bindings: &[Binding],
    options: ReadOptions,
    most: Option<usize>,
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
    let reader = SerializedFileReader::new(input).map_err(unreadable)?;
    let metadata = reader.metadata();
    let schema = metadata.file_metadata().schema();
    let fields = schema.get_fields();
    let names: Vec<String> = fields.iter().map(|f| f.name().to_string()).collect();
    let header = Header { file: file.to_string(), names: Some(names), width: fields.len() };
    let layout = layout::resolve(bindings, &header, options.targets_optional)?;
    let mut table = Table::new(header, bindings, &layout);
    table.place = "row";
    // The bound columns, in file order. A flat schema's fields are its
    // leaf columns, in the same order.
    let mut bound: Vec<Bound> = Vec::new();
    for (binding, cols) in layout.columns.iter().enumerate() {
        for (position, &column) in cols.iter().flatten().enumerate() {
            bound.push(Bound { field: column, column, binding, position, kind: Kind::Float });
        }
    }
    bound.sort_unstable_by_key(|b| b.field);
    if let Some(b) = bound.iter().find(|b| !fields[b.field].is_primitive()) {
        return Err(BindError::Data(error(
            None,
            Some(b.field + 1),
            format!("{} is a nested column (a list or a struct)", table.header.column_name(b.field)),
            Some("nnc reads flat columns of numbers or text".into()),
        )));
    }
    let columns = metadata.file_metadata().schema_descr();
    for b in &mut bound {
        // A nested field before this one has several leaf columns.
        let path = [fields[b.field].name().to_string()];
        let leaf = columns.columns().iter().position(|c| c.path().parts() == path);
        b.column = leaf.ok_or_else(|| {
            error(None, Some(b.field + 1), format!("{} has no column chunk", table.header.column_name(b.field)), None)
        })?;
        let field = table.header.column_name(b.field);
        b.kind = kind(&columns.column(b.column)).ok_or_else(|| {
            let column = columns.column(b.column);
            let what = match column.logical_type_ref() {
                Some(logical) => format!("{logical:?}"),
                None if column.converted_type() != ConvertedType::NONE => format!("{}", column.converted_type()),
                None => format!("{}", column.physical_type()),
            };
            error(
                None,
                Some(b.field + 1),
                format!("{field} holds {what} values, which nnc does not read"),
                Some("nnc reads columns of numbers (float, integer, boolean) or text".into()),
            )
        })?;
    }
    let threads = if options.threads == 0 { crate::threads::available() } else { options.threads };
    let ranges = ranges(&reader, threads, most);
    if ranges.is_empty() {
        return Err(BindError::Data(error(None, None, "the Parquet file has no rows".into(), None)));
    }
    let rows: Vec<usize> = ranges.iter().map(|r| r.rows).collect();
    let header = table.header.clone();
    let rooms = table.rooms(&rows);
    let context = Context { file, header: &header, reader: &reader, bound: &bound };
    let chunks = read_ranges(&context, &ranges, rooms, threads)?;
    table.commit(chunks);
    Ok(table)
}

/// What every range's reader shares.
struct Context<'a, R: ChunkReader + 'static> {
    file: &'a str,
    header: &'a Header,
    reader: &'a SerializedFileReader<R>,
    bound: &'a [Bound],
}

/// The rows of every row group, split so every thread has ranges to read
/// (a range starts by skipping the pages before it, and decodes the one it
/// starts in: ranges are not made smaller than needed), or in ranges of at
/// most `most` rows.
fn ranges<R: ChunkReader + 'static>(
    reader: &SerializedFileReader<R>,
    threads: usize,
    most: Option<usize>,
) -> Vec<Range> {
    let groups = reader.metadata().row_groups();
    let total: usize = groups.iter().map(|g| g.num_rows().max(0) as usize).sum();
    let most =
        most.unwrap_or(if groups.len() >= 2 * threads { usize::MAX } else { total.div_ceil(threads).max(1 << 16) });
    let mut ranges = Vec::new();
    let mut first = 0;
    for (group, metadata) in groups.iter().enumerate() {
        let rows = metadata.num_rows().max(0) as usize;
        let mut start = 0;
        while start < rows {
            let take = most.min(rows - start);
            ranges.push(Range { group, start, rows: take, first: first + start });
            start += take;
        }
        first += rows;
    }
    ranges
}

/// Read `ranges` into their rooms on `threads` threads
/// ([`super::share`]). The first error in file order wins.
fn read_ranges<R: ChunkReader + 'static>(
    context: &Context<R>,
    ranges: &[Range],
    rooms: Vec<Room>,
    threads: usize,
) -> Result<Vec<Chunk>, DataError> {
    super::share(threads, rooms, |k, room| read_range(context, ranges[k], room))
        .into_iter()
        .map(|chunk| {
            chunk.unwrap_or_else(|| {
                Err(DataError {
                    file: context.file.to_string(),
                    line: None,
                    column: None,
                    message: "a reader thread failed".into(),
                    help: None,
                })
            })
        })
        .collect()
}

/// Read one range of rows, column by column, into its room.
fn read_range<R: ChunkReader + 'static>(context: &Context<R>, range: Range, room: Room) -> Result<Chunk, DataError> {
    let unreadable = |e: parquet::errors::ParquetError| DataError {
        file: context.file.to_string(),
        line: None,
        column: None,
        message: format!("unreadable Parquet file: {e}"),
        help: Some("is the file complete?".into()),
    };
    let mut rows = room.clear();
    let group = context.reader.get_row_group(range.group).map_err(unreadable)?;
    // The first bad cell: a column stops at its first, the earliest row
    // (then the leftmost column) is the one reported, as a reader of whole
    // rows would.
    let mut first: Option<(usize, usize, DataError)> = None;
    for b in context.bound {
        let reader = group.get_column_reader(b.column).map_err(unreadable)?;
        let max_def = group.metadata().schema_descr().column(b.column).max_def_level();
        let before = first.as_ref().map_or(range.rows, |f| f.0);
        // Each row's cell into the room.
        macro_rules! read {
            ($reader:expr, $cell:expr) => {
                visit($reader, range, max_def, before, $cell, |r, c| put(context, &mut rows.slots, b, range, r, c))
            };
        }
        let result = match reader {
            ColumnReader::BoolColumnReader(r) => read!(r, |v| Cell::Number(f64::from(u8::from(*v)))),
            ColumnReader::Int32ColumnReader(r) => read!(r, |&v| match b.kind {
                Kind::Unsigned => Cell::Number(f64::from(v as u32)),
                _ => Cell::Number(f64::from(v)),
            }),
            ColumnReader::Int64ColumnReader(r) => read!(r, |&v| match b.kind {
                Kind::Unsigned => Cell::Number(v as u64 as f64),
                _ => Cell::Number(v as f64),
            }),
            ColumnReader::FloatColumnReader(r) => read!(r, |&v| Cell::Number(f64::from(v))),
            ColumnReader::DoubleColumnReader(r) => read!(r, |&v| Cell::Number(v)),
            ColumnReader::ByteArrayColumnReader(r) => read!(r, |v| Cell::Text(v.data())),
            // `kind` refused the others.
            _ => Ok(()),
        };
        match result {
            Ok(()) => {}
            Err(Failure::Unreadable(e)) => return Err(unreadable(e)),
            Err(Failure::Cell(row, e)) => {
                if first.as_ref().is_none_or(|f| row < f.0 || (row == f.0 && b.field < f.1)) {
                    first = Some((row, b.field, e));
                }
            }
        }
    }
    if let Some((_, _, e)) = first {
        return Err(e);
    }
    let lines = (0..range.rows).map(|r| (range.first + r + 1) as u32).collect();
    Ok(rows.finish(lines))
}

/// Why a column's range stopped.
enum Failure {
    Unreadable(parquet::errors::ParquetError),
    /// A bad cell at this row of the range.
    Cell(usize, DataError),
}

/// Read rows `range` of a column (up to row `before` of the range) and hand
/// each row's cell to `put`.
fn visit<T: DataType>(
    mut reader: ColumnReaderImpl<T>,
    range: Range,
    max_def: i16,
    before: usize,
    cell: impl Fn(&T::T) -> Cell,
    mut put: impl FnMut(usize, Cell) -> Result<(), DataError>,
) -> Result<(), Failure> {
    let short = || {
        Failure::Unreadable(parquet::errors::ParquetError::General("a column has fewer rows than its row group".into()))
    };
    if reader.skip_records(range.start).map_err(Failure::Unreadable)? != range.start {
        return Err(short());
    }
    // In batches, so a range of many rows needs little memory besides its
    // cells.
    const BATCH: usize = 1 << 14;
    let mut values: Vec<T::T> = Vec::with_capacity(BATCH);
    let mut levels: Vec<i16> = Vec::with_capacity(BATCH);
    let mut row = 0;
    while row < before {
        values.clear();
        levels.clear();
        let want = BATCH.min(before - row);
        let (read, _, _) =
            reader.read_records(want, Some(&mut levels), None, &mut values).map_err(Failure::Unreadable)?;
        if read == 0 {
            return Err(short());
        }
        let mut present = values.iter();
        for r in 0..read {
            let value = if max_def > 0 && levels.get(r).is_some_and(|&l| l < max_def) {
                Cell::Missing
            } else {
                match present.next() {
                    Some(v) => cell(v),
                    None => return Err(short()),
                }
            };
            put(row + r, value).map_err(|e| Failure::Cell(row + r, e))?;
        }
        row += read;
    }
    Ok(())
}

/// Put row `r` (of the range) of bound column `b` into its cells.
fn put<R: ChunkReader + 'static>(
    context: &Context<R>,
    slots: &mut [Slot],
    b: &Bound,
    range: Range,
    r: usize,
    cell: Cell,
) -> Result<(), DataError> {
    let error = |message: String, help: Option<String>| DataError {
        file: context.file.to_string(),
        line: Some(range.first + r + 1),
        column: Some(b.field + 1),
        message,
        help,
    };
    let name = || context.header.column_name(b.field);
    let text = |bytes: &[u8]| -> Result<String, DataError> {
        std::str::from_utf8(bytes)
            .map(|s| s.trim().to_string())
            .map_err(|_| error(format!("{} holds text that is not valid UTF-8", name()), None))
    };
    match &mut slots[b.binding] {
        Slot::Labels(labels) => match cell {
            Cell::Missing => labels.push("", r as u32),
            Cell::Number(n) => labels.push(&n.to_string(), r as u32),
            Cell::Text(bytes) => labels.push(&text(bytes)?, r as u32),
        },
        slot => {
            let number = match cell {
                Cell::Missing => f64::NAN,
                Cell::Number(n) if n.is_finite() || n.is_nan() => n,
                Cell::Number(n) => return Err(error(format!("`{n}` in {} is not a finite number", name()), None)),
                Cell::Text(bytes) => {
                    let s = text(bytes)?;
                    match s.parse::<f64>() {
                        _ if is_missing(&s) => f64::NAN,
                        Ok(v) if v.is_finite() => v,
                        _ => {
                            return Err(error(
                                format!("`{}` in {} is not a number", shorten(&s), name()),
                                Some(
                                    "a numeric binding reads numbers; for a column of categories use `one_hot(column)`"
                                        .into(),
                                ),
                            ));
                        }
                    }
                }
            };
            match slot {
                Slot::Numbers(values, width) => values[r * *width + b.position] = MaybeUninit::new(number),
                Slot::Floats(values, width) => {
                    let rounded = number as f32;
                    if rounded.is_infinite() {
                        return Err(error(
                            format!("`{number}` in {} is beyond ±3.4e38, the range of 32-bit floats", name()),
                            Some("nnc trains in 32-bit floats: scale the column down, e.g. `/ 1e6`".into()),
                        ));
                    }
                    values[r * *width + b.position] = MaybeUninit::new(rounded);
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::data::table::Cells;

    fn read(text: &str, threads: usize, most: Option<usize>) -> Result<Table, BindError> {
        let bindings = crate::pipeline::frontend(text).expect("checks").program.data;
        let bytes = bytes::Bytes::from(std::fs::read("tests/data/penguins.parquet").expect("the test file"));
        let options = ReadOptions { threads, ..ReadOptions::default() };
        read_in_ranges("penguins.parquet", bytes, &bindings, options, most)
    }

    /// Ranges of a few rows read on several threads (skipping into the
    /// pages of every column) give the table of one range on one thread:
    /// floats, integers and dictionary-encoded text with nulls, in `f32`
    /// and in `f64` (a standardised binding).
    #[test]
    fn ranges_on_any_number_of_threads_read_the_same_table() {
        let model = "data { input x = columns(bill_length_mm, body_mass_g)  input z = columns(year) standardize
                        input i = one_hot(island, 3)  target y = one_hot(species, 3) }
                     model { out = dense(concat(x, z, i), 3, softmax) } loss cross_entropy(out, y)";
        let whole = read(model, 1, None).expect("reads");
        assert_eq!((whole.rows, whole.lines.len()), (344, 344));
        let bits = |t: &Table| -> Vec<Vec<u64>> {
            t.cells
                .iter()
                .map(|c| match c {
                    Cells::Floats { values, .. } => values.iter().map(|v| u64::from(v.to_bits())).collect(),
                    Cells::Numbers { values, .. } => values.iter().map(|v| v.to_bits()).collect(),
                    Cells::Labels(l) => {
                        l.codes.iter().map(|&c| u64::from(c)).chain(l.first_row.iter().map(|&r| u64::from(r))).collect()
                    }
                    Cells::Absent => Vec::new(),
                })
                .collect()
        };
        let names = |t: &Table| -> Vec<Vec<String>> {
            t.cells.iter().filter_map(|c| if let Cells::Labels(l) = c { Some(l.names.clone()) } else { None }).collect()
        };
        // The first row of the file, and its missing cells (row 4).
        let Cells::Floats { values, width: 2 } = &whole.cells[0] else { panic!("x is kept in f32") };
        assert_eq!((values[0], values[1]), (39.1, 3750.0));
        assert!(values[6].is_nan() && values[7].is_nan());
        assert!(matches!(&whole.cells[1], Cells::Numbers { .. }), "z keeps f64");
        for (threads, most) in [(1, 50), (3, 50), (2, 7), (4, 344)] {
            let ranged = read(model, threads, Some(most)).expect("reads");
            assert_eq!(ranged.lines, whole.lines, "{threads} threads, {most} rows");
            assert_eq!(bits(&ranged), bits(&whole), "{threads} threads, {most} rows");
            assert_eq!(names(&ranged), names(&whole), "{threads} threads, {most} rows");
        }
        // A text column bound as numbers: the first bad row, whatever the ranges.
        let bad = "data { input x = columns(bill_length_mm, island)  target y = one_hot(species, 3) }
                   model { out = dense(x, 3, softmax) } loss cross_entropy(out, y)";
        let one = read(bad, 1, None).expect_err("text");
        assert!(matches!(&one, BindError::Data(e) if (e.line, e.column) == (Some(1), Some(2))), "{one:?}");
        assert_eq!(read(bad, 3, Some(10)).expect_err("text"), one);
    }

    /// A column of a type nnc does not read (dates): named, with its column.
    #[test]
    fn a_date_column_is_refused_with_its_place() {
        let text = "data { input x = columns(x, day)  target y = column(y) }
                    model { out = dense(x, 1) } loss mse(out, y)";
        let bindings = crate::pipeline::frontend(text).expect("checks").program.data;
        let bytes = bytes::Bytes::from(std::fs::read("tests/data/dates.parquet").expect("the test file"));
        let err = read_parquet("dates.parquet", bytes.clone(), &bindings, ReadOptions::default()).expect_err("a date");
        let BindError::Data(e) = err else { panic!("a data error") };
        assert_eq!(e.column, Some(2));
        assert!(e.message.contains("column `day` holds Date values, which nnc does not read"), "{}", e.message);
        // Unbound, it is not read.
        let text = "data { input x = columns(x)  target y = column(y) }
                    model { out = dense(x, 1) } loss mse(out, y)";
        let bindings = crate::pipeline::frontend(text).expect("checks").program.data;
        let table = read_parquet("dates.parquet", bytes, &bindings, ReadOptions::default()).expect("reads");
        assert_eq!(table.rows, 3);
    }
}
