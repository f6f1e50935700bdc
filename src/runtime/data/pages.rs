//! Parquet column chunks of numbers decoded by nnc itself, page by page,
//! a block of rows at a time.
//!
//! The `parquet` crate's typed column readers hand out one value at a time
//! through several layers; for the common file — flat `INT32`, `INT64`,
//! `FLOAT` or `DOUBLE` columns, `PLAIN` or dictionary-encoded, nullable or
//! not — that cost 4× pandas' time. Here the crate still reads the page
//! headers and decompresses the pages ([`PageReader`]); this module decodes
//! their levels and values straight into a block of `f64`s (NaN for a
//! null), which the reader stores into the table's rows while the block is
//! in cache. Columns with other encodings (delta, byte-stream-split, the
//! deprecated bit-packed levels) keep the crate's readers: see
//! [`decodes`].

use bytes::Bytes;
use parquet::basic::{Encoding, Type as Physical};
use parquet::column::page::{Page, PageReader};
use std::sync::{Arc, Mutex, PoisonError};

/// A column chunk's dictionary, decoded by the first range of rows that
/// needs it and used by every other range of the chunk: a dictionary can
/// hold 1 MB of values, and each thread holding its own copy of every
/// column's doubled the memory of a file of 2·10⁵ rows.
pub type SharedDictionary = Arc<Mutex<Option<Dictionary>>>;

/// A dictionary page's values: in `f32` for a column whose cells are kept
/// in `f32` (half the memory: pyarrow's dictionaries of `DOUBLE` columns
/// are 1 MB each, 20 MB for a file of 20 such columns), in `f64`
/// otherwise, or when a value is finite in `f64` but not in `f32` (the
/// reader reports such a cell with its value, so the value is kept).
/// Looked up, an `f32` entry widened to `f64` narrows back to the same
/// `f32`: the cells are the same bits either way.
#[derive(Clone)]
pub enum Dictionary {
    Wide(Arc<[f64]>),
    Narrow(Arc<[f32]>),
}

impl Dictionary {
    fn len(&self) -> usize {
        match self {
            Dictionary::Wide(values) => values.len(),
            Dictionary::Narrow(values) => values.len(),
        }
    }

    /// `out[k]` = the entry `indices[k]`; an error for an index beyond
    /// the dictionary.
    fn look_up(&self, indices: &[u32], out: &mut [f64]) -> Result<(), String> {
        let beyond = |i: u32| format!("index {i} beyond a dictionary of {}", self.len());
        match self {
            Dictionary::Wide(values) => {
                for (o, &i) in out.iter_mut().zip(indices) {
                    *o = *values.get(i as usize).ok_or_else(|| beyond(i))?;
                }
            }
            Dictionary::Narrow(values) => {
                for (o, &i) in out.iter_mut().zip(indices) {
                    *o = f64::from(*values.get(i as usize).ok_or_else(|| beyond(i))?);
                }
            }
        }
        Ok(())
    }
}

/// Whether a column chunk with these encodings, of this physical type and
/// no repetition, is one [`Numbers`] decodes.
pub fn decodes(physical: Physical, mut encodings: impl Iterator<Item = Encoding>) -> bool {
    matches!(physical, Physical::INT32 | Physical::INT64 | Physical::FLOAT | Physical::DOUBLE)
        && encodings.all(|e| {
            matches!(e, Encoding::PLAIN | Encoding::RLE | Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY)
        })
}

/// A run-length / bit-packed hybrid stream of small integers: definition
/// levels and dictionary indices.
struct Hybrid {
    data: Bytes,
    /// The next run's header.
    at: usize,
    width: u32,
    run: Run,
}

#[derive(Clone, Copy)]
enum Run {
    Repeat {
        value: u32,
        left: usize,
    },
    /// Values packed `width` bits each from bit `bit` of the data.
    Packed {
        bit: usize,
        left: usize,
    },
}

impl Hybrid {
    fn new(data: Bytes, width: u32) -> Result<Hybrid, String> {
        if width > 32 {
            return Err(format!("a bit width of {width}"));
        }
        Ok(Hybrid { data, at: 0, width, run: Run::Repeat { value: 0, left: 0 } })
    }

    /// Start the next run.
    fn next_run(&mut self) -> Result<(), String> {
        let ended = || "a run of levels or indices ends early".to_string();
        let mut header = 0u64;
        let mut shift = 0;
        loop {
            let byte = *self.data.get(self.at).ok_or_else(ended)?;
            self.at += 1;
            header |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 35 {
                return Err("a run header is too long".into());
            }
        }
        let count = (header >> 1) as usize;
        if header & 1 == 0 {
            let bytes = self.width.div_ceil(8) as usize;
            let value = self.data.get(self.at..self.at + bytes).ok_or_else(ended)?;
            let value = value.iter().rev().fold(0u64, |v, &b| (v << 8) | u64::from(b));
            if value >> self.width != 0 {
                return Err(format!("a repeated value {value} wider than {} bits", self.width));
            }
            self.at += bytes;
            self.run = Run::Repeat { value: value as u32, left: count };
        } else {
            // `count` groups of 8 values; the last group may be padding.
            let bytes = count * self.width as usize;
            if bytes > self.data.len() - self.at {
                return Err(ended());
            }
            self.run = Run::Packed { bit: self.at * 8, left: count * 8 };
            self.at += bytes;
        }
        Ok(())
    }

    /// Whether the next `n` values are all `value` (and if so, they are
    /// taken): the common case of a column without nulls, decided without
    /// decoding.
    fn take_repeated(&mut self, n: usize, value: u32) -> Result<bool, String> {
        if let Run::Repeat { left: 0, .. } | Run::Packed { left: 0, .. } = self.run {
            if n == 0 {
                return Ok(true);
            }
            self.next_run()?;
        }
        match &mut self.run {
            Run::Repeat { value: v, left } if *v == value && *left >= n => {
                *left -= n;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The next `out.len()` values.
    fn take(&mut self, out: &mut [u32]) -> Result<(), String> {
        let mut done = 0;
        while done < out.len() {
            match &mut self.run {
                Run::Repeat { left: 0, .. } | Run::Packed { left: 0, .. } => self.next_run()?,
                Run::Repeat { value, left } => {
                    let k = (*left).min(out.len() - done);
                    out[done..done + k].fill(*value);
                    *left -= k;
                    done += k;
                }
                Run::Packed { bit, left } => {
                    let k = (*left).min(out.len() - done);
                    let width = self.width as usize;
                    let mask = (1u64 << width) - 1;
                    for o in &mut out[done..done + k] {
                        *o = ((word(&self.data, *bit / 8) >> (*bit % 8)) & mask) as u32;
                        *bit += width;
                    }
                    *left -= k;
                    done += k;
                }
            }
        }
        Ok(())
    }
}

/// The 8 bytes of `data` from `at`, little-endian, zeros past its end.
fn word(data: &[u8], at: usize) -> u64 {
    match data.get(at..at + 8) {
        Some(bytes) => u64::from_le_bytes(bytes.try_into().expect("8 bytes")),
        None => {
            let mut bytes = [0u8; 8];
            let tail = data.get(at..).unwrap_or(&[]);
            bytes[..tail.len()].copy_from_slice(tail);
            u64::from_le_bytes(bytes)
        }
    }
}

/// The number of bits of levels up to `max`.
fn bits(max: i16) -> u32 {
    16 - (max as u16).leading_zeros()
}

/// A data page's values: in place, or indices into the dictionary.
enum Values {
    Plain { data: Bytes, at: usize },
    Dictionary(Hybrid),
}

/// The data page being read.
struct DataPage {
    /// Rows (levels) not yet taken.
    left: usize,
    /// Definition levels (`None`: a required column).
    levels: Option<Hybrid>,
    values: Values,
}

/// A column chunk of numbers, read a block of rows at a time.
pub struct Numbers {
    pages: Box<dyn PageReader>,
    physical: Physical,
    /// Unsigned integers (`UINT_32`, `UINT_64`): their bits read unsigned.
    unsigned: bool,
    max_def: i16,
    dictionary: Option<Dictionary>,
    /// The chunk's dictionary as any range decoded it.
    shared: SharedDictionary,
    /// The cells are kept in `f32`: the dictionary may be too.
    narrow: bool,
    page: Option<DataPage>,
    /// Scratch for levels and indices.
    levels: Vec<u32>,
    indices: Vec<u32>,
}

/// Why a column chunk could not be read: an error of the `parquet` crate
/// (header, decompression) or of the page's own bytes.
pub enum Unreadable {
    Crate(parquet::errors::ParquetError),
    Page(String),
}

impl From<parquet::errors::ParquetError> for Unreadable {
    fn from(e: parquet::errors::ParquetError) -> Unreadable {
        Unreadable::Crate(e)
    }
}

impl From<String> for Unreadable {
    fn from(e: String) -> Unreadable {
        Unreadable::Page(e)
    }
}

impl Numbers {
    pub fn new(
        pages: Box<dyn PageReader>,
        physical: Physical,
        unsigned: bool,
        max_def: i16,
        shared: SharedDictionary,
        narrow: bool,
    ) -> Numbers {
        Numbers {
            pages,
            physical,
            unsigned,
            max_def,
            dictionary: None,
            shared,
            narrow,
            page: None,
            levels: Vec::new(),
            indices: Vec::new(),
        }
    }

    /// The width in bytes of one plain value.
    fn size(&self) -> usize {
        match self.physical {
            Physical::INT32 | Physical::FLOAT => 4,
            _ => 8,
        }
    }

    /// Plain values from `bytes` into `out` (one per value).
    fn plain(&self, bytes: &[u8], out: &mut [f64]) {
        self.plain_as(bytes, out, |v| v);
    }

    /// Plain values from `bytes`, each as an `f64` given to `convert`,
    /// into `out`.
    #[inline(always)]
    fn plain_as<T>(&self, bytes: &[u8], out: &mut [T], mut convert: impl FnMut(f64) -> T) {
        macro_rules! each {
            ($n:literal, $value:expr) => {
                for (o, v) in out.iter_mut().zip(bytes.chunks_exact($n)) {
                    *o = convert($value(v.try_into().expect("a value's bytes")));
                }
            };
        }
        match (self.physical, self.unsigned) {
            (Physical::DOUBLE, _) => each!(8, f64::from_le_bytes),
            (Physical::FLOAT, _) => each!(4, |b| f64::from(f32::from_le_bytes(b))),
            (Physical::INT32, false) => each!(4, |b| f64::from(i32::from_le_bytes(b))),
            (Physical::INT32, true) => each!(4, |b| f64::from(u32::from_le_bytes(b))),
            (_, false) => each!(8, |b| i64::from_le_bytes(b) as f64),
            (_, true) => each!(8, |b| u64::from_le_bytes(b) as f64),
        }
    }

    /// Skip the first `rows` rows: whole pages by their headers, then
    /// the rows of the page they end in.
    pub fn skip(&mut self, mut rows: usize) -> Result<(), Unreadable> {
        while rows > 0 && self.page.is_none() {
            let Some(meta) = self.pages.peek_next_page()? else { break };
            match meta.num_levels.or(meta.num_rows) {
                // The dictionary is decoded only if a page after the skip
                // needs it: a dictionary that outgrew its limit is used
                // only by the column's first pages.
                _ if meta.is_dict && self.pages.supports_deferred_dictionary() => self.pages.skip_next_page()?,
                _ if meta.is_dict => {
                    let page = self.pages.get_next_page()?.ok_or("a dictionary page vanished".to_string())?;
                    self.load(page)?;
                }
                Some(n) if n <= rows => {
                    self.pages.skip_next_page()?;
                    rows -= n;
                }
                _ => self.next_page()?,
            }
        }
        let mut scratch = vec![0.0; rows.min(1 << 12)];
        while rows > 0 {
            let n = rows.min(scratch.len());
            self.read(&mut scratch[..n])?;
            rows -= n;
        }
        Ok(())
    }

    /// Read pages up to the next data page (taking a dictionary page on
    /// the way); an error at the end of the chunk.
    fn next_page(&mut self) -> Result<(), Unreadable> {
        loop {
            let page = self.pages.get_next_page()?.ok_or("a column has fewer rows than its row group".to_string())?;
            if self.load(page)? {
                return Ok(());
            }
        }
    }

    /// Take a page: a dictionary (false) or the data page to read (true).
    fn load(&mut self, page: Page) -> Result<bool, Unreadable> {
        {
            let (buf, num_values, encoding, levels_at, levels_len) = match page {
                page @ Page::DictionaryPage { .. } => {
                    self.share_dictionary(|_| Ok(Some(page)))?;
                    return Ok(false);
                }
                Page::DataPage { buf, num_values, encoding, def_level_encoding, .. } => {
                    if self.max_def > 0 && def_level_encoding != Encoding::RLE {
                        return Err(format!("definition levels in {def_level_encoding}").into());
                    }
                    let len = if self.max_def > 0 {
                        let prefix = buf.get(..4).ok_or("a page ends in its levels".to_string())?;
                        4 + u32::from_le_bytes(prefix.try_into().expect("4 bytes")) as usize
                    } else {
                        0
                    };
                    (buf, num_values, encoding, 4.min(len), len)
                }
                Page::DataPageV2 { buf, num_values, encoding, def_levels_byte_len, rep_levels_byte_len, .. } => {
                    let at = rep_levels_byte_len as usize;
                    (buf, num_values, encoding, at, at + def_levels_byte_len as usize)
                }
            };
            if levels_len > buf.len() {
                return Err("a page ends in its levels".to_string().into());
            }
            let levels = match self.max_def {
                0 => None,
                max => Some(Hybrid::new(buf.slice(levels_at..levels_len), bits(max))?),
            };
            let values = match encoding {
                Encoding::PLAIN => Values::Plain { data: buf.slice(levels_len..), at: 0 },
                Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY => {
                    if self.dictionary.is_none() {
                        self.share_dictionary(|numbers| Ok(numbers.pages.take_deferred_dictionary()?))?;
                    }
                    if self.dictionary.is_none() {
                        return Err("a dictionary-encoded page without a dictionary".to_string().into());
                    }
                    let width = *buf.get(levels_len).ok_or("a page ends before its values".to_string())?;
                    Values::Dictionary(Hybrid::new(buf.slice(levels_len + 1..), u32::from(width))?)
                }
                other => return Err(format!("values in {other}").into()),
            };
            self.page = Some(DataPage { left: num_values as usize, levels, values });
            Ok(true)
        }
    }

    /// Take the chunk's dictionary: the one another range decoded, or the
    /// page `page` gives, decoded here and shared (while it is decoded,
    /// the other ranges wait for it rather than decode their own copy).
    fn share_dictionary(
        &mut self,
        page: impl FnOnce(&mut Numbers) -> Result<Option<Page>, Unreadable>,
    ) -> Result<(), Unreadable> {
        let shared = Arc::clone(&self.shared);
        // A range that panicked (the crate, on a damaged page) while
        // decoding left no dictionary: this one decodes its own.
        let mut dictionary = shared.lock().unwrap_or_else(PoisonError::into_inner);
        if dictionary.is_none()
            && let Some(page) = page(self)?
        {
            *dictionary = Some(self.decode_dictionary(page)?);
        }
        self.dictionary = dictionary.clone();
        Ok(())
    }

    /// A dictionary page's values.
    fn decode_dictionary(&self, page: Page) -> Result<Dictionary, Unreadable> {
        let Page::DictionaryPage { buf, num_values, encoding, .. } = page else {
            return Err("a data page where the dictionary belongs".to_string().into());
        };
        if !matches!(encoding, Encoding::PLAIN | Encoding::PLAIN_DICTIONARY) {
            return Err(format!("a dictionary page in {encoding}").into());
        }
        let n = num_values as usize;
        if buf.len() < n * self.size() {
            return Err("a dictionary page is shorter than its values".to_string().into());
        }
        if self.narrow {
            // Straight into `f32`, unless a finite value overflows it.
            let mut values = vec![0.0f32; n];
            let mut overflow = false;
            self.plain_as(&buf, &mut values, |v| {
                let narrowed = v as f32;
                overflow |= narrowed.is_infinite() && v.is_finite();
                narrowed
            });
            if !overflow {
                return Ok(Dictionary::Narrow(values.into()));
            }
        }
        let mut values = vec![0.0; n];
        self.plain(&buf, &mut values);
        Ok(Dictionary::Wide(values.into()))
    }

    /// The next `out.len()` rows' values, NaN for a null.
    pub fn read(&mut self, out: &mut [f64]) -> Result<(), Unreadable> {
        let mut done = 0;
        while done < out.len() {
            let left = self.page.as_ref().map_or(0, |p| p.left);
            if left == 0 {
                self.page = None;
                self.next_page()?;
                continue;
            }
            let n = left.min(out.len() - done);
            self.read_in_page(&mut out[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// Rows of the current page, which has at least `out.len()` left.
    fn read_in_page(&mut self, out: &mut [f64]) -> Result<(), Unreadable> {
        let n = out.len();
        let mut page = self.page.take().expect("a page");
        page.left -= n;
        let present = match &mut page.levels {
            None => n,
            Some(levels) => {
                if levels.take_repeated(n, self.max_def as u32)? {
                    n
                } else {
                    self.levels.resize(n, 0);
                    levels.take(&mut self.levels)?;
                    self.levels.iter().filter(|&&l| l == self.max_def as u32).count()
                }
            }
        };
        // The present values first, then spread over their rows (from the
        // end, so no value is overwritten before it moves).
        match &mut page.values {
            Values::Plain { data, at } => {
                let bytes = present * self.size();
                let slice = data.get(*at..*at + bytes).ok_or("a page ends in its values".to_string())?;
                self.plain(slice, &mut out[..present]);
                *at += bytes;
            }
            Values::Dictionary(indices) => {
                self.indices.resize(present, 0);
                indices.take(&mut self.indices)?;
                let dictionary =
                    self.dictionary.as_ref().ok_or("a dictionary-encoded page without a dictionary".to_string())?;
                dictionary.look_up(&self.indices, &mut out[..present])?;
            }
        }
        if present < n {
            let mut p = present;
            for r in (0..n).rev() {
                if self.levels[r] == self.max_def as u32 {
                    p -= 1;
                    out[r] = out[p];
                } else {
                    out[r] = f64::NAN;
                }
            }
        }
        self.page = Some(page);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs written by hand from the format's grammar: a repeated run, a
    /// bit-packed run of 3-bit values, a repeated run again.
    #[test]
    fn hybrid_runs_decode_as_written() {
        // Repeat 5 × value 3: header (5 << 1) = 10, value 1 byte.
        // Packed 1 group (8 values 0..8) of 3 bits: header (1 << 1) | 1 = 3,
        // 3 bytes: 0b10001000, 0b11000110, 0b11111010 (LSB first).
        // Repeat 2 × value 7.
        let data = Bytes::from(vec![10, 3, 3, 0b1000_1000, 0b1100_0110, 0b1111_1010, 4, 7]);
        let mut h = Hybrid::new(data.clone(), 3).unwrap();
        let mut out = vec![0; 15];
        h.take(&mut out).unwrap();
        assert_eq!(out, [3, 3, 3, 3, 3, 0, 1, 2, 3, 4, 5, 6, 7, 7, 7]);
        assert!(h.take(&mut [0]).is_err(), "the stream ended");
        // Taking a repeated run whole, in parts, or not when it differs.
        let mut h = Hybrid::new(data, 3).unwrap();
        assert!(h.take_repeated(3, 3).unwrap());
        assert!(!h.take_repeated(3, 3).unwrap(), "only 2 left");
        let mut two = [0; 2];
        h.take(&mut two).unwrap();
        assert_eq!(two, [3, 3]);
        assert!(!h.take_repeated(1, 3).unwrap(), "a packed run");
    }

    /// No pages: a [`Numbers`] to decode dictionary pages with.
    struct NoPages;

    impl Iterator for NoPages {
        type Item = parquet::errors::Result<Page>;
        fn next(&mut self) -> Option<Self::Item> {
            None
        }
    }

    impl PageReader for NoPages {
        fn get_next_page(&mut self) -> parquet::errors::Result<Option<Page>> {
            Ok(None)
        }
        fn peek_next_page(&mut self) -> parquet::errors::Result<Option<parquet::column::page::PageMetadata>> {
            Ok(None)
        }
        fn skip_next_page(&mut self) -> parquet::errors::Result<()> {
            Ok(())
        }
    }

    /// A dictionary page of `DOUBLE`s decoded for cells kept in `f32`
    /// (`narrow`) or not.
    fn dictionary(values: &[f64], narrow: bool) -> Dictionary {
        let numbers = Numbers::new(Box::new(NoPages), Physical::DOUBLE, false, 0, SharedDictionary::default(), narrow);
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let page = Page::DictionaryPage {
            buf: Bytes::from(bytes),
            num_values: values.len() as u32,
            encoding: Encoding::PLAIN,
            is_sorted: false,
        };
        numbers.decode_dictionary(page).ok().expect("decodes")
    }

    /// A dictionary of a column kept in `f32` is held in `f32` (half the
    /// memory), and its look-ups narrow to the `f32` the `f64` entries
    /// would; one with a value `f32` cannot hold stays in `f64`.
    #[test]
    fn dictionaries_of_f32_cells_are_kept_in_f32() {
        let values = [0.1, -2.5e-40, 1e30, f64::NAN, f64::INFINITY, -0.0, 16_777_217.0];
        let indices: Vec<u32> = vec![6, 0, 3, 1, 2, 5, 4, 0];
        let look_up = |d: &Dictionary| {
            let mut out = vec![0.0; indices.len()];
            d.look_up(&indices, &mut out).expect("in the dictionary");
            out.iter().map(|&v| (v as f32).to_bits()).collect::<Vec<_>>()
        };
        let wide = dictionary(&values, false);
        let narrow = dictionary(&values, true);
        assert!(matches!(wide, Dictionary::Wide(_)) && matches!(narrow, Dictionary::Narrow(_)));
        assert_eq!(look_up(&narrow), look_up(&wide));
        let huge = dictionary(&[1.0, 1e39], true);
        assert!(matches!(huge, Dictionary::Wide(_)), "1e39 is kept to be reported");
        let mut out = [0.0];
        assert_eq!(huge.look_up(&[1], &mut out).map(|()| out[0]), Ok(1e39));
        assert!(narrow.look_up(&[7], &mut out).is_err(), "beyond the dictionary");
    }

    #[test]
    fn a_level_width_is_the_bits_of_the_greatest_level() {
        assert_eq!([0, 1, 2, 3, 4, 7, 8].map(bits), [0, 1, 2, 2, 3, 3, 4]);
    }

    #[test]
    fn bad_runs_are_errors_not_panics() {
        // A packed run longer than the data; a header that never ends; a
        // repeated value wider than the width; a width beyond 32.
        for (data, width) in [(vec![5u8, 1], 3), (vec![0x80; 9], 3), (vec![2, 9], 3)] {
            let mut h = Hybrid::new(Bytes::from(data), width).unwrap();
            assert!(h.take(&mut [0; 4]).is_err());
        }
        assert!(Hybrid::new(Bytes::new(), 33).is_err());
    }
}
