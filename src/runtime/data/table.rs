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
use std::mem::MaybeUninit;

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
    /// Per binding, whether any of its cells is missing (NaN, or a
    /// missing label), when the reader kept count (CSV, through
    /// [`Rows::missing`]); `None` when it did not (look at the cells).
    pub missing: Option<Vec<bool>>,
    /// Ask for 2 MB pages for rooms of at least 2 MB ([`Table::rooms`]):
    /// for a reader that asks for all its rooms at once (Parquet). A
    /// table that grows block by block (CSV) is moved by `mremap` as it
    /// grows, and there huge pages meant more page faults, not fewer.
    pub huge_pages: bool,
    /// The rooms handed out by [`Table::rooms`] and not yet committed.
    given: Vec<usize>,
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

    /// Push `text` when it is one of the first few names (a column of a
    /// few classes), without checking it is text: whether it was.
    #[inline]
    pub fn push_known(&mut self, text: &[u8]) -> bool {
        if self.names.len() > 8 {
            return false;
        }
        // Short names: compared byte by byte rather than by `memcmp`.
        let same = |name: &String| name.len() == text.len() && name.bytes().zip(text).all(|(a, &b)| a == b);
        match self.names.iter().position(same) {
            Some(code) => {
                self.codes.push(code as u32);
                true
            }
            None => false,
        }
    }

    /// Add `other`'s cells after these; its rows are numbered from `offset`.
    /// Names keep the order of their first appearance.
    pub fn append(&mut self, mut other: Labels, offset: u32) {
        // The first chunk's labels are taken whole: a million codes
        // copied into fresh memory took a millisecond and more.
        if self.names.is_empty() && self.codes.is_empty() {
            other.first_row.iter_mut().for_each(|row| *row += offset);
            *self = other;
            return;
        }
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
        Table {
            header,
            layout: layout.clone(),
            rows: 0,
            lines: Vec::new(),
            cells,
            delimiter: b',',
            place: "line",
            missing: None,
            huge_pages: false,
            given: Vec::new(),
        }
    }

    /// Whether binding `i` may have missing cells (see [`Table::missing`]).
    pub fn may_miss(&self, i: usize) -> bool {
        self.missing.as_ref().is_none_or(|missing| missing[i])
    }

    /// Room after the rows here for chunks of rows read each on a thread
    /// of its own, straight into the table: `rooms[k]` rows for chunk `k`
    /// (at least the rows it will read). Each chunk's numeric cells are a
    /// slice of the spare capacity after the others; its labels are its
    /// own until [`Table::commit`].
    pub fn rooms(&mut self, rooms: &[usize]) -> Vec<Room<'_>> {
        self.given = rooms.to_vec();
        let mut slots: Vec<Vec<Slot>> = rooms.iter().map(|_| Vec::with_capacity(self.cells.len())).collect();
        for cells in &mut self.cells {
            match cells {
                Cells::Numbers { values, width } => {
                    for (k, part) in spare(values, *width, rooms, self.huge_pages).into_iter().enumerate() {
                        slots[k].push(Slot::Numbers(part, *width));
                    }
                }
                Cells::Floats { values, width } => {
                    for (k, part) in spare(values, *width, rooms, self.huge_pages).into_iter().enumerate() {
                        slots[k].push(Slot::Floats(part, *width));
                    }
                }
                Cells::Labels(_) => slots.iter_mut().for_each(|s| s.push(Slot::Labels(Labels::default()))),
                Cells::Absent => slots.iter_mut().for_each(|s| s.push(Slot::Absent)),
            }
        }
        slots.into_iter().zip(rooms).enumerate().map(|(index, (slots, &rows))| Room { index, rows, slots }).collect()
    }

    /// Keep the rows the chunks of the last [`Table::rooms`] read, in
    /// order, after the rows here.
    pub fn commit(&mut self, chunks: Vec<Chunk>) {
        let given = std::mem::take(&mut self.given);
        // Only cleared rooms are kept: that is what makes them initialised.
        assert!(
            chunks.len() == given.len() && chunks.iter().enumerate().all(|(k, c)| c.index == k && c.room == given[k]),
            "every room is committed, in order"
        );
        let read: Vec<(usize, usize)> = chunks.iter().map(|c| (c.room, c.lines.len())).collect();
        for cells in &mut self.cells {
            match cells {
                Cells::Numbers { values, width } => keep(values, *width, &read),
                Cells::Floats { values, width } => keep(values, *width, &read),
                Cells::Labels(_) | Cells::Absent => {}
            }
        }
        if self.lines.is_empty() {
            self.lines.reserve_exact(chunks.iter().map(|c| c.lines.len()).sum());
        }
        for chunk in chunks {
            if let Some(missing) = &mut self.missing {
                missing.iter_mut().zip(&chunk.missing).for_each(|(all, &this)| *all |= this);
            }
            let offset = self.rows as u32;
            for (mine, theirs) in self.cells.iter_mut().zip(chunk.labels) {
                if let (Cells::Labels(labels), Some(more)) = (mine, theirs) {
                    labels.append(more, offset);
                }
            }
            self.rows += chunk.lines.len();
            self.lines.extend_from_slice(&chunk.lines);
        }
    }

    /// The file column of binding `i`'s `k`-th column.
    pub fn column(&self, i: usize, k: usize) -> usize {
        self.layout.columns[i].as_ref().map_or(0, |cols| cols[k])
    }

    pub fn file(&self) -> &str {
        &self.header.file
    }
}

/// The spare capacity after `values`, `rooms[k]` rows of `width` cells
/// each, in order (on 2 MB pages, if `huge`).
fn spare<'a, T>(values: &'a mut Vec<T>, width: usize, rooms: &[usize], huge: bool) -> Vec<&'a mut [MaybeUninit<T>]> {
    let total: usize = rooms.iter().sum();
    values.reserve(total * width);
    let mut rest = &mut values.spare_capacity_mut()[..total * width];
    if huge {
        advise_huge_pages(rest);
    }
    let mut parts = Vec::with_capacity(rooms.len());
    for &rows in rooms {
        let (part, more) = std::mem::take(&mut rest).split_at_mut(rows * width);
        parts.push(part);
        rest = more;
    }
    parts
}

/// Ask the kernel for 2 MB pages over a large region about to be written
/// (`MADV_HUGEPAGE`, for kernels whose transparent huge pages are
/// `madvise`, the common default): one page fault per 2 MB instead of per
/// 4 KB. Faulting in a 10⁶ × 20 table's 4 KB pages took a fifth of a
/// Parquet read.
pub(crate) fn advise_huge_pages<T>(region: &mut [T]) {
    const HUGE: usize = 2 << 20;
    let start = region.as_mut_ptr() as usize;
    let end = start + std::mem::size_of_val(region);
    let (first, last) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
    if last > first {
        // SAFETY: advice over whole pages of memory this slice owns; it
        // changes no contents, and an error (no huge pages) is harmless.
        unsafe {
            libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_HUGEPAGE);
        }
    }
}

/// Keep the rows read into the spare capacity after `values`: `read[k]`
/// is (room, rows read) of chunk `k`, whose room follows the others'.
fn keep<T: Copy>(values: &mut Vec<T>, width: usize, read: &[(usize, usize)]) {
    let len = values.len();
    let spare = values.spare_capacity_mut();
    let (mut from, mut to) = (0, 0);
    for &(room, rows) in read {
        // A chunk with blank lines read fewer rows than it had room for.
        if from != to {
            spare.copy_within(from * width..(from + rows) * width, to * width);
        }
        from += room;
        to += rows;
    }
    // SAFETY: the rooms are consecutive from `len`, each was filled by
    // `Room::clear`, or by `Rows::clear_to` up to its end, before anything
    // else wrote to its rows (`commit` checks that every room was kept,
    // `Rows::finish` that it was cleared whole), and `to <= from`: the
    // first `to` rows are initialised.
    unsafe { values.set_len(len + to * width) };
}

/// One binding's cells in a chunk of rows: a numeric binding's room in the
/// table (every cell NaN, missing, until written), or the chunk's labels.
pub enum Slot<'a> {
    Numbers(&'a mut [MaybeUninit<f64>], usize),
    Floats(&'a mut [MaybeUninit<f32>], usize),
    Labels(Labels),
    Absent,
}

/// The room of one chunk of rows (see [`Table::rooms`]); [`Room::clear`]
/// makes it writable.
pub struct Room<'a> {
    index: usize,
    rows: usize,
    slots: Vec<Slot<'a>>,
}

impl<'a> Room<'a> {
    /// The room's cells, every numeric cell missing (NaN).
    pub fn clear(mut self) -> Rows<'a> {
        for slot in &mut self.slots {
            match slot {
                Slot::Numbers(values, _) => values.fill(MaybeUninit::new(f64::NAN)),
                Slot::Floats(values, _) => values.fill(MaybeUninit::new(f32::NAN)),
                Slot::Labels(labels) => labels.codes.reserve(self.rows),
                Slot::Absent => {}
            }
        }
        let missing = vec![false; self.slots.len()];
        Rows { index: self.index, room: self.rows, slots: self.slots, missing, cleared: self.rows }
    }

    /// The room's cells, to be cleared a block of rows at a time
    /// ([`Rows::clear_to`]) just before they are written: the block is then
    /// written while in cache, where clearing the whole room first would
    /// have it fetched from memory twice.
    pub fn clear_later(mut self) -> Rows<'a> {
        for slot in &mut self.slots {
            if let Slot::Labels(labels) = slot {
                labels.codes.reserve(self.rows);
            }
        }
        let missing = vec![false; self.slots.len()];
        Rows { index: self.index, room: self.rows, slots: self.slots, missing, cleared: 0 }
    }

    /// The rows it has room for.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// A chunk's cells while it is read: row `r` of the chunk is row `r` of
/// every slot.
pub struct Rows<'a> {
    index: usize,
    room: usize,
    pub slots: Vec<Slot<'a>>,
    /// Per slot, whether the reader wrote a missing cell into it (a
    /// reader that keeps [`Table::missing`] sets these).
    pub missing: Vec<bool>,
    /// Rows `0..cleared` have every numeric cell initialised.
    cleared: usize,
}

impl Rows<'_> {
    /// Clear rows up to `rows` (every numeric cell missing, NaN), from
    /// where the last call stopped ([`Room::clear_later`]).
    pub fn clear_to(&mut self, rows: usize) {
        let rows = rows.min(self.room);
        if rows <= self.cleared {
            return;
        }
        for slot in &mut self.slots {
            match slot {
                Slot::Numbers(values, width) => {
                    values[self.cleared * *width..rows * *width].fill(MaybeUninit::new(f64::NAN))
                }
                Slot::Floats(values, width) => {
                    values[self.cleared * *width..rows * *width].fill(MaybeUninit::new(f32::NAN))
                }
                Slot::Labels(_) | Slot::Absent => {}
            }
        }
        self.cleared = rows;
    }

    /// The rows read, on `lines` (one per row, at most the room).
    pub fn finish(self, lines: Vec<u32>) -> Chunk {
        assert!(lines.len() <= self.room, "a chunk reads at most the rows it has room for");
        // What makes the room's cells initialised (`keep`).
        assert_eq!(self.cleared, self.room, "a chunk's room is cleared whole before it is kept");
        let labels = self
            .slots
            .into_iter()
            .map(|slot| match slot {
                Slot::Labels(labels) => Some(labels),
                _ => None,
            })
            .collect();
        Chunk { index: self.index, room: self.room, lines, labels, missing: self.missing }
    }
}

/// The rows one chunk read, for [`Table::commit`].
pub struct Chunk {
    index: usize,
    room: usize,
    lines: Vec<u32>,
    labels: Vec<Option<Labels>>,
    missing: Vec<bool>,
}
