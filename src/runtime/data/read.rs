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

use super::decimal::{self, Scan};
use super::layout::{self, Header, Layout};
use super::table::{Cells, Chunk, Labels, Room, Rows, Slot, Table, is_missing};
use super::{BindError, DataError, shorten};
use crate::ir::program::Binding;
use std::io::Read;
use std::mem::MaybeUninit;

/// Delimiters tried, in order of preference.
pub const DELIMITERS: &[u8] = b",;\t|";

/// How to read a file.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOptions {
    /// The field delimiter; detected when `None`.
    pub delimiter: Option<u8>,
    /// Bind the inputs alone when the file lacks the targets (prediction).
    pub targets_optional: bool,
    /// Threads that parse a large CSV file; 0: every core.
    pub threads: usize,
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
}

/// The first cell of a column that is not a number, and how many there are.
#[derive(Clone)]
struct BadCells {
    line: usize,
    text: String,
    count: usize,
}

/// Chunks per thread in a block: threads that take the next chunk as
/// they finish one share the work evenly even when one is slowed.
const CHUNKS_PER_THREAD: usize = 4;

/// Chunks are at most about this long: the threads finish a block within
/// a chunk of each other (a block of 16 MB in 8 chunks left one thread
/// idle for up to 2 ms).
const CHUNK_BYTES: usize = 512 << 10;

/// Blocks smaller than this are parsed on one thread.
const PARALLEL_BYTES: usize = 1 << 20;

/// Bytes read from the source at a time, per thread: the file is never held
/// whole (unless it has quoted fields), only a block and the cells.
const BLOCK_BYTES: usize = 4 << 20;

/// Bytes parsed at a time, per thread, where they lie (in memory or
/// mapped): no buffer to fill, so fewer, larger blocks (each costs the
/// threads a start). 10⁶ rows on two cores, mapped: 146 ms against 162
/// with 4 MB, 115 MB peak against 111 (BENCHMARKS.md, session 11).
const LYING_BLOCK_BYTES: usize = 8 << 20;

/// The first block's bytes (the blocks after it double up to
/// [`BLOCK_BYTES`] per thread).
const FIRST_BYTES: usize = 256 << 10;

/// Parse CSV bytes (already in memory) into the cells `bindings` read,
/// where they lie.
pub fn read_csv(file: &str, bytes: &[u8], bindings: &[Binding], options: ReadOptions) -> Result<Table, BindError> {
    read_blocks(file, Bytes::Whole { bytes, map: None }, bindings, options, LYING_BLOCK_BYTES, true)
}

/// Parse a mapped CSV file into the cells `bindings` read, where its bytes
/// lie (no copy); the map's pages behind the blocks parsed are given back
/// as the reading goes on, so the process holds the blocks being parsed,
/// not the file.
pub fn read_csv_mapped(
    file: &str,
    map: &memmap2::Mmap,
    bindings: &[Binding],
    options: ReadOptions,
) -> Result<Table, BindError> {
    // Read ahead of the faults: the file is read once, in order.
    let _ = map.advise(memmap2::Advice::Sequential);
    read_blocks(file, Bytes::Whole { bytes: map, map: Some(map) }, bindings, options, LYING_BLOCK_BYTES, true)
}

/// Parse CSV from `input` (a file, a pipe, bytes) into the cells `bindings`
/// read. The input is read in blocks of whole lines; each block is split at
/// line ends into one chunk per thread, parsed at once and joined in file
/// order: the table, and every message, is the same on any number of
/// threads. From the first block with a quote (a quoted field may hold a
/// line break) or a line ended by a lone `\r`, the rest is read whole and
/// parsed by the `csv` crate's state machine on one thread.
pub fn read_csv_from(
    file: &str,
    input: &mut (dyn Read + Send),
    bindings: &[Binding],
    options: ReadOptions,
) -> Result<Table, BindError> {
    read_blocks(file, Bytes::Stream(input), bindings, options, BLOCK_BYTES, true)
}

/// Where a CSV's bytes come from.
enum Bytes<'a> {
    /// A stream, read a block at a time into buffers (the next block while
    /// this one is parsed).
    Stream(&'a mut (dyn Read + Send)),
    /// All of them in memory already, parsed where they lie: bytes read, or
    /// a mapped file (`map`), whose pages behind the blocks parsed are
    /// given back.
    Whole { bytes: &'a [u8], map: Option<&'a memmap2::Mmap> },
}

/// The input and its name.
struct Input<'a> {
    file: &'a str,
    input: &'a mut (dyn Read + Send),
}

impl Input<'_> {
    /// Read into `buffer` until it holds `want` bytes; whether the input
    /// ended first.
    fn read(&mut self, buffer: &mut Vec<u8>, want: usize) -> Result<bool, DataError> {
        if buffer.len() >= want {
            return Ok(false);
        }
        let more = want - buffer.len();
        buffer.reserve(more.min(64 << 10));
        let read = (&mut *self.input).take(more as u64).read_to_end(buffer).map_err(|e| DataError {
            file: self.file.to_string(),
            line: None,
            column: None,
            message: format!("cannot read the data file: {e}"),
            help: None,
        })?;
        Ok(read < more)
    }
}

/// The bytes read but not yet parsed.
struct Source<'a> {
    file: &'a str,
    bytes: Pending<'a>,
    eof: bool,
}

/// [`Source`]'s bytes.
enum Pending<'a> {
    /// Read from the stream into a buffer.
    Read { input: Input<'a>, pending: Vec<u8> },
    /// `bytes[start..end]` of bytes in memory; the map's pages before
    /// `released` are given back.
    Lying { bytes: &'a [u8], map: Option<&'a memmap2::Mmap>, start: usize, end: usize, released: usize },
}

impl<'a> Source<'a> {
    fn new(file: &'a str, bytes: Bytes<'a>) -> Source<'a> {
        let bytes = match bytes {
            Bytes::Stream(input) => Pending::Read { input: Input { file, input }, pending: Vec::new() },
            Bytes::Whole { bytes, map } => Pending::Lying { bytes, map, start: 0, end: 0, released: 0 },
        };
        Source { file, bytes, eof: false }
    }

    /// Read until `want` bytes are pending or the input ends.
    fn fill(&mut self, want: usize) -> Result<(), DataError> {
        if self.eof {
            return Ok(());
        }
        match &mut self.bytes {
            Pending::Read { input, pending } => self.eof = input.read(pending, want)?,
            Pending::Lying { bytes, start, end, .. } => {
                *end = (*end).max(start.saturating_add(want).min(bytes.len()));
                // Known as a stream knows it: when fewer bytes were left
                // than asked for (the same lines for the header's sniffing).
                self.eof = start.saturating_add(want) > bytes.len();
            }
        }
        Ok(())
    }

    /// The bytes read and not parsed.
    fn pending(&self) -> &[u8] {
        match &self.bytes {
            Pending::Read { pending, .. } => pending,
            Pending::Lying { bytes, start, end, .. } => &bytes[*start..*end],
        }
    }

    /// The pending bytes up to the last line end (all of them at the end
    /// of the input).
    fn lines(&self) -> &[u8] {
        let pending = self.pending();
        &pending[..ready(pending, self.eof)]
    }

    /// Drop the first `n` pending bytes (parsed).
    fn advance(&mut self, n: usize) {
        match &mut self.bytes {
            Pending::Read { pending, .. } => drop(pending.drain(..n.min(pending.len()))),
            Pending::Lying { start, end, .. } => *start = (*start + n).min(*end),
        }
    }

    /// Run `parse` on the first `ready` pending bytes while the bytes
    /// after them, up to `want`, are read (or, in memory, only found) and
    /// planned on one more thread; then drop the parsed bytes. What `parse`
    /// gave, and the plan of the bytes pending then (`None` at the end of
    /// the input).
    fn parse_while_reading<T>(
        &mut self,
        ready: usize,
        want: usize,
        threads: usize,
        spare: &mut Vec<u8>,
        parse: impl FnOnce(&[u8]) -> T,
    ) -> (T, Result<Option<Plan>, DataError>) {
        let file = self.file;
        let failed = || thread_failed(file, "the reading thread");
        let eof = self.eof;
        let (parsed, read) = match &mut self.bytes {
            Pending::Read { input, pending } => {
                let mut next = std::mem::take(spare);
                next.clear();
                next.extend_from_slice(&pending[ready..]);
                let data = &pending[..ready];
                let (parsed, read) = std::thread::scope(|scope| {
                    let reader = (!eof).then(|| {
                        scope.spawn(|| {
                            let eof = input.read(&mut next, want)?;
                            let plan = Plan::new(&next, eof, threads);
                            Ok::<_, DataError>((eof, plan))
                        })
                    });
                    let parsed = parse(data);
                    (parsed, reader.map(|reader| reader.join().unwrap_or_else(|_| Err(failed()))))
                });
                *spare = std::mem::replace(pending, next);
                (parsed, read)
            }
            Pending::Lying { bytes, map, start, end, released } => {
                let bytes: &[u8] = bytes;
                let data = &bytes[*start..*start + ready];
                let next = *start + ready..(*end).max(*start + ready + want).min(bytes.len());
                let next_eof = (*start + ready).saturating_add(want) > bytes.len();
                let map = *map;
                // The blocks before this one are parsed: their pages go back.
                let page = page_size();
                let parsed_before = (*released, *start / page * page);
                *released = parsed_before.1.max(*released);
                let (parsed, read) = std::thread::scope(|scope| {
                    let planner = (!eof).then(|| {
                        scope.spawn(|| {
                            if let Some(map) = map {
                                // Off the parsing threads' path: each call
                                // interrupts the other cores to flush their
                                // TLBs, and took 1–2 ms per 16 MB.
                                let (from, to) = parsed_before;
                                if to > from {
                                    // SAFETY: a read-only file map: dropped
                                    // pages are read again from the file if
                                    // touched again (the same bytes, unless
                                    // another program rewrites the file:
                                    // `bus_error`). Only advice: an error
                                    // leaves them mapped.
                                    let _ = unsafe {
                                        map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, to - from)
                                    };
                                }
                                // The next block's pages mapped in one call,
                                // not a fault per 64 KB (only advice: where
                                // the kernel cannot, the faults do it).
                                #[cfg(target_os = "linux")]
                                let _ = map.advise_range(
                                    memmap2::Advice::PopulateRead,
                                    next.start / page * page,
                                    next.end - next.start / page * page,
                                );
                            }
                            (next_eof, Plan::new(&bytes[next.clone()], next_eof, threads))
                        })
                    });
                    let parsed = parse(data);
                    (parsed, planner.map(|planner| planner.join().map_err(|_| failed())))
                });
                *end = next.end;
                (parsed, read)
            }
        };
        if let Pending::Lying { .. } = self.bytes {
            // (A stream's parsed bytes went with their buffer.)
            self.advance(ready);
        }
        let plan = match read {
            Some(Ok((eof, plan))) => {
                self.eof = eof;
                Ok(Some(plan))
            }
            Some(Err(e)) => Err(e),
            None => Ok(None),
        };
        (parsed, plan)
    }
}

/// The size of the kernel's memory pages (4096 where it cannot be known).
fn page_size() -> usize {
    // SAFETY: `sysconf` only reads a setting.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).ok().filter(|&s| s.is_power_of_two()).unwrap_or(4096)
}

/// How many of `pending`'s bytes are whole lines (all of them at the end
/// of the input).
fn ready(pending: &[u8], eof: bool) -> usize {
    if eof { pending.len() } else { memchr::memrchr(b'\n', pending).map_or(0, |i| i + 1) }
}

/// A block of whole lines, split for the threads that parse it.
struct Plan {
    /// The bytes of whole lines at the start of the pending bytes.
    ready: usize,
    /// No quotes and no lone `\r`: the lines can be split anywhere.
    splittable: bool,
    /// Each chunk's bytes, its first line (counted from the block's) and
    /// its lines (room for as many rows).
    chunks: Vec<(std::ops::Range<usize>, usize, usize)>,
    /// The line ends in the block.
    line_ends: usize,
}

impl Plan {
    fn new(pending: &[u8], eof: bool, threads: usize) -> Plan {
        let ready = ready(pending, eof);
        let data = &pending[..ready];
        let splittable = splittable(data);
        let parts = if threads > 1 && data.len() >= PARALLEL_BYTES {
            (threads * CHUNKS_PER_THREAD).max(data.len().div_ceil(CHUNK_BYTES))
        } else {
            1
        };
        let mut chunks = Vec::with_capacity(parts);
        let mut line_ends = 0;
        if splittable {
            for range in split(data, parts) {
                let ends = memchr::memchr_iter(b'\n', &data[range.clone()]).count();
                let lines = ends + usize::from(data[range.clone()].last() != Some(&b'\n'));
                chunks.push((range, line_ends, lines));
                line_ends += ends;
            }
        }
        Plan { ready, splittable, chunks, line_ends }
    }
}

/// [`read_csv_from`], reading `block` bytes per thread at a time, with
/// the SIMD scan of plain decimals when `simd` and the CPU has it (the
/// tests compare it with the scalar scan).
fn read_blocks<'a>(
    file: &'a str,
    input: Bytes<'a>,
    bindings: &[Binding],
    options: ReadOptions,
    block: usize,
    simd: bool,
) -> Result<Table, BindError> {
    let error = |line: Option<usize>, column: Option<usize>, message: String, help: Option<String>| DataError {
        file: file.to_string(),
        line,
        column,
        message,
        help,
    };
    let threads = if options.threads == 0 { crate::threads::available() } else { options.threads };
    let mut source = Source::new(file, input);
    // The first lines: at least two that are not blank, all of the input
    // when it has quotes there.
    source.fill(block.min(FIRST_BYTES))?;
    if source.pending().starts_with(b"\xEF\xBB\xBF") {
        source.advance(3);
    }
    while !source.eof {
        let head = source.lines();
        if !splittable(head) {
            source.fill(usize::MAX)?;
        } else if head.split(|&b| b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)).nth(1).is_some() {
            break;
        } else {
            source.fill(2 * source.pending().len())?;
        }
    }
    let head = source.lines();
    let delimiter = options.delimiter.unwrap_or_else(|| sniff_delimiter(head));
    // The first two records decide the header.
    let mut reader = reader(head, delimiter);
    let mut lines = Lines { bytes: head, offset: 0, line: 1 };
    let mut first = csv::ByteRecord::new();
    let mut second = csv::ByteRecord::new();
    let Some((first_line, first_offset)) = next_record(&mut reader, &mut first, &mut lines, &error)? else {
        return Err(BindError::Data(error(
            None,
            None,
            "the data file is empty".into(),
            Some("expected a header line and rows of numbers".into()),
        )));
    };
    let second_found = next_record(&mut reader, &mut second, &mut lines, &error)?;
    let has_header = is_header(&first, second_found.map(|_| &second));
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
    // Every cell goes through `store` or is a plain decimal: the chunks
    // count the missing ones, and binding need not look for them.
    table.missing = Some(vec![false; bindings.len()]);
    // Where the data rows start, and on which line.
    let (mut line, data_offset) = match (has_header, second_found) {
        (false, _) => (first_line, first_offset),
        (true, Some(found)) => found,
        (true, None) => {
            return Err(BindError::Data(error(None, None, "the data file has a header but no rows".into(), None)));
        }
    };
    source.advance(data_offset);
    let template = table.cells.clone();
    let header = table.header.clone();
    let context = Context {
        file,
        delimiter,
        width,
        has_header,
        dests: destinations(bindings, &layout, width),
        template: &template,
        header: &header,
        simd,
    };
    let mut bad: Vec<Option<BadCells>> = vec![None; width];
    let merge = |bad: &mut Vec<Option<BadCells>>, found: Vec<Option<BadCells>>| {
        for (c, found) in found.into_iter().enumerate() {
            if let Some(found) = found {
                match &mut bad[c] {
                    Some(first) => first.count += found.count,
                    slot => *slot = Some(found),
                }
            }
        }
    };
    // The blocks grow from `FIRST_BYTES` to `block` per thread, so that
    // parsing starts early and each block is read while the one before is
    // parsed.
    let most = block * threads;
    let mut want = most.min(FIRST_BYTES);
    // The plan of the pending bytes, when the reader thread made it.
    let mut planned: Option<Plan> = None;
    // The buffer the next block is read into, while this one is parsed.
    let mut spare: Vec<u8> = Vec::new();
    loop {
        let plan = match planned.take() {
            Some(plan) => plan,
            None => {
                source.fill(want)?;
                Plan::new(source.pending(), source.eof, threads)
            }
        };
        if plan.ready == 0 && !source.eof {
            // A line longer than the block.
            source.fill(2 * source.pending().len())?;
            continue;
        }
        if !plan.splittable {
            // The rest, whole, through the `csv` crate.
            source.fill(usize::MAX)?;
            let data = source.pending();
            let rooms = table.rooms(&[count_records(data, delimiter)]);
            let room = rooms.into_iter().next().expect("one room");
            let part = parse_rows(&context, data, line, room)?;
            merge(&mut bad, part.bad);
            table.commit(vec![part.chunk]);
            break;
        }
        // Parse this block's chunks on the threads while the next block
        // is read (and planned) on one more.
        let rooms: Vec<usize> = plan.chunks.iter().map(|&(_, _, lines)| lines).collect();
        let rooms = table.rooms(&rooms);
        want = (2 * want).min(most);
        let (parts, next) = source.parse_while_reading(plan.ready, want, threads, &mut spare, |data| {
            parse_chunks(&context, data, &plan, rooms, line, threads)
        });
        // The first error in file order wins, as on one thread.
        let parts = parts.into_iter().collect::<Result<Vec<Part>, DataError>>()?;
        line += plan.line_ends;
        let mut chunks = Vec::with_capacity(parts.len());
        for part in parts {
            merge(&mut bad, part.bad);
            chunks.push(part.chunk);
        }
        table.commit(chunks);
        planned = next?;
        if source.eof && source.pending().is_empty() {
            break;
        }
    }
    if table.rows == 0 {
        return Err(BindError::Data(error(None, None, "the data file has a header but no rows".into(), None)));
    }
    if let Some((c, b)) = bad.into_iter().enumerate().find_map(|(c, b)| Some((c, b?))) {
        let more = match b.count - 1 {
            0 => String::new(),
            1 => " (and 1 more cell in this column)".to_string(),
            n => format!(" (and {n} more cells in this column)"),
        };
        return Err(BindError::Data(error(
            Some(b.line),
            Some(c + 1),
            format!("`{}` in {} is not a number{more}", shorten(&b.text), table.header.column_name(c)),
            Some(
                "a numeric binding reads numbers; for a column of categories use `one_hot(column)`, \
                 and write missing values as an empty cell or `NA`"
                    .into(),
            ),
        )));
    }
    Ok(table)
}

/// Parse the chunks of a block of whole lines without quotes (see
/// [`Plan`]), each into its room, on `threads` threads ([`super::share`]).
fn parse_chunks(
    context: &Context,
    data: &[u8],
    plan: &Plan,
    rooms: Vec<Room>,
    first_line: usize,
    threads: usize,
) -> Vec<Result<Part, DataError>> {
    let work =
        plan.chunks.iter().zip(rooms).map(|((range, line, _), room)| (&data[range.clone()], first_line + line, room));
    super::share(threads, work.collect(), |_, (chunk, line, room)| parse_plain(context, chunk, line, room))
        .into_iter()
        .map(|part| part.unwrap_or_else(|| Err(context.failed("a reader thread"))))
        .collect()
}

/// The records the `csv` crate reads in `data` (blank ones too), up to the
/// first it cannot read.
fn count_records(data: &[u8], delimiter: u8) -> usize {
    let mut reader = reader(data, delimiter);
    let mut record = csv::ByteRecord::new();
    let mut count = 0;
    while let Ok(true) = reader.read_byte_record(&mut record) {
        count += 1;
    }
    count
}

fn reader(bytes: &[u8], delimiter: u8) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(bytes)
}

/// The next record that is not a blank line: its line and byte offset.
fn next_record(
    reader: &mut csv::Reader<&[u8]>,
    record: &mut csv::ByteRecord,
    lines: &mut Lines,
    error: &dyn Fn(Option<usize>, Option<usize>, String, Option<String>) -> DataError,
) -> Result<Option<(usize, usize)>, DataError> {
    loop {
        let more = reader.read_byte_record(record).map_err(|e| {
            let line = e.position().map_or(lines.line, |p| lines.at(p.byte() as usize));
            error(Some(line), None, format!("unreadable CSV: {e}"), None)
        })?;
        if !more {
            return Ok(None);
        }
        let mut offset = record.position().map_or(0, |p| p.byte() as usize);
        let line = lines.at(offset);
        // The offset may point at the line break before the record.
        while offset < lines.bytes.len() && matches!(lines.bytes[offset], b'\r' | b'\n') {
            offset += 1;
        }
        // A line of only spaces is not a row.
        if record.len() == 1 && record[0].iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        return Ok(Some((line, offset)));
    }
}

/// Whether the rows can be split at any line end: no quotes (a quoted
/// field may hold a line break) and no line ended by a lone `\r`.
fn splittable(data: &[u8]) -> bool {
    // One pass over a block with neither (the common case).
    memchr::memchr2(b'"', b'\r', data).is_none()
        || (memchr::memchr(b'"', data).is_none()
            && memchr::memchr_iter(b'\r', data).all(|i| data.get(i + 1) == Some(&b'\n')))
}

/// `parts` ranges of about the same size, each ending after a `\n`.
fn split(data: &[u8], parts: usize) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::with_capacity(parts);
    let mut start = 0;
    for k in 1..parts {
        let target = (data.len() * k / parts).max(start);
        let end = match memchr::memchr(b'\n', &data[target..]) {
            Some(i) => target + i + 1,
            None => data.len(),
        };
        if end > start {
            ranges.push(start..end);
            start = end;
        }
    }
    if start < data.len() {
        ranges.push(start..data.len());
    }
    ranges
}

/// What every chunk's parser shares.
struct Context<'a> {
    file: &'a str,
    delimiter: u8,
    width: usize,
    has_header: bool,
    dests: Vec<Option<Dest>>,
    /// Empty cells of the right kinds, to clone.
    template: &'a [Cells],
    header: &'a Header,
    /// Plain decimals by [`decimal::Simd`] where the CPU has it.
    simd: bool,
}

impl Context<'_> {
    /// An error at the cell in column `c` (from 0) of file line `line`.
    fn cell_error(&self, line: usize, c: usize, message: String, help: Option<String>) -> DataError {
        DataError { file: self.file.to_string(), line: Some(line), column: Some(c + 1), message, help }
    }

    /// The error when a thread of the reader panicked (it does not).
    fn failed(&self, what: &str) -> DataError {
        thread_failed(self.file, what)
    }
}

/// The error when a thread reading `file` panicked (it does not).
fn thread_failed(file: &str, what: &str) -> DataError {
    DataError { file: file.to_string(), line: None, column: None, message: format!("{what} failed"), help: None }
}

/// The rows of one chunk, and its cells that are not numbers.
struct Part {
    chunk: Chunk,
    bad: Vec<Option<BadCells>>,
}

/// Parse the rows of `data`, whose first byte is on line `first_line`.
fn parse_rows(context: &Context, data: &[u8], first_line: usize, room: Room) -> Result<Part, DataError> {
    let error = |line: usize, column: usize, message: String, help: Option<String>| DataError {
        file: context.file.to_string(),
        line: Some(line),
        column: Some(column),
        message,
        help,
    };
    let width = context.width;
    let mut cells = room.clear();
    let mut part_lines = Vec::new();
    let mut bad: Vec<Option<BadCells>> = vec![None; width];
    let mut reader = reader(data, context.delimiter);
    let mut lines = Lines { bytes: data, offset: 0, line: first_line };
    let mut record = csv::ByteRecord::new();
    let mut rows = 0usize;
    loop {
        let more = reader.read_byte_record(&mut record).map_err(|e| {
            let line = e.position().map_or(lines.line, |p| lines.at(p.byte() as usize));
            DataError {
                file: context.file.to_string(),
                line: Some(line),
                column: None,
                message: format!("unreadable CSV: {e}"),
                help: None,
            }
        })?;
        if !more {
            break;
        }
        let line = record.position().map_or(lines.line, |p| lines.at(p.byte() as usize));
        if record.len() == 1 && record[0].iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if record.len() != width {
            let first = if context.has_header { "the header has" } else { "the first row has" };
            let fields = |n: usize| if n == 1 { "1 field".to_string() } else { format!("{n} fields") };
            // Point at the first missing field, or the first extra one.
            let column = record.len().min(width) + 1;
            let mut help = None;
            if record.iter().any(|field| field.contains(&b'\n')) {
                help = Some("a field here spans several lines: is a `\"` never closed?".to_string());
            } else if record.len() == 1 && width > 1 {
                help = Some(format!(
                    "the fields are separated by {}; give `--delimiter` if this file uses another",
                    delimiter_name(context.delimiter)
                ));
            }
            return Err(error(
                line,
                column,
                format!("this row has {} but {first} {width}", fields(record.len())),
                help,
            ));
        }
        part_lines.push(line as u32);
        for (c, dest) in context.dests.iter().enumerate() {
            let Some(dest) = dest else { continue };
            store(context, &mut cells, &mut bad, *dest, c, trim(&record[c]), line, rows)?;
        }
        rows += 1;
    }
    Ok(Part { chunk: cells.finish(part_lines), bad })
}

/// Put one cell into its binding's cells (row `row` of the part, on `line`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn store(
    context: &Context,
    cells: &mut Rows,
    bad: &mut [Option<BadCells>],
    dest: Dest,
    c: usize,
    field: &[u8],
    line: usize,
    row: usize,
) -> Result<(), DataError> {
    let error = |message: String, help: Option<String>| context.cell_error(line, c, message, help);
    match &mut cells.slots[dest.binding] {
        Slot::Labels(labels) => {
            // A label seen before is valid UTF-8 and not missing.
            if !labels.push_known(field) {
                let text = std::str::from_utf8(field)
                    .map_err(|_| error(format!("field {} is not valid UTF-8 text", c + 1), None))?;
                labels.push(text, row as u32);
                cells.missing[dest.binding] |= labels.codes.last() == Some(&Labels::MISSING);
            }
        }
        Slot::Numbers(values, width) => {
            let value = number(context, bad, c, field, line)?;
            cells.missing[dest.binding] |= value.is_nan();
            values[row * *width + dest.position] = MaybeUninit::new(value);
        }
        Slot::Floats(values, width) => {
            let value = number(context, bad, c, field, line)?;
            cells.missing[dest.binding] |= value.is_nan();
            // Rounded once, from the f64 a reader of the file would see.
            let rounded = value as f32;
            if rounded.is_infinite() {
                return Err(error(
                    format!(
                        "`{}` in {} is beyond ±3.4e38, the range of 32-bit floats",
                        shorten(&String::from_utf8_lossy(field)),
                        context.header.column_name(c)
                    ),
                    Some("nnc trains in 32-bit floats: scale the column down, e.g. `/ 1e6`".into()),
                ));
            }
            values[row * *width + dest.position] = MaybeUninit::new(rounded);
        }
        Slot::Absent => {}
    }
    Ok(())
}

/// A numeric cell's value: NaN when missing or not a number (the first
/// such cell of each column and their count are kept in `bad`).
#[inline]
fn number(
    context: &Context,
    bad: &mut [Option<BadCells>],
    c: usize,
    field: &[u8],
    line: usize,
) -> Result<f64, DataError> {
    if let Some(value) = decimal::plain(field) {
        return Ok(value);
    }
    match fast_float2::parse::<f64, _>(field) {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) if v.is_nan() => Ok(f64::NAN),
        parsed => {
            let error = |message: String, help: Option<String>| context.cell_error(line, c, message, help);
            let text = std::str::from_utf8(field)
                .map_err(|_| error(format!("field {} is not valid UTF-8 text", c + 1), None))?;
            if is_missing(text) {
                Ok(f64::NAN)
            } else if parsed.is_ok() {
                Err(error(
                    format!("`{}` in {} is not a finite number", shorten(text), context.header.column_name(c)),
                    Some("write missing values as an empty cell or `NA`".into()),
                ))
            } else {
                let entry = bad[c].get_or_insert_with(|| BadCells { line, text: text.to_string(), count: 0 });
                entry.count += 1;
                Ok(f64::NAN)
            }
        }
    }
}

/// Where a file column's cells go, for the row parser.
#[derive(Clone, Copy)]
enum Sink {
    /// Not bound: skipped.
    Skip,
    /// A numeric binding's column: plain decimals are stored at once.
    Number(Dest),
    /// A label column: stored once the row is whole.
    Other(Dest),
}

/// [`parse_rows`] for rows without quotes or lone `\r`s: each row is read
/// in one pass over its bytes, plain decimals parsed as they are met and
/// stored straight into the cells; a row the pass cannot read whole (blank,
/// ragged, spaces around a cell) goes to [`parse_line`], which says what is
/// wrong with it or reads it as the `csv` crate would.
fn parse_plain(context: &Context, data: &[u8], first_line: usize, room: Room) -> Result<Part, DataError> {
    decimal::run(Plain { context, data, first_line, room }, context.simd)
}

/// [`parse_plain`]'s arguments, for [`decimal::run`] to compile it with
/// the best scan the CPU has.
struct Plain<'a, 'b> {
    context: &'a Context<'a>,
    data: &'a [u8],
    first_line: usize,
    room: Room<'b>,
}

impl decimal::Job for Plain<'_, '_> {
    type Output = Result<Part, DataError>;

    #[inline(always)]
    fn run<S: Scan>(self, scan: S) -> Self::Output {
        let Plain { context, data, first_line, room } = self;
        parse_plain_with(scan, context, data, first_line, room)
    }
}

/// [`parse_plain`] with `scan`.
#[inline(always)]
fn parse_plain_with<S: Scan>(
    scan: S,
    context: &Context,
    data: &[u8],
    first_line: usize,
    room: Room,
) -> Result<Part, DataError> {
    let width = context.width;
    let most = room.rows();
    let mut cells = room.clear();
    let sinks: Vec<Sink> = context
        .dests
        .iter()
        .map(|dest| match dest {
            None => Sink::Skip,
            Some(dest) if matches!(context.template[dest.binding], Cells::Numbers { .. } | Cells::Floats { .. }) => {
                Sink::Number(*dest)
            }
            Some(dest) => Sink::Other(*dest),
        })
        .collect();
    // Each numeric binding's file columns, in its order.
    let mut gathers: Vec<(usize, Vec<usize>)> = Vec::new();
    for (c, sink) in sinks.iter().enumerate() {
        if let Sink::Number(dest) = sink {
            match gathers.iter_mut().find(|(b, _)| *b == dest.binding) {
                Some((_, columns)) => columns.push(c),
                None => gathers.push((dest.binding, vec![c])),
            }
        }
    }
    for (b, columns) in &mut gathers {
        columns.sort_by_key(|&c| context.dests[c].map_or(0, |d| d.position));
        debug_assert!(
            columns
                .iter()
                .enumerate()
                .all(|(k, &c)| context.dests[c].is_some_and(|d| d.binding == *b && d.position == k))
        );
    }
    // And, when they are side by side in the file, their range.
    let gathers: Vec<(usize, Vec<usize>, Option<std::ops::Range<usize>>)> = gathers
        .into_iter()
        .map(|(b, columns)| {
            let side_by_side = columns.windows(2).all(|w| w[1] == w[0] + 1);
            let run = side_by_side.then(|| columns[0]..columns[0] + columns.len());
            (b, columns, run)
        })
        .collect();
    let mut row_values = vec![0.0f64; width];
    let mut part_lines = Vec::with_capacity(most);
    let mut bad: Vec<Option<BadCells>> = vec![None; width];
    let mut deferred: Vec<(usize, usize, usize)> = Vec::with_capacity(width);
    let mut bounds: Vec<(usize, usize)> = Vec::with_capacity(width + 1);
    let mut rows = 0usize;
    let mut line = first_line;
    let mut pos = 0;
    let mut ends = Ends::new(scan, data, context.delimiter);
    {
        while pos < data.len() {
            let this_line = line;
            line += 1;
            match fast_row(scan, context, &sinks, &mut row_values, data, &mut ends, pos, &mut deferred) {
                Some(end) => {
                    for (b, columns, run) in &gathers {
                        match &mut cells.slots[*b] {
                            Slot::Floats(values, width) => {
                                let cells = &mut values[rows * *width..][..*width];
                                match run {
                                    // The binding's columns side by side
                                    // in the file: converted as a slice.
                                    Some(run) => {
                                        for (cell, &value) in cells.iter_mut().zip(&row_values[run.clone()]) {
                                            *cell = MaybeUninit::new(value as f32);
                                        }
                                    }
                                    None => {
                                        for (cell, &c) in cells.iter_mut().zip(columns) {
                                            *cell = MaybeUninit::new(row_values[c] as f32);
                                        }
                                    }
                                }
                            }
                            Slot::Numbers(values, width) => {
                                let cells = &mut values[rows * *width..][..*width];
                                for (cell, &c) in cells.iter_mut().zip(columns) {
                                    *cell = MaybeUninit::new(row_values[c]);
                                }
                            }
                            _ => {}
                        }
                    }
                    for &(c, a, b) in &deferred {
                        let (Sink::Number(dest) | Sink::Other(dest)) = sinks[c] else { continue };
                        store(context, &mut cells, &mut bad, dest, c, trim(&data[a..b]), this_line, rows)?;
                    }
                    pos = end;
                }
                None => {
                    let end = memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i);
                    let read =
                        parse_line(context, &mut cells, &mut bad, &mut bounds, &data[pos..end], this_line, rows)?;
                    pos = end + 1;
                    if !read {
                        continue;
                    }
                }
            }
            part_lines.push(this_line as u32);
            rows += 1;
        }
    }
    Ok(Part { chunk: cells.finish(part_lines), bad })
}

/// Where the fields of a chunk end: the delimiters and line ends of 64
/// bytes at a time as a bit mask, so that finding where a field ends does
/// not wait for the field before it to be parsed.
struct Ends<'a> {
    data: &'a [u8],
    delimiter: u8,
    /// The mask covers `data[base..base + 64]`.
    base: usize,
    bits: u64,
}

impl<'a> Ends<'a> {
    fn new<S: Scan>(scan: S, data: &'a [u8], delimiter: u8) -> Ends<'a> {
        Ends { data, delimiter, base: 0, bits: scan.ends(data, 0, delimiter) }
    }

    /// The first delimiter or `\n` at `at` or after it (`data.len()`
    /// when there is none).
    #[inline(always)]
    fn next<S: Scan>(&mut self, scan: S, mut at: usize) -> usize {
        loop {
            let offset = at.wrapping_sub(self.base);
            if offset < 64 {
                let bits = self.bits >> offset;
                if bits != 0 {
                    return at + bits.trailing_zeros() as usize;
                }
                at = self.base + 64;
            }
            if at >= self.data.len() {
                return self.data.len();
            }
            self.base = at;
            self.bits = scan.ends(self.data, at, self.delimiter);
        }
    }
}

/// Read the row that starts at `data[start]` in one pass: the plain
/// decimals of numeric columns go to `values` (by file column) as they are
/// met, the other bound cells are listed in `deferred` (column, start, end)
/// for [`store`] once the row is known to be whole. The index after the row's
/// line end, or `None` when the row must be read by [`parse_line`]: it
/// starts with a space or a line end (blank, or a cell to trim), or has
/// more or fewer fields than the header.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn fast_row<S: Scan>(
    scan: S,
    context: &Context,
    sinks: &[Sink],
    values: &mut [f64],
    data: &[u8],
    ends: &mut Ends,
    start: usize,
    deferred: &mut Vec<(usize, usize, usize)>,
) -> Option<usize> {
    deferred.clear();
    if data[start].is_ascii_whitespace() {
        return None;
    }
    let delimiter = context.delimiter;
    let last = sinks.len() - 1;
    let mut p = start;
    // Every field but the last ends at a delimiter.
    for (c, (sink, value)) in sinks[..last].iter().zip(values.iter_mut()).enumerate() {
        let end = ends.next(scan, p);
        if data.get(end) != Some(&delimiter) {
            return None;
        }
        field(scan, *sink, value, data, c, p, end, deferred);
        p = end + 1;
    }
    // The last at a line end, or the end of the data.
    let end = ends.next(scan, p);
    if end < data.len() && data[end] != b'\n' {
        return None;
    }
    let field_end = if end > p && data[end - 1] == b'\r' { end - 1 } else { end };
    field(scan, sinks[last], &mut values[last], data, last, p, field_end, deferred);
    Some((end + 1).min(data.len()))
}

/// Read the field `data[start..end]` of column `c`: a plain decimal into
/// `value`, anything else of a bound column into `deferred`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn field<S: Scan>(
    scan: S,
    sink: Sink,
    value: &mut f64,
    data: &[u8],
    c: usize,
    start: usize,
    end: usize,
    deferred: &mut Vec<(usize, usize, usize)>,
) {
    match sink {
        Sink::Number(_) => match scan.plain(data, start, end) {
            Some(plain) => *value = plain,
            None => deferred.push((c, start, end)),
        },
        Sink::Other(_) => deferred.push((c, start, end)),
        Sink::Skip => {}
    }
}

/// Read one line (without its `\n`) the general way: split at every
/// delimiter, each field trimmed. `false` for a blank line, which is not a
/// row; an error for a row with more or fewer fields than the header.
#[allow(clippy::too_many_arguments)]
fn parse_line(
    context: &Context,
    cells: &mut Rows,
    bad: &mut [Option<BadCells>],
    bounds: &mut Vec<(usize, usize)>,
    mut row: &[u8],
    line: usize,
    index: usize,
) -> Result<bool, DataError> {
    let width = context.width;
    if let [rest @ .., b'\r'] = row {
        row = rest;
    }
    // An empty line, or one of only spaces, is not a row.
    if row.iter().all(u8::is_ascii_whitespace) {
        return Ok(false);
    }
    bounds.clear();
    let mut start = 0;
    for i in memchr::memchr_iter(context.delimiter, row) {
        bounds.push((start, i));
        start = i + 1;
    }
    bounds.push((start, row.len()));
    if bounds.len() != width {
        let first = if context.has_header { "the header has" } else { "the first row has" };
        let fields = |n: usize| if n == 1 { "1 field".to_string() } else { format!("{n} fields") };
        let help = (bounds.len() == 1 && width > 1).then(|| {
            format!(
                "the fields are separated by {}; give `--delimiter` if this file uses another",
                delimiter_name(context.delimiter)
            )
        });
        return Err(DataError {
            file: context.file.to_string(),
            line: Some(line),
            column: Some(bounds.len().min(width) + 1),
            message: format!("this row has {} but {first} {width}", fields(bounds.len())),
            help,
        });
    }
    for (c, dest) in context.dests.iter().enumerate() {
        let Some(dest) = dest else { continue };
        let (a, b) = bounds[c];
        store(context, cells, bad, *dest, c, trim(&row[a..b]), line, index)?;
    }
    Ok(true)
}

/// A field without the ASCII spaces around it.
fn trim(field: &[u8]) -> &[u8] {
    let start = field.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(field.len());
    let end = field.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &field[start..end]
}

/// For each column of the file, where its cells go (`None`: not read).
fn destinations(bindings: &[Binding], layout: &Layout, width: usize) -> Vec<Option<Dest>> {
    let mut dests = vec![None; width];
    for (i, cols) in layout.columns.iter().enumerate().take(bindings.len()) {
        let Some(cols) = cols else { continue };
        for (position, &c) in cols.iter().enumerate() {
            dests[c] = Some(Dest { binding: i, position });
        }
    }
    dests
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::data::table::Labels;

    fn bindings() -> Vec<Binding> {
        let text = "data { input x = columns(a, b)  input c = one_hot(c, 3)  target y = column(y) }
                    model { out = dense(concat(x, c), 1) } loss mse(out, y)";
        crate::pipeline::frontend(text).expect("checks").program.data
    }

    /// A CSV of `rows` rows (CRLF and blank lines included) larger than
    /// [`PARALLEL_BYTES`], with words in column `b` at `bad_rows`.
    fn csv(rows: usize, bad_rows: &[usize]) -> Vec<u8> {
        let mut text = String::from("a,b,c,y\r\n");
        for r in 0..rows {
            let b = if bad_rows.contains(&r) { format!("w{r}") } else { format!("{}.25", r % 97) };
            text.push_str(&format!("{r},{b},{},{}\r\n", ["p", "q", "r"][r % 3], r % 5));
            if r % 1000 == 7 {
                text.push_str("\r\n");
            }
        }
        text.into_bytes()
    }

    fn read(bytes: &[u8], threads: usize) -> Result<Table, BindError> {
        read_csv("t.csv", bytes, &bindings(), ReadOptions { threads, ..ReadOptions::default() })
    }

    /// `read` in blocks of `block` bytes per thread, from a stream and
    /// from the bytes where they lie: the same table, or the same error.
    fn read_in_blocks(bytes: &[u8], threads: usize, block: usize) -> Result<Table, BindError> {
        let options = ReadOptions { threads, ..ReadOptions::default() };
        let streamed = read_blocks("t.csv", Bytes::Stream(&mut &bytes[..]), &bindings(), options, block, true);
        let lying = read_blocks("t.csv", Bytes::Whole { bytes, map: None }, &bindings(), options, block, true);
        match (&streamed, &lying) {
            (Ok(streamed), Ok(lying)) => assert_same(streamed, lying, &format!("in memory, blocks of {block}")),
            (Err(streamed), Err(lying)) => assert_eq!(streamed, lying, "in memory, blocks of {block}"),
            _ => panic!("blocks of {block}: one read and one failed"),
        }
        streamed
    }

    /// `read` on one thread with the scalar scan of plain decimals only.
    fn read_scalar(bytes: &[u8]) -> Result<Table, BindError> {
        let options = ReadOptions { threads: 1, ..ReadOptions::default() };
        read_blocks("t.csv", Bytes::Stream(&mut &bytes[..]), &bindings(), options, BLOCK_BYTES, false)
    }

    fn assert_same(one: &Table, many: &Table, what: &str) {
        assert_eq!(many.rows, one.rows, "{what}");
        assert_eq!(many.lines, one.lines, "{what}");
        for (a, b) in one.cells.iter().zip(&many.cells) {
            match (a, b) {
                (Cells::Floats { values: x, .. }, Cells::Floats { values: y, .. }) => {
                    assert_eq!(x.len(), y.len(), "{what}");
                    assert!(x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()), "{what}");
                }
                (Cells::Labels(x), Cells::Labels(y)) => {
                    assert_eq!((&x.codes, &x.names, &x.first_row), (&y.codes, &y.names, &y.first_row), "{what}");
                }
                _ => panic!("cells of another kind: {what}"),
            }
        }
    }

    #[test]
    fn chunks_on_any_number_of_threads_read_the_same_table() {
        let bytes = csv(120_000, &[]);
        assert!(bytes.len() > PARALLEL_BYTES);
        let one = read(&bytes, 1).expect("reads");
        for threads in [2, 3, 7] {
            assert_same(&one, &read(&bytes, threads).expect("reads"), &format!("{threads} threads"));
        }
        // Blocks smaller than a line, than the file, and the whole file.
        for (threads, block) in [(1, 7), (2, 1000), (3, PARALLEL_BYTES / 2), (2, bytes.len())] {
            let blocks = read_in_blocks(&bytes, threads, block).expect("reads");
            assert_same(&one, &blocks, &format!("{threads} threads, blocks of {block}"));
        }
        // A file, mapped and given back as it is read (blocks of more than
        // `PARALLEL_BYTES`), and a pipe.
        let path = std::env::temp_dir().join(format!("nnc-read-{}.csv", std::process::id()));
        std::fs::write(&path, &bytes).expect("a temporary file");
        let options = ReadOptions { threads: 2, ..ReadOptions::default() };
        let file = std::fs::File::open(&path).expect("opens");
        let map = unsafe { memmap2::Mmap::map(&file) }.expect("maps");
        let mapped = read_csv_mapped("t.csv", &map, &bindings(), options);
        let from_disk = super::super::read_file(&path, &bindings(), options);
        std::fs::remove_file(&path).expect("removed");
        assert_same(&one, &mapped.expect("reads"), "mapped");
        assert_same(&one, &from_disk.expect("reads"), "from disk");
        let piped = read_csv_from("t.csv", &mut std::io::Cursor::new(&bytes), &bindings(), options).expect("reads");
        assert_same(&one, &piped, "piped");
        // 60 000 rows and a blank line after every thousandth: the last row's line.
        assert_eq!(*one.lines.last().unwrap() as usize, 1 + 120_000 + 120);
        // Each cell is the file's number rounded once to f32.
        let Cells::Floats { values, width: 2 } = &one.cells[0] else { panic!("x is kept in f32") };
        assert_eq!((values[2 * 7], values[2 * 7 + 1]), (7.0, 7.25));
    }

    /// Rows the one-pass reader reads whole and rows it hands to the
    /// general path (spaces, exponents, signs, missing cells, long digits,
    /// blank lines, CRLF, no final line end), against the `csv` crate's
    /// reading of the same rows (a quoted first row sends the whole file
    /// there).
    #[test]
    fn the_one_pass_reader_reads_what_the_csv_crate_reads() {
        let numbers = [
            "1.5",
            "-0",
            "5.",
            ".5",
            "  2.25 ",
            "1e3",
            "+2",
            "-1.5E-3",
            "NA",
            "",
            "nan",
            "123456789012345678",
            "0.1234567",
            "-987654321.012345",
            "12345678901234567890123",
            "00042",
            "1.",
            "-0.12345678901234",
            "0.12345678901234",
            "-1234567890.1234",
            "123456789012345",
            "-123456789012345",
            "1234567890123456",
            "0.0940123",
            "-2.32503",
            "1.2e-05",
            "7",
            "-.5",
        ];
        let classes = ["p", "q", " r", "NA", "q "];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut rows = String::new();
        for r in 0..5000 {
            let cell = |k: usize| numbers[k % numbers.len()];
            let (a, b, y) = (cell(next(40)), cell(next(40)), cell(next(40)));
            let (a, b, y) = (if next(3) == 0 { a } else { "0.75" }, b, if next(2) == 0 { y } else { "3" });
            rows.push_str(&format!("{a},{b},{},{y}", classes[next(classes.len())]));
            rows.push_str(["\n", "\r\n", "\n\n", "\n  \n", "\r\n\r\n"][next(5)]);
            if r == 4999 {
                rows.truncate(rows.trim_end().len());
            }
        }
        let plain = format!("a,b,c,y\n{rows}");
        let quoted = format!("a,b,c,y\n\"0\",0,p,0\n{rows}");
        let one = read(plain.as_bytes(), 1).expect("reads");
        assert_same(&read_scalar(plain.as_bytes()).expect("reads"), &one, "the SIMD scan against the scalar");
        let mut general = read(quoted.as_bytes(), 1).expect("reads");
        assert!(!splittable(quoted.as_bytes()));
        // Without the quoted row, and its line.
        general.rows -= 1;
        general.lines = general.lines[1..].iter().map(|l| l - 1).collect();
        for cells in &mut general.cells {
            match cells {
                Cells::Floats { values, width } => drop(values.drain(..*width)),
                Cells::Labels(labels) => {
                    let mut rest = Labels::default();
                    for (r, &code) in labels.codes.iter().enumerate().skip(1) {
                        let name = if code == Labels::MISSING { "NA" } else { labels.names[code as usize].as_str() };
                        rest.push(name, r as u32 - 1);
                    }
                    *labels = rest;
                }
                _ => {}
            }
        }
        assert_same(&general, &one, "one pass against the csv crate");
        assert_same(&one, &read(plain.as_bytes(), 2).expect("reads"), "two threads");
        // Words in a numeric column: the same message from both.
        let words = plain.replacen("0.75,", "w,", 3);
        let quoted = words.replacen("a,b,c,y\n", "a,b,c,y\n\"0\",0,p,0\n", 1);
        let (one, general) =
            (read(words.as_bytes(), 1).expect_err("words"), read(quoted.as_bytes(), 1).expect_err("words"));
        let (BindError::Data(one), BindError::Data(general)) = (one, general) else { panic!("data errors") };
        assert_eq!(
            (one.line, one.column, &one.message),
            (general.line.map(|l| l - 1), general.column, &general.message)
        );
    }

    /// A binding's columns side by side in the file (converted as a
    /// slice) or not, in file order or not: the same cells as the `csv`
    /// crate's path reads.
    #[test]
    fn columns_in_any_order_read_as_the_csv_crate_reads_them() {
        let rows: String = (0..3000).map(|r| format!("{r}.5,-{}.25,{}.75,{}\n", r % 7, r % 3, r % 11)).collect();
        let plain = format!("a,b,c,y\n{rows}");
        let quoted = format!("a,b,c,y\n\"0\",0,0,0\n{rows}");
        for x in ["columns(b, c)", "columns(y, a)", "columns(a, c)", "columns(c, b, a, y)"] {
            let text = format!("data {{ input x = {x} }} model {{ out = dense(x, 1) }} loss mean(out)");
            let bindings = crate::pipeline::frontend(&text).expect("checks").program.data;
            let read = |bytes: &str| {
                let options = ReadOptions { threads: 1, ..ReadOptions::default() };
                read_csv("t.csv", bytes.as_bytes(), &bindings, options).expect("reads")
            };
            let (one, general) = (read(&plain), read(&quoted));
            let (Cells::Floats { values: a, width }, Cells::Floats { values: b, .. }) =
                (&one.cells[0], &general.cells[0])
            else {
                panic!("x is kept in f32")
            };
            assert!(a.iter().zip(&b[*width..]).all(|(p, q)| p.to_bits() == q.to_bits()), "{x}");
            assert_eq!(a.len() + width, b.len(), "{x}");
        }
    }

    #[test]
    fn the_reader_counts_the_missing_cells_of_each_binding() {
        let whole = csv(120_000, &[]);
        for threads in [1, 2] {
            assert_eq!(read(&whole, threads).expect("reads").missing, Some(vec![false; 3]));
        }
        // A missing number for `x` and a missing label for `c`, late in
        // the file (a later chunk on two threads), read in one pass or,
        // after a quote, by the `csv` crate.
        let text = String::from_utf8(whole).expect("text");
        let holes = text.replacen("\r\n100000,90.25,q,0\r\n", "\r\n100000,NA,q,0\r\n", 1).replacen(
            "\r\n110000,2.25,r,0\r\n",
            "\r\n110000,2.25,,0\r\n",
            1,
        );
        assert_ne!(holes, text);
        let quoted = holes.replacen("a,b,c,y\r\n", "a,b,c,y\r\n\"0\",0,p,0\r\n", 1);
        for (bytes, threads) in [(&holes, 1), (&holes, 2), (&quoted, 1)] {
            let table = read(bytes.as_bytes(), threads).expect("reads");
            assert_eq!(table.missing, Some(vec![true, true, false]), "{threads} threads");
        }
    }

    #[test]
    fn a_quote_in_a_later_block_reads_the_rest_as_quoted_csv() {
        let mut bytes = csv(30_000, &[]);
        // A quoted field holding a line break, in the last rows.
        let at = bytes.len() - 100;
        let start = at + bytes[at..].iter().position(|&b| b == b'\n').unwrap() + 1;
        bytes.splice(start..start, b"1,\"w\r\nx\",q,3\r\n".iter().copied());
        let whole = read_in_blocks(&bytes, 1, bytes.len()).expect_err("a word in `b`");
        let line = 1 + bytes[..start].iter().filter(|&&b| b == b'\n').count();
        assert!(matches!(&whole, BindError::Data(e) if e.line == Some(line)), "{whole:?}");
        for (threads, block) in [(1, 4096), (2, 100_000)] {
            assert_eq!(read_in_blocks(&bytes, threads, block).expect_err("the same error"), whole);
        }
        let mut quoted = csv(30_000, &[]);
        let at = quoted.len() - 100;
        let start = at + quoted[at..].iter().position(|&b| b == b'\n').unwrap() + 1;
        quoted.splice(start..start, b"\"1\",2,\"q\",4\r\n".iter().copied());
        let whole = read_in_blocks(&quoted, 1, quoted.len()).expect("reads");
        assert_eq!(whole.rows, 30_001);
        for (threads, block) in [(1, 4096), (2, 100_000)] {
            assert_same(&whole, &read_in_blocks(&quoted, threads, block).expect("reads"), &format!("{block}"));
        }
    }

    /// A file mapped, the same bytes in memory and as a stream read the
    /// same table, or fail with the same error.
    fn same_from_every_source(bytes: &[u8], what: &str) {
        let path = std::env::temp_dir().join(format!("nnc-sources-{}-{what}.csv", std::process::id()));
        std::fs::write(&path, bytes).expect("a temporary file");
        let file = std::fs::File::open(&path).expect("opens");
        // SAFETY: the test's own file, not written while mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.expect("maps");
        for threads in [1, 2] {
            let options = ReadOptions { threads, ..ReadOptions::default() };
            let mapped = read_csv_mapped("t.csv", &map, &bindings(), options);
            let in_memory = read_csv("t.csv", bytes, &bindings(), options);
            let streamed = read_csv_from("t.csv", &mut std::io::Cursor::new(bytes), &bindings(), options);
            for (other, name) in [(in_memory, "in memory"), (streamed, "streamed")] {
                match (&mapped, &other) {
                    (Ok(a), Ok(b)) => assert_same(a, b, &format!("{what}: mapped and {name}, {threads} threads")),
                    (Err(a), Err(b)) => assert_eq!(a, b, "{what}: mapped and {name}, {threads} threads"),
                    _ => panic!("{what}: mapped and {name} differ, {threads} threads: {:?}", mapped.as_ref().err()),
                }
            }
        }
        std::fs::remove_file(&path).expect("removed");
    }

    #[test]
    fn a_mapped_file_reads_as_its_bytes_read() {
        let rows = csv(30_000, &[]);
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(&rows);
        same_from_every_source(&bom, "bom");
        let mut quoted = rows.clone();
        let at = quoted.len() - 100;
        let start = at + quoted[at..].iter().position(|&b| b == b'\n').unwrap() + 1;
        quoted.splice(start..start, b"\"1\",2,\"q\",4\r\n".iter().copied());
        same_from_every_source(&quoted, "quoted");
        same_from_every_source(&rows[..rows.len() - 2], "no final line end");
        // The first block's bytes exactly, ending inside a line.
        same_from_every_source(&rows[..FIRST_BYTES], "a first block's length");
        same_from_every_source(&rows[..FIRST_BYTES + 1], "one byte more");
        same_from_every_source(&csv(3, &[1])[..], "three rows, a word");
    }

    #[test]
    fn errors_are_the_same_on_any_number_of_threads() {
        let bytes = csv(120_000, &[5, 60_000, 119_000]);
        let one = read(&bytes, 1).expect_err("words");
        assert!(
            matches!(&one, BindError::Data(e) if e.message.contains("(and 2 more cells in this column)")),
            "{one:?}"
        );
        for threads in [2, 3] {
            assert_eq!(read(&bytes, threads).expect_err("words"), one);
        }
        // A ragged row in a later chunk, after a bad cell in the first.
        let mut ragged = csv(120_000, &[5]);
        let at = ragged.len() - 40;
        let end = at + ragged[at..].iter().position(|&b| b == b'\n').unwrap() + 1;
        ragged.splice(end..end, b"1,2\r\n".iter().copied());
        let one = read(&ragged, 1).expect_err("ragged");
        assert!(matches!(&one, BindError::Data(e) if e.message.contains("this row has 2 fields")), "{one:?}");
        assert_eq!(read(&ragged, 2).expect_err("ragged"), one);
    }
}
