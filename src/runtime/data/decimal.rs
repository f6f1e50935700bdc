//! Plain decimals (`-0.123456`, `42`, `5.`) read straight from a CSV
//! row's bytes, the commonest cell, as the correctly rounded `f64` that
//! `fast_float2` gives: the digits as an integer below 10¹⁵ < 2⁵³ and the
//! power of ten are both exact, so the one division rounds once
//! (Clinger's fast path). Anything else (exponents, `+`, words, spaces,
//! more than 15 digits) is left to the general parser.
//!
//! Two scanners read the same cells to the same bits: [`Scalar`], eight
//! bytes at a time in a `u64`, which runs everywhere and is the oracle; and
//! [`Simd`], a whole cell of up to 15 bytes at once in a 128-bit register
//! (digit and point masks, the digits moved into place by one byte
//! shuffle, then combined by multiply-adds, simdjson's trick): about a
//! third of the instructions, and no branch that depends on the cell's
//! length. The SIMD intrinsics need SSSE3/SSE4.1 (and are compiled for
//! AVX2 so they take three operands), which x86-64 does not guarantee:
//! this module is the only place with `unsafe` for them. A [`Simd`] can
//! only be made by [`run`] after the CPU is known to have the features,
//! and the row parser is compiled a second time, with the features
//! enabled, inside `run`.

/// Powers of ten that are exact in `f64`.
const POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// A way to read a row's fields.
pub trait Scan: Copy {
    /// The field `data[start..end]` as a plain decimal (an optional `-`,
    /// digits, an optional `.` and digits; 1 to 15 digits in all), `None`
    /// when it is not one, and may be `None` too when the byte after the
    /// field is a digit or `.` (a delimiter chosen so; the general parser
    /// reads the field then).
    fn plain(self, data: &[u8], start: usize, end: usize) -> Option<f64>;

    /// The bytes of `data[at..at + 64]` that are `delimiter` or `\n`, as
    /// bits from the lowest (none past the end of `data`).
    fn ends(self, data: &[u8], at: usize, delimiter: u8) -> u64;
}

/// A job run with the best [`Scan`] this CPU has (see [`run`]).
pub trait Job {
    type Output;
    fn run<S: Scan>(self, scan: S) -> Self::Output;
}

/// Run `job` with [`Simd`] when the CPU has the features it needs, with
/// [`Scalar`] otherwise (or when `simd` is false).
pub fn run<J: Job>(job: J, simd: bool) -> J::Output {
    #[cfg(target_arch = "x86_64")]
    if simd && Simd::available() {
        // SAFETY: the CPU has the features `with_simd` is compiled for.
        return unsafe { with_simd(job) };
    }
    let _ = simd;
    job.run(Scalar)
}

/// `job` compiled with the features [`Simd`] needs, so that its scans
/// are inlined into it.
///
/// # Safety
/// The CPU must have AVX2, BMI1, BMI2 and POPCNT ([`Simd::available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt")]
unsafe fn with_simd<J: Job>(job: J) -> J::Output {
    job.run(Simd(()))
}

/// The plain decimal at `bytes[start..]` by [`Scalar`], when it is the
/// whole of `field` (for the general parser's cells).
#[inline]
pub fn plain(field: &[u8]) -> Option<f64> {
    let (value, end) = Scalar.decimal(field, 0)?;
    (end == field.len()).then_some(value)
}

/// Eight bytes at a time, in a `u64`.
#[derive(Clone, Copy, Debug)]
pub struct Scalar;

impl Scan for Scalar {
    #[inline(always)]
    fn plain(self, data: &[u8], start: usize, end: usize) -> Option<f64> {
        // A plain decimal that ends at `end` is the whole field (one that
        // runs on, when the delimiter is a digit or `.`, is left to the
        // general parser, which reads it the same).
        let (value, stop) = self.decimal(data, start)?;
        (stop == end).then_some(value)
    }

    /// Eight bytes at a time in a `u64`.
    fn ends(self, data: &[u8], at: usize, delimiter: u8) -> u64 {
        let window = &data[at.min(data.len())..data.len().min(at + 64)];
        let mut words = window.chunks_exact(8);
        let mut bits = 0;
        for (k, word) in (&mut words).enumerate() {
            bits |= ends_in_word(u64::from_le_bytes(word.try_into().expect("8 bytes")), delimiter) << (8 * k);
        }
        let done = window.len() - words.remainder().len();
        for (k, &b) in words.remainder().iter().enumerate() {
            bits |= u64::from(b == delimiter || b == b'\n') << (done + k);
        }
        bits
    }
}

/// The bytes of `word` (the first in its lowest byte) that are `delimiter`
/// or `\n`, one bit each, the first lowest.
#[inline(always)]
fn ends_in_word(word: u64, delimiter: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    // The high bit of each byte of `x` that is zero, exactly (the sum of
    // the low 7 bits does not carry out of its byte).
    let zeros = |x: u64| !(((x & LOW) + LOW) | x | LOW);
    let high = zeros(word ^ (ONES * u64::from(delimiter))) | zeros(word ^ (ONES * u64::from(b'\n')));
    // Byte k's high bit, moved to bit 8k, lands on bit 56 + k of the
    // product, and no two terms meet: the top byte holds the eight bits.
    (high >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

impl Scalar {
    /// The plain decimal that starts at `bytes[start]` and the index of
    /// the first byte after it.
    #[inline(always)]
    fn decimal(self, bytes: &[u8], start: usize) -> Option<(f64, usize)> {
        let negative = bytes.get(start) == Some(&b'-');
        let i = start + usize::from(negative);
        let (mantissa, scale, end) = match digits_by_eight(bytes, i) {
            Some(found) => found,
            None => digits_by_one(bytes, i)?,
        };
        Some((signed(mantissa, scale, negative), end))
    }
}

/// `±mantissa / 10^scale`, rounded once (`mantissa` below 2⁵³).
#[inline(always)]
fn signed(mantissa: u64, scale: usize, negative: bool) -> f64 {
    let value = mantissa as i64 as f64 / POWERS_OF_TEN[scale];
    // `value` is not negative: setting the sign bit negates it.
    f64::from_bits(value.to_bits() | (u64::from(negative) << 63))
}

/// The digits, `.` and digits from `bytes[i]` a byte at a time: the digits
/// as an integer, how many follow the point, and where they end. `None`
/// for no digits or more than 15.
#[inline(always)]
fn digits_by_one(bytes: &[u8], mut i: usize) -> Option<(u64, usize, usize)> {
    // The digits from `bytes[i]` after those in `mantissa`, and where they
    // end. More than 19 digits wrap the mantissa, but those are refused
    // below.
    let digits = |mut mantissa: u64, mut i: usize| {
        while let Some(&b) = bytes.get(i) {
            let digit = b.wrapping_sub(b'0');
            if digit > 9 {
                break;
            }
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(digit));
            i += 1;
        }
        (mantissa, i)
    };
    let whole = i;
    let (mut mantissa, end) = digits(0, i);
    i = end;
    let mut count = i - whole;
    let mut scale = 0;
    if bytes.get(i) == Some(&b'.') {
        let (more, end) = digits(mantissa, i + 1);
        scale = end - (i + 1);
        count += scale;
        (mantissa, i) = (more, end);
    }
    (count > 0 && count <= 15).then_some((mantissa, scale, i))
}

/// [`digits_by_one`] eight bytes at a time, without a branch on each
/// digit (whose lengths vary from cell to cell, so the branches would be
/// mispredicted): `None` when fewer than 16 bytes are left or either run of
/// digits is 8 long or more (then the bytes are read one at a time).
#[inline(always)]
fn digits_by_eight(bytes: &[u8], i: usize) -> Option<(u64, usize, usize)> {
    let word = |at: usize| bytes.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let whole = word(i)?;
    let count = leading_digits(whole);
    if count == 8 || bytes.len() < i + 16 {
        return None;
    }
    let mut mantissa = eight_digits(whole, count);
    if bytes[i + count] != b'.' {
        return (count > 0).then_some((mantissa, 0, i + count));
    }
    let fraction = word(i + count + 1)?;
    let scale = leading_digits(fraction);
    if scale == 8 || count + scale == 0 {
        return None;
    }
    // At most 7 + 7 digits: exact in u64 and below 2⁵³.
    mantissa = mantissa * POWERS_OF_TEN_U64[scale] + eight_digits(fraction, scale);
    Some((mantissa, scale, i + count + 1 + scale))
}

/// 10⁰ to 10⁷.
const POWERS_OF_TEN_U64: [u64; 8] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000];

/// How many of the 8 bytes of `word` (the first in its lowest byte) are
/// ASCII digits before the first that is not.
#[inline(always)]
fn leading_digits(word: u64) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // A byte is a digit when its high nibble is 3 both as it is and with
    // 6 added (`:` to `?` become `@` to `E`). A carry out of a byte only
    // reaches bytes after it, which come after the first non-digit.
    let high = word & (0xF0 * ONES);
    let high_plus_6 = word.wrapping_add(6 * ONES) & (0xF0 * ONES);
    let not_digit = (high ^ (0x30 * ONES)) | (high_plus_6 ^ (0x30 * ONES));
    (not_digit.trailing_zeros() / 8) as usize
}

/// The first `count` (0 to 7) bytes of `word`, ASCII digits, as a number.
#[inline(always)]
fn eight_digits(word: u64, count: usize) -> u64 {
    // The digits' values, moved up so that zeros lead (the bytes after
    // them, and whatever borrows they made, move out).
    let values = word.wrapping_sub(0x3030_3030_3030_3030) << (8 * (8 - count) as u32 % 64);
    let values = if count == 0 { 0 } else { values };
    // Pairs, then fours, then all eight (fast_float's
    // `parse_eight_digits_unrolled`).
    let pairs = values.wrapping_mul(10).wrapping_add(values >> 8);
    let low = (pairs & 0x0000_00FF_0000_00FF).wrapping_mul(100 + (1_000_000 << 32));
    let high = ((pairs >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32));
    low.wrapping_add(high) >> 32
}

/// A whole cell at once in a 128-bit register. Made only by [`run`], on a
/// CPU with the features its intrinsics need.
#[derive(Clone, Copy, Debug)]
pub struct Simd(());

/// For a number that ends (its last byte) at byte `end - 1` of 16 and has
/// its point at byte `point` (16: none), the byte shuffle that moves its
/// digits to the end of the register, last digit last, with zeros before
/// them (`0x80` makes a zero byte): `SHUFFLES[end][point]`.
#[cfg(target_arch = "x86_64")]
static SHUFFLES: [[[u8; 16]; 17]; 16] = shuffles();

#[cfg(target_arch = "x86_64")]
const fn shuffles() -> [[[u8; 16]; 17]; 16] {
    let mut table = [[[0x80u8; 16]; 17]; 16];
    let mut end = 0;
    while end < 16 {
        let mut point = 0;
        while point < 17 {
            let mut to = 16;
            let mut from = end;
            while from > 0 && to > 0 {
                from -= 1;
                if from != point {
                    to -= 1;
                    table[end][point][to] = from as u8;
                }
            }
            point += 1;
        }
        end += 1;
    }
    table
}

#[cfg(target_arch = "x86_64")]
impl Simd {
    /// Whether this CPU has the features [`with_simd`] is compiled for.
    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("bmi1")
            && std::arch::is_x86_feature_detected!("bmi2")
            && std::arch::is_x86_feature_detected!("popcnt")
    }
}

#[cfg(not(target_arch = "x86_64"))]
impl Scan for Simd {
    fn plain(self, data: &[u8], start: usize, end: usize) -> Option<f64> {
        Scalar.plain(data, start, end)
    }

    fn ends(self, data: &[u8], at: usize, delimiter: u8) -> u64 {
        Scalar.ends(data, at, delimiter)
    }
}

#[cfg(target_arch = "x86_64")]
impl Scan for Simd {
    /// The 16 bytes from `start` at once; by [`Scalar`] when fewer are
    /// left or the field is longer than 15 bytes.
    #[inline(always)]
    fn plain(self, data: &[u8], start: usize, end: usize) -> Option<f64> {
        use std::arch::x86_64::*;
        let length = end - start;
        let chunk: Option<&[u8; 16]> = data.get(start..start + 16).and_then(|c| c.try_into().ok());
        let Some(chunk) = chunk.filter(|_| length <= 15) else {
            return Scalar.plain(data, start, end);
        };
        // SAFETY: a `Simd` is only made by `run` once the CPU is known to
        // have AVX2 (hence SSE2, SSSE3, SSE4.1), BMI1, BMI2 and POPCNT; the load
        // reads the 16 bytes of `chunk` (an unaligned load).
        unsafe {
            let raw = _mm_loadu_si128(chunk.as_ptr().cast());
            let values = _mm_sub_epi8(raw, _mm_set1_epi8(b'0' as i8));
            // Digits are the bytes whose value (unsigned) is at most 9.
            let is_digit = _mm_cmpeq_epi8(_mm_min_epu8(values, _mm_set1_epi8(9)), values);
            let digits = _mm_movemask_epi8(is_digit) as u32;
            let points = _mm_movemask_epi8(_mm_cmpeq_epi8(raw, _mm_set1_epi8(b'.' as i8))) as u32;
            let negative = u32::from(chunk[0] == b'-');
            // The field after its sign: digits and at most one point,
            // 1 to 15 digits.
            let body = ((1u32 << length) - 1) & !negative;
            let point_bits = points & body;
            let count = (digits & body).count_ones();
            let plain = (digits | point_bits) & body == body
                && point_bits & point_bits.wrapping_sub(1) == 0
                && count.wrapping_sub(1) < 15;
            if !plain {
                return None;
            }
            // Where the point is (16: none), and the digits after it.
            let point = (point_bits | 1 << 16).trailing_zeros();
            let scale = (body & !((point_bits << 1).wrapping_sub(1))).count_ones();
            // The digits' values (the sign and the point made zeros),
            // moved to the end of the register, then combined: pairs,
            // fours, eights.
            let shuffle = _mm_loadu_si128(SHUFFLES[length][point as usize].as_ptr().cast());
            let placed = _mm_shuffle_epi8(_mm_and_si128(values, is_digit), shuffle);
            let pairs = _mm_maddubs_epi16(placed, _mm_set1_epi16(0x010A));
            let fours = _mm_madd_epi16(pairs, _mm_set1_epi32(0x0001_0064));
            let fours = _mm_packus_epi32(fours, fours);
            let eights = _mm_madd_epi16(fours, _mm_set1_epi32(0x0001_2710));
            let both = _mm_cvtsi128_si64(eights) as u64;
            let mantissa = (both & 0xFFFF_FFFF) * 100_000_000 + (both >> 32);
            Some(signed(mantissa, scale as usize, negative != 0))
        }
    }

    /// Two 32-byte compares per mask; by [`Scalar`] for the last bytes.
    #[inline(always)]
    fn ends(self, data: &[u8], at: usize, delimiter: u8) -> u64 {
        use std::arch::x86_64::*;
        let Some(window) = data.get(at..at + 64) else {
            return Scalar.ends(data, at, delimiter);
        };
        // SAFETY: as in `plain` (AVX2 is there); the loads read the 64
        // bytes of `window`.
        unsafe {
            let delimiter = _mm256_set1_epi8(delimiter as i8);
            let line_end = _mm256_set1_epi8(b'\n' as i8);
            let low = _mm256_loadu_si256(window.as_ptr().cast());
            let high = _mm256_loadu_si256(window[32..].as_ptr().cast());
            let low = _mm256_or_si256(_mm256_cmpeq_epi8(low, delimiter), _mm256_cmpeq_epi8(low, line_end));
            let high = _mm256_or_si256(_mm256_cmpeq_epi8(high, delimiter), _mm256_cmpeq_epi8(high, line_end));
            u64::from(_mm256_movemask_epi8(low) as u32) | u64::from(_mm256_movemask_epi8(high) as u32) << 32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_decimals_read_as_the_general_parser_reads_them() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut fast = 0;
        for case in 0..200_000 {
            let digits: String = (0..1 + next(18)).map(|_| char::from(b'0' + next(10) as u8)).collect();
            let mut text = if next(2) == 0 { format!("-{digits}") } else { digits.clone() };
            if next(4) != 0 {
                let at = text.len() - next(digits.len() as u64 + 1) as usize;
                text.insert(at, '.');
            }
            let general = fast_float2::parse::<f64, _>(text.as_bytes()).ok();
            // In a row, with bytes after it (eight at a time).
            let row = format!("{text},1.25,-3.5,7");
            let scanned = Scalar.decimal(row.as_bytes(), 0).filter(|&(_, end)| end == text.len()).map(|(v, _)| v);
            assert_eq!(scanned.map(f64::to_bits), plain(text.as_bytes()).map(f64::to_bits), "`{row}`");
            match plain(text.as_bytes()) {
                Some(v) => {
                    fast += 1;
                    assert_eq!(Some(v.to_bits()), general.map(f64::to_bits), "case {case}: `{text}`");
                }
                None => assert!(digits.len() > 15, "case {case}: `{text}` is plain"),
            }
        }
        assert!(fast > 100_000, "{fast} cases took the fast path");
        for text in ["", "-", ".", "-.", "+1", "1e5", "1.5e-3", "NA", "1..2", "0x1", "1,5", " 1"] {
            assert_eq!(plain(text.as_bytes()), None, "`{text}`");
        }
        assert_eq!(plain(b"-0").map(f64::to_bits), Some((-0.0f64).to_bits()));
        assert_eq!((plain(b"5."), plain(b".5")), (Some(5.0), Some(0.5)));
    }

    #[test]
    fn scalar_masks_mark_every_delimiter_and_line_end() {
        let mut state = 0x853c_49e6_748f_ea9bu64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b",;\n\r0.-9\x00\x7f\x80\xff\x8a\xac\xbb";
        for _ in 0..2000 {
            let bytes: Vec<u8> =
                (0..next() % 150).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            for delimiter in [b',', b';', b'\t'] {
                for at in 0..=bytes.len() {
                    let naive = bytes[at..]
                        .iter()
                        .take(64)
                        .enumerate()
                        .fold(0u64, |bits, (k, &b)| bits | (u64::from(b == delimiter || b == b'\n') << k));
                    assert_eq!(Scalar.ends(&bytes, at, delimiter), naive, "{bytes:?} at {at}");
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod simd {
        use super::super::*;
        use proptest::prelude::*;

        /// [`Simd`] against [`Scalar`] on `bytes`: every field
        /// `bytes[start..end]` read the same, bit for bit, and the same
        /// masks of field ends at every offset. How many were plain.
        struct Compare<'a>(&'a [u8], u8);

        impl Job for Compare<'_> {
            type Output = usize;
            fn run<S: Scan>(self, scan: S) -> usize {
                let Compare(bytes, delimiter) = self;
                let mut plain = 0;
                for start in 0..=bytes.len() {
                    for end in start..=bytes.len().min(start + 20) {
                        if bytes.get(end).is_some_and(|&b| b.is_ascii_digit() || b == b'.') {
                            continue;
                        }
                        let scalar = Scalar.plain(&bytes[..end], start, end).map(f64::to_bits);
                        let fast = scan.plain(bytes, start, end).map(f64::to_bits);
                        let general = crate::runtime::data::decimal::plain(&bytes[start..end]).map(f64::to_bits);
                        assert_eq!(
                            (fast, scalar),
                            (general, general),
                            "{:?}",
                            String::from_utf8_lossy(&bytes[start..end])
                        );
                        plain += usize::from(fast.is_some());
                    }
                    assert_eq!(scan.ends(bytes, start, delimiter), Scalar.ends(bytes, start, delimiter), "at {start}");
                }
                plain
            }
        }

        fn compare(bytes: &[u8]) -> usize {
            if !Simd::available() {
                return 0;
            }
            run(Compare(bytes, b','), true) + run(Compare(bytes, b';'), true)
        }

        #[test]
        fn every_shape_of_cell_reads_as_the_scalar_reads_it() {
            if !Simd::available() {
                eprintln!("no AVX2: the SIMD scan is not tested on this CPU");
                return;
            }
            // Every length and every place of the point and the sign, with
            // each terminator, at the 16-byte edge and past it.
            let mut decided = 0;
            for length in 0..=18 {
                for point in 0..=length + 1 {
                    for negative in [false, true] {
                        for after in [",", "\n", "\r\n", "e5", ".", "x", "-", ""] {
                            let mut cell: String =
                                (0..length).map(|k| char::from(b'0' + ((k * 7 + 3) % 10) as u8)).collect();
                            if point <= length {
                                cell.insert(point, '.');
                            }
                            if negative {
                                cell.insert(0, '-');
                            }
                            let row = format!("{cell}{after}9,8.5,-7.25,6,5.125,4,3,2,1");
                            decided += compare(row.as_bytes());
                            // The cell at the end of the bytes (no final line end).
                            decided += compare(format!("0123456789abcdef{cell}").as_bytes());
                        }
                    }
                }
            }
            assert!(decided > 10_000, "{decided} cells read by the SIMD scan");
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn random_bytes_read_as_the_scalar_reads_them(bytes in proptest::collection::vec(
                prop_oneof![
                    8 => b'0'..=b'9',
                    2 => Just(b'.'),
                    2 => Just(b'-'),
                    2 => Just(b','),
                    1 => Just(b'\n'),
                    1 => Just(b'\r'),
                    1 => Just(b'e'),
                    1 => any::<u8>(),
                ],
                0..80,
            )) {
                compare(&bytes);
            }

            #[test]
            fn decimals_read_as_the_scalar_reads_them(
                cells in proptest::collection::vec((any::<bool>(), 1u64..10_000_000_000_000_000, 0usize..20), 1..12)
            ) {
                let row: Vec<String> = cells
                    .iter()
                    .map(|&(negative, digits, point)| {
                        let mut text = digits.to_string();
                        text.insert(point.min(text.len()), '.');
                        if negative { format!("-{text}") } else { text }
                    })
                    .collect();
                // Bytes after the last cell, so that it is scanned 16 at a time too.
                let row = format!("{},9,8,7,6,5,4,3,2,1", row.join(","));
                compare(row.as_bytes());
            }
        }
    }
}
