//! Parquet files, read through a memory map ([`Mapped`]): only the bound
//! columns are read, straight into the table's cells (`f32` for bindings
//! that keep them, as CSV's), the rows of each row group split into ranges
//! read on every thread. The arrow-rs `parquet` crate reads the footer and
//! the page headers and decompresses; columns of numbers in plain or
//! dictionary pages are decoded by [`pages`], a block of rows of every such
//! column at a time (converted a column at a time, then written into the
//! table a row at a time), the others (booleans, text, other encodings) by
//! the crate's typed column readers. Float, integer, boolean and text (UTF-8,
//! dictionary-encoded or not) columns are read; a null is a missing cell.
//! A place in messages is `file:ROW:COLUMN` (1-based, the header not
//! counted).

use super::contain::contained;
use super::layout::{self, Header};
use super::pages::{self, Numbers, SharedDictionary};
use super::table::{Chunk, Labels, Room, Rows, Slot, Table, is_missing};
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
        // `read_to_end` fills the spare capacity without zeroing it first.
        let mut buffer = Vec::with_capacity(length);
        At { file: self.0.clone(), offset: start }.take(length as u64).read_to_end(&mut buffer)?;
        if buffer.len() < length {
            return Err(parquet::errors::ParquetError::EOF("the file ends within a page".into()));
        }
        Ok(buffer.into())
    }
}

/// A Parquet file read through a memory map: a page is a slice of the map
/// (no copy into a buffer of ours), and the map's pages under it are given
/// back once the page is decoded (in runs, [`Release`]), so the process
/// never holds much more of the file than the pages being read (as
/// [`InPlace`]'s buffers would). A third of a read went to copying the
/// file into buffers.
///
/// Page headers are read from the file (`pread`), not the map: a range
/// that starts far into a column chunk reads the headers of every page
/// before it to skip them, and through the map each header faulted in
/// and later unmapped the 64 KB around it: on 10⁶ rows × 21 columns, the
/// last 10⁵ rows as a range of their own took 13–14 ms that way, 10–11 ms
/// with `pread` (BENCHMARKS.md, session 10).
pub struct Mapped {
    map: Arc<memmap2::Mmap>,
    file: Arc<File>,
}

impl Mapped {
    /// The file mapped, or `None` where it cannot be (a pipe).
    pub fn new(file: &File) -> Option<Mapped> {
        // SAFETY: the map is only read. As with every memory map, a file
        // cut short by another process while nnc reads it would fault;
        // nnc itself never writes a data file.
        let map = unsafe { memmap2::Mmap::map(file) }.ok()?;
        Some(Mapped { map: Arc::new(map), file: Arc::new(file.try_clone().ok()?) })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    fn window(&self, start: u64, length: usize, release: bool) -> parquet::errors::Result<Window> {
        let size = self.map.len();
        let start = usize::try_from(start).ok().filter(|&s| s <= size && length <= size - s);
        let start = start.ok_or_else(|| parquet::errors::ParquetError::EOF("a range beyond the file's end".into()))?;
        Ok(Window { map: self.map.clone(), start, length, release })
    }
}

/// Bytes `start..start + length` of a [`Mapped`] file.
struct Window {
    map: Arc<memmap2::Mmap>,
    start: usize,
    length: usize,
    /// Give the map's whole pages under it back when dropped (a data
    /// page, read once).
    release: bool,
}

impl AsRef<[u8]> for Window {
    fn as_ref(&self) -> &[u8] {
        &self.map[self.start..self.start + self.length]
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        if !self.release {
            return;
        }
        // Runs of a column chunk's consecutive pages are given back
        // together: each `madvise` interrupts the other cores running this
        // process to flush their TLBs.
        let (start, end) = (self.start, self.start + self.length);
        RELEASING.with_borrow_mut(|runs| {
            let run =
                runs.iter_mut().find(|r| Arc::ptr_eq(&r.map, &self.map) && r.end <= start && start - r.end <= GAP);
            match run {
                Some(run) => {
                    run.end = end;
                    if run.end - run.start >= RUN {
                        run.start = run.release();
                    }
                }
                None => {
                    if runs.len() >= RUNS {
                        runs.remove(0).release();
                    }
                    runs.push(Release { map: self.map.clone(), start, end });
                }
            }
        });
    }
}

/// Bytes of a run given back at once: one `madvise` in place of about
/// three (pages of 20 000 doubles are 160 KB), at most [`RUNS`] × `RUN`
/// more of the file held per thread.
const RUN: usize = 512 << 10;
/// Runs kept per thread (one per column read at once).
const RUNS: usize = 64;
/// Bytes between a page and the next in a column chunk (its header).
const GAP: usize = 4096;

std::thread_local! {
    /// The runs of decoded pages this thread has not given back yet.
    static RELEASING: std::cell::RefCell<Vec<Release>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Bytes `start..end` of a map, decoded and not given back yet.
struct Release {
    map: Arc<memmap2::Mmap>,
    start: usize,
    end: usize,
}

impl Release {
    /// Give back the 4 KB pages the run covers up to its last whole one;
    /// where the next release of the run starts (the page the run ends
    /// in, which the next window of the chunk goes on to read).
    fn release(&self) -> usize {
        const PAGE: usize = 4096;
        let (first, last) = (self.start / PAGE * PAGE, self.end / PAGE * PAGE);
        if last > first {
            // SAFETY: a shared, read-only file map: dropped pages are read
            // again from the file if touched again (a page shared with a
            // window still being read), so no byte changes. Only advice:
            // an error leaves them mapped.
            let _ = unsafe { self.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, first, last - first) };
        }
        last.max(self.start)
    }
}

/// Give back every run this thread holds (at the end of a range).
fn release_runs() {
    RELEASING.with_borrow_mut(|runs| {
        runs.drain(..).for_each(|run| {
            run.release();
        })
    });
}

impl Length for Mapped {
    fn len(&self) -> u64 {
        self.map.len() as u64
    }
}

/// Bytes read at once for a page header: a page header of numbers, with
/// its statistics, is under 100 bytes.
const HEADER_BYTES: usize = 256;

impl ChunkReader for Mapped {
    type T = BufReader<At>;

    /// The crate reads only page headers this way.
    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(BufReader::with_capacity(HEADER_BYTES, At { file: self.file.clone(), offset: start }))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        Ok(bytes::Bytes::from_owner(self.window(start, length, true)?))
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
    read_in_ranges(file, input, bindings, options, None, true)
}

/// [`read_parquet`] in ranges of about `most` rows (by default, about
/// one per thread); with `own_pages`, the columns [`pages`] decodes are
/// decoded there (otherwise, for tests, every column through the crate's
/// readers).
fn read_in_ranges<R: ChunkReader + 'static>(
    file: &str,
    input: R,
    bindings: &[Binding],
    options: ReadOptions,
    most: Option<usize>,
    own_pages: bool,
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
    let reader = contained(|| SerializedFileReader::new(input))
        .unwrap_or_else(|message| Err(parquet::errors::ParquetError::General(message)))
        .map_err(unreadable)?;
    let metadata = reader.metadata();
    let schema = metadata.file_metadata().schema();
    let fields = schema.get_fields();
    let names: Vec<String> = fields.iter().map(|f| f.name().to_string()).collect();
    let header = Header { file: file.to_string(), names: Some(names), width: fields.len() };
    let layout = layout::resolve(bindings, &header, options.targets_optional)?;
    let mut table = Table::new(header, bindings, &layout);
    table.place = "row";
    table.huge_pages = true;
    // Both column readers count the missing cells they store.
    table.missing = Some(vec![false; bindings.len()]);
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
    let ranges = ranges(&reader, &bound, threads, most);
    if ranges.is_empty() {
        return Err(BindError::Data(error(None, None, "the Parquet file has no rows".into(), None)));
    }
    let rows: Vec<usize> = ranges.iter().map(|r| r.rows).collect();
    let header = table.header.clone();
    let rooms = table.rooms(&rows);
    let dictionaries = (0..metadata.num_row_groups() * bound.len()).map(|_| SharedDictionary::default()).collect();
    let context = Context { file, header: &header, reader: &reader, bound: &bound, dictionaries, own_pages };
    keep_freed_memory();
    let chunks = read_ranges(&context, &ranges, rooms, threads)?;
    table.commit(chunks);
    Ok(table)
}

/// Tell glibc's allocator to keep freed memory for reuse, from the first
/// Parquet read on.
///
/// The crate decompresses each page into a new buffer and frees it once
/// the page is decoded. Pages are ≈ 160 KB: at glibc's defaults, above
/// its threshold for serving an allocation with a fresh `mmap`, and its
/// dynamic threshold then trims the freed heap top as often as not, so
/// most pages cost new memory: page faults, the crate's fill with zeros,
/// an `munmap` or a trim (a TLB flush on every core the process runs on).
/// With freed buffers kept, the next page reuses one, and so do the
/// bound matrices built after the read: 12.6 k page faults instead of
/// 17.4 k on 10⁶ rows × 21 columns, the read 5–10% faster, peak RSS the
/// same (BENCHMARKS.md, session 9). The setting stays for the process:
/// restored after the read, the matrices built next took fresh memory
/// again and the gain was gone. It is what glibc's own dynamic thresholds
/// reach once a 32 MB block has been freed, with trimming at 64 MB.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets thresholds; glibc takes its own locks.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// What every range's reader shares.
struct Context<'a, R: ChunkReader + 'static> {
    file: &'a str,
    header: &'a Header,
    reader: &'a SerializedFileReader<R>,
    bound: &'a [Bound],
    /// Per row group, per bound column, its dictionary once decoded.
    dictionaries: Vec<SharedDictionary>,
    own_pages: bool,
}

/// The fewest rows a thread's range of a row group is cut to ([`ranges`]).
const LEAST_RANGE: usize = 100_000;

/// The rows of every row group, split so every thread has ranges to read
/// when the file is large enough ([`range_rows`]; a range starts by
/// skipping the pages before it, and decodes the one it starts in), or in
/// pieces of about `most` rows (a row group of `n` rows in
/// `n.div_ceil(most)` ranges).
///
/// A row group cut into several ranges is cut where the work is even, not
/// the rows ([`cut`]): its first rows cost more when its columns start
/// with large dictionaries.
///
/// A file is cut into ranges of about [`LEAST_RANGE`] rows or more. A
/// writer's dictionary holds up to 1 MB of values (pyarrow: the first
/// 131 072 rows of a column of random doubles), and ranges that start in
/// the dictionary-encoded pages all wait for it ([`SharedDictionary`]).
/// On 10⁵ such rows two ranges of 50 000 were no faster than one (41
/// against 39 ms) and, each with its own dictionaries then, raised peak
/// RSS from 38 to 58–65 MB; on 2·10⁵, two of 10⁵ took 42 ms against 64
/// (BENCHMARKS.md, session 9).
fn ranges<R: ChunkReader + 'static>(
    reader: &SerializedFileReader<R>,
    bound: &[Bound],
    threads: usize,
    most: Option<usize>,
) -> Vec<Range> {
    let groups = reader.metadata().row_groups();
    let total: usize = groups.iter().map(|g| g.num_rows().max(0) as usize).sum();
    let most = most.unwrap_or_else(|| range_rows(total, groups.len(), threads));
    let mut ranges = Vec::new();
    let mut first = 0;
    for (group, metadata) in groups.iter().enumerate() {
        let rows = metadata.num_rows().max(0) as usize;
        let pieces = rows.div_ceil(most);
        let dictionary = dictionary_rows(metadata, bound);
        for k in 0..pieces {
            let (start, end) = (cut(rows, dictionary, k, pieces), cut(rows, dictionary, k + 1, pieces));
            if end > start {
                ranges.push(Range { group, start, rows: end - start, first: first + start });
            }
        }
        first += rows;
    }
    ranges
}

/// Where the `k`-th of `pieces` ranges of a row group of `rows` rows
/// starts, so that each has the same work when its first `dictionary` rows
/// cost [`DICTIONARY_COST`] times the others.
fn cut(rows: usize, dictionary: usize, k: usize, pieces: usize) -> usize {
    let dictionary = dictionary.min(rows) as f64;
    let heavy = DICTIONARY_COST * dictionary;
    let work = heavy + (rows as f64 - dictionary);
    let target = work * k as f64 / pieces as f64;
    let row = if target <= heavy { target / DICTIONARY_COST } else { dictionary + (target - heavy) };
    (row.round() as usize).min(rows)
}

/// How much more a row read from a dictionary page costs than a row of
/// plain values, counting the decoding of the dictionary itself (a page of
/// as many values as it has entries, copied into a table of its own) and
/// the look-up of each row's value. Measured on 10⁶ rows × 20 columns of
/// random doubles, whose first 131 072 rows are dictionary-encoded (the
/// writer's dictionary holds 1 MB): the first 400 000 rows took as long as
/// the last 600 000, and 370 000 / 630 000 evened two threads out
/// (BENCHMARKS.md, session 10).
const DICTIONARY_COST: f64 = 3.0;

/// About how many of a row group's first rows the bound columns read from
/// dictionary pages, on average over the columns: a column's dictionary
/// entries, from the bytes of its dictionary page (a dictionary of `n`
/// distinct values holds at most `n` rows' worth of new values before the
/// writer falls back to plain pages; a small dictionary adds next to
/// nothing).
fn dictionary_rows(group: &parquet::file::metadata::RowGroupMetaData, bound: &[Bound]) -> usize {
    if bound.is_empty() {
        return 0;
    }
    let entries: usize = bound
        .iter()
        .map(|b| {
            let chunk = group.column(b.column);
            let bytes = chunk.dictionary_page_offset().map_or(0, |at| (chunk.data_page_offset() - at).max(0) as usize);
            let width = match chunk.column_type() {
                Physical::INT32 | Physical::FLOAT => 4,
                _ => 8,
            };
            bytes / width
        })
        .sum();
    entries / bound.len()
}

/// The most rows of a range when `total` rows in `groups` row groups are
/// read on `threads` threads: whole row groups when there are enough to
/// share, else equal ranges of at least [`LEAST_RANGE`] rows.
fn range_rows(total: usize, groups: usize, threads: usize) -> usize {
    if groups >= 2 * threads {
        return usize::MAX;
    }
    total.div_ceil(threads.min(total / LEAST_RANGE).max(1)).max(1)
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
    // The crate panics on some damaged headers (`contain`).
    let read = contained(|| read_range_of(context, range, room));
    release_runs();
    read.unwrap_or_else(|message| {
        Err(DataError {
            file: context.file.to_string(),
            line: None,
            column: None,
            message: format!("unreadable Parquet file: a damaged page ({message})"),
            help: Some("is the file complete?".into()),
        })
    })
}

/// [`read_range`]'s work.
fn read_range_of<R: ChunkReader + 'static>(context: &Context<R>, range: Range, room: Room) -> Result<Chunk, DataError> {
    let unreadable = |e: parquet::errors::ParquetError| DataError {
        file: context.file.to_string(),
        line: None,
        column: None,
        message: format!("unreadable Parquet file: {e}"),
        help: Some("is the file complete?".into()),
    };
    let mut rows = room.clear_later();
    let group = context.reader.get_row_group(range.group).map_err(unreadable)?;
    // The first bad cell: a column stops at its first, the earliest row
    // (then the leftmost column) is the one reported, as a reader of whole
    // rows would.
    let mut first: Option<(usize, usize, DataError)> = None;
    // Columns of numbers in plain or dictionary pages are decoded here
    // (`pages`), all of them a block of rows at a time, so each block of
    // the room's rows is written while it is in cache.
    let mut decoded = Vec::new();
    for (k, b) in context.bound.iter().enumerate() {
        let chunk = group.metadata().column(b.column);
        if !context.own_pages
            || !matches!(b.kind, Kind::Float | Kind::Signed | Kind::Unsigned)
            || !pages::decodes(chunk.column_type(), chunk.encodings())
        {
            continue;
        }
        let max_def = chunk.column_descr().max_def_level();
        let pages = group.get_column_page_reader(b.column).map_err(unreadable_column(context, b))?;
        let dictionary = Arc::clone(&context.dictionaries[range.group * context.bound.len() + k]);
        // Converted to `f32` only for a binding that keeps `f32` cells.
        let narrow = matches!(rows.slots[b.binding], Slot::Floats(..));
        let unsigned = matches!(b.kind, Kind::Unsigned);
        let mut numbers = Numbers::new(pages, chunk.column_type(), unsigned, max_def, dictionary, narrow);
        numbers.skip(range.start).map_err(|e| unreadable_page(context, b, e))?;
        let values = vec![0.0; BLOCK.min(range.rows)];
        let floats = if narrow { vec![0.0; values.len()] } else { Vec::new() };
        decoded.push(Decoded {
            bound: b,
            numbers,
            values,
            floats,
            whole: Vec::new(),
            known: Vec::new(),
            stopped: false,
        });
    }
    // The decoded columns of each numeric binding, written a row at a time.
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for (d, column) in decoded.iter().enumerate() {
        let binding = column.bound.binding;
        if matches!(rows.slots[binding], Slot::Floats(..) | Slot::Numbers(..)) {
            match groups.iter_mut().find(|g| g.0 == binding) {
                Some(group) => group.1.push(d),
                None => groups.push((binding, vec![d])),
            }
        }
    }
    let mut start = 0;
    while start < range.rows && first.as_ref().is_none_or(|f| start <= f.0) {
        let n = BLOCK.min(range.rows - start);
        rows.clear_to(start + n);
        for column in decoded.iter_mut().filter(|c| !c.stopped) {
            let b = column.bound;
            column.numbers.read(&mut column.values[..n]).map_err(|e| unreadable_page(context, b, e))?;
        }
        for (binding, members) in &groups {
            // A cell `put` refuses: beyond the range of the cells.
            let (bad, nan, refused): (_, _, fn(f64) -> bool) = match &mut rows.slots[*binding] {
                Slot::Floats(cells, width) => {
                    let (mut bad, mut nan) = (false, false);
                    for &d in members {
                        let column = &mut decoded[d];
                        let (b, m) = to_f32(&column.values[..n], &mut column.floats[..n]);
                        (bad, nan) = (bad | b, nan | m);
                    }
                    let columns: Vec<(usize, &[f32])> =
                        members.iter().map(|&d| (decoded[d].bound.position, &decoded[d].floats[..n])).collect();
                    interleave(cells, *width, start, &columns);
                    (bad, nan, |v| (v as f32).is_infinite())
                }
                Slot::Numbers(cells, width) => {
                    let columns: Vec<(usize, &[f64])> =
                        members.iter().map(|&d| (decoded[d].bound.position, &decoded[d].values[..n])).collect();
                    let bad = columns.iter().any(|c| c.1.iter().any(|v| v.is_infinite()));
                    let nan = columns.iter().any(|c| c.1.iter().any(|v| v.is_nan()));
                    interleave(cells, *width, start, &columns);
                    (bad, nan, f64::is_infinite)
                }
                _ => continue,
            };
            rows.missing[*binding] |= nan;
            if !bad {
                continue;
            }
            // Which columns: the first bad cell of each, as `put` reports it.
            for &d in members {
                let column = &mut decoded[d];
                let b = column.bound;
                let Some(i) = column.values[..n].iter().position(|&v| refused(v)) else {
                    continue;
                };
                column.stopped = true;
                let row = start + i;
                if let Err(e) = put(context, &mut rows.slots, b, range, row, Cell::Number(column.values[i]))
                    && first.as_ref().is_none_or(|f| row < f.0 || (row == f.0 && b.field < f.1))
                {
                    first = Some((row, b.field, e));
                }
            }
        }
        for column in decoded.iter_mut().filter(|c| !c.stopped) {
            store_labels(&mut rows, column, start, n);
        }
        start += n;
    }
    rows.clear_to(range.rows);
    // The other columns through the crate's typed readers, a column at a
    // time.
    let others = context.bound.iter().filter(|b| !decoded.iter().any(|d| d.bound.field == b.field));
    for b in others {
        let reader = group.get_column_reader(b.column).map_err(unreadable_column(context, b))?;
        let max_def = group.metadata().schema_descr().column(b.column).max_def_level();
        let before = first.as_ref().map_or(range.rows, |f| f.0);
        // Each row's cell into the room.
        macro_rules! read {
            ($reader:expr, $cell:expr) => {
                visit($reader, range, max_def, before, $cell, |r, c| {
                    rows.missing[b.binding] |= put(context, &mut rows.slots, b, range, r, c)?;
                    Ok(())
                })
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
            Err(Failure::Unreadable(e)) => return Err(unreadable_column(context, b)(e)),
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

/// Rows decoded at once per column: a block of 20 `f32` columns is 320 KB
/// of the room, within the L2 cache.
const BLOCK: usize = 1 << 12;

/// A column read through [`pages`].
struct Decoded<'a> {
    bound: &'a Bound,
    numbers: Numbers,
    /// The block of rows last read, and as `f32`s.
    values: Vec<f64>,
    floats: Vec<f32>,
    /// For a label binding, the codes of the classes seen so far, so a
    /// known class is not formatted again: a whole number below
    /// [`WHOLE`] by its value (`NEW` where not seen yet), a few others by
    /// their bits.
    whole: Vec<u32>,
    known: Vec<(u64, u32)>,
    /// Stopped at a bad cell.
    stopped: bool,
}

/// An error reading a column's pages (the crate's or [`pages`]'), with
/// the column.
fn unreadable_page<R: ChunkReader + 'static>(context: &Context<R>, b: &Bound, e: pages::Unreadable) -> DataError {
    let e = match e {
        pages::Unreadable::Crate(e) => e.to_string(),
        pages::Unreadable::Page(e) => e.to_string(),
    };
    DataError {
        file: context.file.to_string(),
        line: None,
        column: Some(b.field + 1),
        message: format!("unreadable Parquet file: {}: {e}", context.header.column_name(b.field)),
        help: Some("is the file complete?".into()),
    }
}

/// [`unreadable_page`] for the crate's errors.
fn unreadable_column<R: ChunkReader + 'static>(
    context: &Context<R>,
    b: &Bound,
) -> impl Fn(parquet::errors::ParquetError) -> DataError {
    move |e| unreadable_page(context, b, pages::Unreadable::Crate(e))
}

/// Store rows `start..start + n` (of the range) of a decoded column of
/// labels.
fn store_labels(rows: &mut Rows, column: &mut Decoded, start: usize, n: usize) {
    let binding = column.bound.binding;
    let Slot::Labels(labels) = &mut rows.slots[binding] else { return };
    if column.whole.is_empty() {
        column.whole = vec![NEW; WHOLE];
    }
    for (i, &v) in column.values[..n].iter().enumerate() {
        // Saturating; NaN is 0, and -0 (not the class `0`) fails the test.
        let w = v as usize;
        let whole = w < WHOLE && (w as f64).to_bits() == v.to_bits();
        let code = match whole {
            true => column.whole[w],
            false => column.known.iter().find(|k| k.0 == v.to_bits()).map_or(NEW, |k| k.1),
        };
        if code != NEW {
            labels.codes.push(code);
            continue;
        }
        let row = (start + i) as u32;
        if v.is_nan() {
            labels.push("", row);
            rows.missing[binding] = true;
            continue;
        }
        labels.push(&v.to_string(), row);
        let code = *labels.codes.last().expect("a code was pushed");
        if whole {
            column.whole[w] = code;
        } else if column.known.len() < 8 {
            column.known.push((v.to_bits(), code));
        }
    }
}

/// Labels that are whole numbers below this are looked up by value.
const WHOLE: usize = 256;
/// Not a known class.
const NEW: u32 = u32::MAX;

/// `values` as `f32`s; whether any is beyond their range, and whether any
/// is NaN (missing). A loop the compiler vectorizes.
fn to_f32(values: &[f64], floats: &mut [f32]) -> (bool, bool) {
    let (mut bad, mut nan) = (false, false);
    for (float, &v) in floats.iter_mut().zip(values) {
        *float = v as f32;
        bad |= float.is_infinite();
        // A value converts to NaN only from NaN.
        nan |= v.is_nan();
    }
    (bad, nan)
}

/// Write the block of rows `start..` of a binding's `columns` (each its
/// position in the row and its cells) into a room's cells, `width` to a
/// row: a row at a time, so the room is written in order (a column at a
/// time, every cell written would be a cache line of its own).
fn interleave<T: Copy>(cells: &mut [MaybeUninit<T>], width: usize, start: usize, columns: &[(usize, &[T])]) {
    let n = columns.first().map_or(0, |c| c.1.len());
    assert!(columns.iter().all(|c| c.0 < width && c.1.len() == n), "every column has the block's rows");
    for (r, row) in cells[start * width..][..n * width].chunks_exact_mut(width).enumerate() {
        for &(position, column) in columns {
            row[position] = MaybeUninit::new(column[r]);
        }
    }
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

/// Put row `r` (of the range) of bound column `b` into its cells; whether
/// the cell is missing.
fn put<R: ChunkReader + 'static>(
    context: &Context<R>,
    slots: &mut [Slot],
    b: &Bound,
    range: Range,
    r: usize,
    cell: Cell,
) -> Result<bool, DataError> {
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
        Slot::Labels(labels) => {
            match cell {
                Cell::Missing => labels.push("", r as u32),
                Cell::Number(n) => labels.push(&n.to_string(), r as u32),
                Cell::Text(bytes) => labels.push(&text(bytes)?, r as u32),
            }
            Ok(labels.codes.last() == Some(&Labels::MISSING))
        }
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
                            format!("`{number:e}` in {} is beyond ±3.4e38, the range of 32-bit floats", name()),
                            Some("nnc trains in 32-bit floats: scale the column down, e.g. `/ 1e6`".into()),
                        ));
                    }
                    values[r * *width + b.position] = MaybeUninit::new(rounded);
                }
                _ => {}
            }
            Ok(number.is_nan())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::data::table::Cells;

    fn read(text: &str, threads: usize, most: Option<usize>) -> Result<Table, BindError> {
        let bindings = crate::pipeline::frontend(text).expect("checks").program.data;
        let bytes = bytes::Bytes::from(std::fs::read("tests/data/penguins.parquet").expect("the test file"));
        let options = ReadOptions { threads, ..ReadOptions::default() };
        read_in_ranges("penguins.parquet", bytes, &bindings, options, most, true)
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

    #[test]
    fn small_files_are_one_range() {
        // (rows, row groups, threads) → the most rows of a range.
        for (case, most) in [
            ((100_000, 1, 2), 100_000),
            ((199_999, 1, 2), 199_999),
            ((200_000, 1, 2), 100_000),
            ((1_000_000, 1, 2), 500_000),
            ((1_000_000, 1, 3), 333_334),
            ((1_000_000, 1, 16), 100_000),
            ((1_000_000, 4, 2), usize::MAX),
            ((0, 1, 2), 1),
        ] {
            assert_eq!(range_rows(case.0, case.1, case.2), most, "{case:?}");
        }
    }

    #[test]
    fn ranges_are_cut_where_the_work_is_even() {
        // No dictionary: equal rows.
        assert_eq!([0, 1, 2].map(|k| cut(1_000_000, 0, k, 2)), [0, 500_000, 1_000_000]);
        // 131 072 rows at three times the cost: the first range is shorter
        // by the dictionary's extra work, split between the two.
        assert_eq!(cut(1_000_000, 131_072, 1, 2), 500_000 - 131_072);
        // A cut inside the dictionary-encoded rows.
        // (3 · 200 000 + 100 000) / 3 of the work, at three times the cost.
        assert_eq!(cut(300_000, 200_000, 1, 3), 77_778);
        // A dictionary larger than the group: every row costs the same.
        assert_eq!(cut(1000, 5000, 1, 2), 500);
        for (rows, dictionary, pieces) in [(7, 3, 3), (1_000_003, 131_072, 3), (10, 0, 4)] {
            let cuts: Vec<usize> = (0..=pieces).map(|k| cut(rows, dictionary, k, pieces)).collect();
            assert_eq!((cuts[0], cuts[pieces]), (0, rows), "the ranges cover the group");
            assert!(cuts.windows(2).all(|w| w[0] <= w[1]), "in order: {cuts:?}");
        }
    }

    /// The cells of a table as bits, labels as their codes and first rows.
    fn bits(t: &Table) -> Vec<Vec<u64>> {
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
    }

    /// nnc's own page decoder (`pages`) against the `parquet` crate's
    /// typed readers, bit for bit, on every page layout of
    /// tests/data/make_parquet_numbers.py: plain and dictionary pages (and
    /// the switch between them), nulls, v1 and v2 pages, snappy, zstd and
    /// none, every integer and float type, ranges that start inside pages
    /// and row groups; in `f32` cells, `f64` cells (standardized) and
    /// labels.
    #[test]
    fn own_pages_read_what_the_crate_reads() {
        // f32 cells; f64 cells (standardized) and labels from numbers.
        let models = [
            "data { input x = columns(plain, dict, few, single, i32, i64, u32, u64, req, delta)  target y = one_hot(label, 3) }",
            "data { input z = columns(plain, dict, single, i64, u64) standardize  input c = one_hot(few, 7)
                    target y = one_hot(label, 3) }",
        ];
        for (m, data) in models.iter().enumerate() {
            let model = format!("{data} model {{ out = dense(x, 3, softmax) }} loss cross_entropy(out, y)");
            let model = if m == 0 { model } else { model.replace("dense(x", "dense(concat(z, c)") };
            let bindings = crate::pipeline::frontend(&model).expect("checks").program.data;
            for name in ["v1-snappy", "v2-zstd", "v1-none"] {
                let path = format!("tests/data/numbers-{name}.parquet");
                let bytes = bytes::Bytes::from(std::fs::read(&path).expect("the test file"));
                let read = |threads: usize, most: Option<usize>, own: bool| {
                    let options = ReadOptions { threads, ..ReadOptions::default() };
                    read_in_ranges(&path, bytes.clone(), &bindings, options, most, own).expect("reads")
                };
                let crate_readers = read(1, None, false);
                assert_eq!(crate_readers.rows, 1500);
                if let Cells::Floats { values, .. } = &crate_readers.cells[0] {
                    assert!(values.iter().any(|v| v.is_nan()), "{name}: the file has nulls");
                    assert!(values.iter().any(|&v| v > 4e9), "{name}: unsigned 32-bit values above 2^31");
                }
                for (threads, most) in [(1, None), (2, None), (3, Some(77)), (2, Some(500)), (4, Some(1))] {
                    let own = read(threads, most, true);
                    assert_eq!(bits(&own), bits(&crate_readers), "{name}: {threads} threads, ranges of {most:?}");
                    assert_eq!(own.lines, crate_readers.lines);
                    assert_eq!(own.missing, crate_readers.missing, "{name}: {threads} threads, ranges of {most:?}");
                }
                // Nulls in `x` (or `z`), none in the labels.
                let expected = if m == 0 { vec![true, false] } else { vec![true, false, false] };
                assert_eq!(crate_readers.missing, Some(expected), "{name}");
            }
        }
    }

    /// The first bad cell by row, then column, whatever the ranges, and
    /// the same error as the crate's readers give.
    #[test]
    fn own_pages_refuse_the_first_bad_cell() {
        let cases = [
            ("huge, infinite", "`1e39` in column `huge` is beyond ±3.4e38", (700, 1)),
            ("infinite", "`inf` in column `infinite` is not a finite number", (700, 2)),
        ];
        for (columns, message, (line, column)) in cases {
            let model = format!(
                "data {{ input x = columns({columns})  target y = one_hot(label, 3) }}
                 model {{ out = dense(x, 3, softmax) }} loss cross_entropy(out, y)"
            );
            let bindings = crate::pipeline::frontend(&model).expect("checks").program.data;
            let bytes = bytes::Bytes::from(std::fs::read("tests/data/numbers-bad.parquet").expect("the test file"));
            let read = |threads: usize, most: Option<usize>, own: bool| {
                let options = ReadOptions { threads, ..ReadOptions::default() };
                match read_in_ranges("bad.parquet", bytes.clone(), &bindings, options, most, own) {
                    Err(BindError::Data(e)) => e,
                    other => panic!("{columns}: {:?}", other.map(|t| t.rows)),
                }
            };
            let crate_readers = read(1, None, false);
            assert!(crate_readers.message.contains(message), "{}", crate_readers.message);
            assert_eq!((crate_readers.line, crate_readers.column), (Some(line), Some(column)));
            for (threads, most) in [(1, None), (2, None), (3, Some(64)), (2, Some(699))] {
                assert_eq!(read(threads, most, true), crate_readers, "{columns}: {threads} threads, {most:?}");
            }
        }
    }

    /// Damaged pages are errors, never panics: bytes of an uncompressed
    /// file (so the damage reaches nnc's own decoder rather than a
    /// decompressor) overwritten at random places between the magic and
    /// the footer, read on one and several threads.
    #[test]
    fn damaged_pages_are_errors_not_panics() {
        let model = "data { input x = columns(plain, dict, few, single, i32, i64, u32, u64, req)
                            target y = one_hot(label, 3) }
                     model { out = dense(x, 3, softmax) } loss cross_entropy(out, y)";
        let bindings = crate::pipeline::frontend(model).expect("checks").program.data;
        let whole = std::fs::read("tests/data/numbers-v1-none.parquet").expect("the test file");
        let footer = u32::from_le_bytes(whole[whole.len() - 8..whole.len() - 4].try_into().unwrap()) as usize;
        let body = 4..whole.len() - 8 - footer;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % n
        };
        let (mut failed, mut read) = (0, 0);
        for _ in 0..300 {
            let mut bytes = whole.clone();
            for _ in 0..1 + next(4) {
                let at = body.start + next(body.len());
                bytes[at] = next(256) as u8;
            }
            for (threads, most) in [(1, None), (3, Some(200))] {
                let options = ReadOptions { threads, ..ReadOptions::default() };
                match read_in_ranges(
                    "damaged.parquet",
                    bytes::Bytes::from(bytes.clone()),
                    &bindings,
                    options,
                    most,
                    true,
                ) {
                    Ok(table) => {
                        assert_eq!(table.rows, 1500);
                        read += 1;
                    }
                    Err(BindError::Data(e)) => {
                        assert!(e.message.contains("Parquet") || e.line.is_some(), "{e}");
                        // A damaged page names its column (a panic the
                        // crate raised cannot say which).
                        assert!(e.column.is_some() || e.message.contains("a damaged page"), "{e}");
                        failed += 1;
                    }
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        // Most damage lands in values (read as other numbers); some in
        // headers, levels or run lengths.
        assert!(failed > 0 && read > 0, "{failed} failed, {read} read");
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
