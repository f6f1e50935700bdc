//! Bounded fuzzing in `cargo test`: no input makes the front end or the CSV
//! reader panic.
//!
//! - `.nn` text — the examples and the UI corpus mutated (byte flips, token
//!   deletions, duplications and swaps, random tokens and unicode, splices,
//!   truncations) and random text — goes through [`pipeline::frontend`] and,
//!   when it checks, [`pipeline::graphs`] (which re-verifies every graph in a
//!   debug build). Every diagnostic must have labels inside the file on char
//!   boundaries, and must render.
//! - Random CSV bytes go through [`data::read_table`], [`data::resolve`],
//!   [`data::fit_transforms`] and [`Dataset::build`] for a few fixed
//!   programs; a dataset that builds must hold only finite numbers of the
//!   right count.
//!
//! The generator is a fixed-seed xorshift, so a run is reproducible; each
//! test stops after its case count or its time budget (`NNC_FUZZ_SECONDS`,
//! default 2 s per test), whichever comes first. A crashing input is written
//! to `target/tmp/fuzz-crash-*` and named in the failure; commit it under
//! `tests/fuzz-failures/` (`.nn` or `.csv`), where [`regressions_replay`]
//! runs it on every test run.
//!
//! The cargo-fuzz target `fuzz/fuzz_targets/parse_check.rs` does the `.nn`
//! half at libFuzzer speed; see `fuzz/README.md`.

mod common;

use common::Rng;
use nnc::diag::{Diagnostic, Style, render};
use nnc::ir::program::Program;
use nnc::pipeline;
use nnc::runtime::data::{self, Dataset};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn budget() -> Duration {
    let seconds = std::env::var("NNC_FUZZ_SECONDS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(2.0);
    Duration::from_secs_f64(seconds)
}

// ---------------------------------------------------------------------------
// The properties

/// Labels inside `text`, on char boundaries; the diagnostics render.
fn assert_diagnostics_ok(text: &str, diags: &[Diagnostic]) {
    assert!(!diags.is_empty(), "an error without a diagnostic");
    for diag in diags {
        assert!(diag.code.starts_with('E') && diag.code.len() == 5, "bad code: {diag:?}");
        assert!(!diag.labels.is_empty(), "points nowhere: {diag:?}");
        for label in &diag.labels {
            let span = label.span;
            assert!(span.start <= span.end && span.end as usize <= text.len(), "outside the file: {diag:?}");
            assert!(text.get(span.range()).is_some(), "not on char boundaries: {diag:?}");
        }
    }
    let rendered = render(diags, "fuzz.nn", text, Style::Plain);
    assert!(rendered.contains("error["), "{rendered}");
}

/// Parse, check and (when it checks) differentiate and simplify; whether
/// it checked.
fn model_case(text: &str) -> bool {
    match pipeline::frontend(text) {
        Ok(front) => {
            let graphs = pipeline::graphs(&front.program);
            assert!(graphs.train.output("loss").is_some(), "the training graph has a loss");
            true
        }
        Err(diags) => {
            assert_diagnostics_ok(text, &diags);
            false
        }
    }
}

/// Read, bind and build `bytes` for `program` as training data, then again
/// for prediction with the fitted transforms; a built dataset is all finite.
fn csv_case(program: &Program, bytes: &[u8]) {
    let options = data::ReadOptions::default();
    let table = match data::read_bytes("fuzz.csv", bytes, &program.data, options) {
        Ok(table) => table,
        Err(e) => return assert_bind_error_ok(&e),
    };
    assert!(table.rows >= 1);
    assert!(table.lines.iter().all(|&l| l >= 1), "a row has no line");
    let split = data::Split { fraction: 0.3, kind: nnc::ir::program::SplitKind::Auto, seed: 1 };
    let bound = match data::prepare::training(program, table.clone(), split, None) {
        Ok(bound) => bound,
        Err(e) => return assert_bind_error_ok(&e),
    };
    for dataset in std::iter::once(&bound.train).chain(&bound.validation) {
        assert_finite(program, dataset);
    }
    let options = data::ReadOptions { targets_optional: true, ..options };
    match data::read_bytes("fuzz.csv", bytes, &program.data, options)
        .and_then(|table| data::prepare::apply(program, table, &bound.transforms))
    {
        Ok(dataset) => assert_finite(program, &dataset),
        Err(e) => assert_bind_error_ok(&e),
    }
}

fn assert_finite(program: &Program, dataset: &Dataset) {
    for (var, values) in program.graph.inputs.iter().zip(&dataset.inputs) {
        assert_eq!(values.len(), dataset.rows * var.width as usize, "input `{}`", var.name);
        assert!(values.iter().all(|v| v.is_finite()), "input `{}` has a non-finite value", var.name);
    }
    if dataset.has_targets {
        for (var, values) in program.graph.targets.iter().zip(&dataset.targets) {
            assert_eq!(values.len(), dataset.rows * var.width as usize, "target `{}`", var.name);
            assert!(values.iter().all(|v| v.is_finite()), "target `{}` is not finite", var.name);
        }
    }
}

/// A data error names a line and column of the file; a model error is a
/// located diagnostic.
fn assert_bind_error_ok(e: &data::BindError) {
    match e {
        data::BindError::Model(diags) => {
            for diag in diags {
                assert!(!diag.labels.is_empty(), "{diag:?}");
            }
        }
        data::BindError::Data(e) => {
            if let Some(line) = e.line {
                assert!(line >= 1, "{e}");
            }
            if let Some(column) = e.column {
                assert!((1..=8).contains(&column), "{e}: column {column}");
            }
            assert!(e.message.len() < 1000, "a long message: {} bytes", e.message.len());
        }
    }
}

/// Runs `case` on `input`; a panic fails the test with the input saved.
fn guarded<T>(kind: &str, input: &[u8], case: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(case)) {
        Ok(value) => value,
        Err(panic) => crashed(kind, input, panic),
    }
}

fn crashed(kind: &str, input: &[u8], panic: Box<dyn std::any::Any + Send>) -> ! {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-crash-{hash:016x}.{kind}"));
    let _ = std::fs::write(&path, input);
    let shown: String = String::from_utf8_lossy(input).chars().take(300).collect();
    panic!("{kind} input panicked: {message}\nsaved to {}\ninput: {shown:?}", path.display());
}

// ---------------------------------------------------------------------------
// Model text

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == ext)).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// The examples and the UI corpus, as text.
fn seeds() -> Vec<String> {
    let mut seeds: Vec<String> = [root().join("examples"), root().join("tests/ui")]
        .iter()
        .flat_map(|dir| files(dir, "nn"))
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .collect();
    seeds.push("param x = 0\nloss x^3 / 3 - x\n".into());
    seeds.push("data { input x = columns(a, 2) standardize target y = one_hot(c, 3) }\nmodel { out = dense(x, 3, softmax) }\nloss cross_entropy(out, y)\ntrain { validation = 0.2 shuffle = true }\n".into());
    seeds
}

const TOKENS: &[&str] = &[
    "data",
    "model",
    "param",
    "loss",
    "train",
    "input",
    "target",
    "x",
    "y",
    "h",
    "out",
    "dense",
    "tanh",
    "sigmoid",
    "relu",
    "softmax",
    "identity",
    "exp",
    "log",
    "abs",
    "sum",
    "mean",
    "mse",
    "cross_entropy",
    "columns",
    "column",
    "rest",
    "one_hot",
    "standardize",
    "sgd",
    "lr",
    "epochs",
    "steps",
    "batch",
    "seed",
    "shuffle",
    "validation",
    "bias",
    "true",
    "false",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ",",
    "=",
    "+",
    "-",
    "*",
    "/",
    "^",
    "#",
    "\n",
    " ",
    "\t",
    "0",
    "1",
    "2",
    "3",
    "0.5",
    "-1",
    "1e-3",
    "1e400",
    "1e308",
    "65536",
    "65537",
    "1000000000",
    ".5",
    "5.",
    "0x10",
    "é",
    "\u{feff}",
    "\u{1F600}",
    "\r\n",
    "\u{0}",
    "\u{200b}",
    "ß",
    "∂",
    "`",
    "\"",
    "@",
    ";",
    "fn",
    "if",
    "then",
    "else",
    "<",
    "<=",
    ">",
    ">=",
    "==",
    "!=",
    "h.w",
    "out.b",
    ".",
    "adam",
    "adamw",
    "momentum",
    "schedule",
    "cosine",
    "step",
    "mae",
    "huber",
    "binary_cross_entropy",
    "gelu",
    "leaky_relu",
    "where",
    "concat",
    "l2",
];

/// One mutation of `text`.
fn mutate(rng: &mut Rng, text: &str, seeds: &[String]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    match rng.below(10) {
        // Flip, set or delete a few bytes (the result is read as lossy UTF-8).
        0 => {
            for _ in 0..1 + rng.below(4) {
                if bytes.is_empty() {
                    break;
                }
                let i = rng.below(bytes.len());
                match rng.below(3) {
                    0 => bytes[i] ^= 1 << rng.below(8),
                    1 => bytes[i] = rng.below(256) as u8,
                    _ => {
                        bytes.remove(i);
                    }
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        // Token-level edits: delete, duplicate, swap, insert.
        1..=5 => {
            let mut tokens = tokenize(text);
            for _ in 0..1 + rng.below(3) {
                let n = tokens.len();
                match rng.below(4) {
                    0 if n > 0 => {
                        tokens.remove(rng.below(n));
                    }
                    1 if n > 0 => {
                        let i = rng.below(n);
                        let token = tokens[i].clone();
                        tokens.insert(rng.below(n + 1), token);
                    }
                    2 if n > 1 => tokens.swap(rng.below(n), rng.below(n)),
                    _ => tokens.insert(rng.below(n + 1), TOKENS[rng.below(TOKENS.len())].to_string()),
                }
            }
            tokens.concat()
        }
        // A random char anywhere (on a char boundary).
        6 => {
            let mut chars: Vec<char> = text.chars().collect();
            let c = char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('\u{fffd}');
            chars.insert(rng.below(chars.len() + 1), c);
            chars.into_iter().collect()
        }
        // Splice: a prefix of this file and a suffix of another.
        7 => {
            let other = &seeds[rng.below(seeds.len())];
            let a = floor(text, rng.below(text.len() + 1));
            let b = floor(other, rng.below(other.len() + 1));
            format!("{}{}", &text[..a], &other[b..])
        }
        // Truncate.
        8 => text[..floor(text, rng.below(text.len() + 1))].to_string(),
        // Repeat a slice (long files, many duplicates).
        _ => {
            let a = floor(text, rng.below(text.len() + 1));
            let b = floor(text, a + rng.below(text.len() - a + 1));
            format!("{}{}{}", &text[..b], text[a..b].repeat(1 + rng.below(8)), &text[b..])
        }
    }
}

fn floor(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Words, numbers, runs of whitespace and single other chars.
fn tokenize(text: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    let class = |c: char| {
        if c.is_alphanumeric() || c == '_' || c == '.' {
            0
        } else if c.is_whitespace() {
            1
        } else {
            2
        }
    };
    for c in text.chars() {
        match tokens.last_mut() {
            Some(last) if class(c) != 2 && last.chars().next().map(class) == Some(class(c)) => last.push(c),
            _ => tokens.push(c.to_string()),
        }
    }
    tokens
}

/// Text from the language's tokens, with random chars mixed in.
fn random_text(rng: &mut Rng) -> String {
    let n = rng.below(60);
    (0..n)
        .map(|_| match rng.below(8) {
            0 => char::from_u32(rng.below(0x800) as u32).unwrap_or('?').to_string(),
            _ => TOKENS[rng.below(TOKENS.len())].to_string(),
        })
        .collect::<Vec<_>>()
        .join(if rng.below(2) == 0 { " " } else { "" })
}

#[test]
fn models_never_panic() {
    let seeds = seeds();
    assert!(seeds.len() > 10, "seeds missing");
    let mut rng = Rng::new(0x6e6e_6300);
    let start = Instant::now();
    let (mut cases, mut checked) = (0, 0);
    // Every seed as is, first.
    for seed in &seeds {
        checked += usize::from(guarded("nn", seed.as_bytes(), || model_case(seed)));
        cases += 1;
    }
    while cases < 200_000 && start.elapsed() < budget() {
        let text = if rng.below(8) == 0 {
            random_text(&mut rng)
        } else {
            let mut text = seeds[rng.below(seeds.len())].clone();
            // Mostly one mutation, so that many cases still check and reach
            // autodiff; sometimes a few.
            let rounds = if rng.below(2) == 0 { 1 } else { 1 + rng.below(3) };
            for _ in 0..rounds {
                text = mutate(&mut rng, &text, &seeds);
            }
            text
        };
        checked += usize::from(guarded("nn", text.as_bytes(), || model_case(&text)));
        cases += 1;
    }
    assert!(cases >= 200, "only {cases} cases in {:?}", start.elapsed());
    eprintln!("models_never_panic: {cases} cases ({checked} checked) in {:.1?}", start.elapsed());
}

// ---------------------------------------------------------------------------
// CSV bytes

/// Programs whose data blocks cover every kind of binding.
fn csv_programs() -> Vec<Program> {
    [
        "data { input x[3] target y[1] } model { out = dense(x, 1) } loss mse(out, y)",
        "data { input x[2] target y = one_hot(3) } model { out = dense(x, 3, softmax) } loss cross_entropy(out, y)",
        "data { input x = columns(a, b) standardize  target y = column(y) / 10 standardize }
         model { out = dense(x, 1) } loss mse(out, y)",
        "data { input x[2] = rest() * 1e30  target y = one_hot(c, 2) }
         model { out = dense(x, 2, softmax) } loss cross_entropy(out, y)",
        "data { input x = columns(1, b) target y = column(3) } model { out = dense(x, 1) } loss mse(out, y)",
        "data { input x = columns(a, b) fill(mean, indicator) standardize  input c = one_hot(c, 3)  target y = one_hot(y, 2)  missing = drop }
         model { out = dense(concat(x, c), 2, softmax) } loss cross_entropy(out, y)",
        "data { input x = columns(a) fill(median)  target y = column(y) }
         model { out = dense(x, 3, softmax) } loss cross_entropy(out, y)",
    ]
    .iter()
    .map(|text| common::program(text))
    .collect()
}

const CELLS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "-1",
    "0.5",
    "1.5",
    "1e3",
    "1e38",
    "1e39",
    "-1e39",
    "1e308",
    "1e309",
    "1e-320",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "infinity",
    "",
    " ",
    " 1 ",
    "x",
    "a",
    "b",
    "c",
    "y",
    "NA",
    "?",
    "Adelie",
    "\"1\"",
    "\"a\"",
    "\"1,2\"",
    "\"",
    "\"\"",
    "é",
    "\u{feff}",
    "1,5",
    "0x1",
    "+3",
    ".5",
    "5.",
    "--1",
    "1e",
    "\u{1F600}",
];

fn random_csv(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    if rng.below(8) == 0 {
        out.extend_from_slice(b"\xEF\xBB\xBF");
    }
    let width = 1 + rng.below(5);
    let rows = rng.below(6);
    let end: &[u8] = [b"\n".as_slice(), b"\r\n", b"\r"][rng.below(3)];
    for row in 0..=rows {
        let cells = if rng.below(6) == 0 { rng.below(7) } else { width };
        let line: Vec<&str> = (0..cells)
            .map(|_| match row {
                0 if rng.below(2) == 0 => ["a", "b", "c", "y", "a", "", "1"][rng.below(7)],
                _ => CELLS[rng.below(CELLS.len())],
            })
            .collect();
        out.extend_from_slice(line.join(if rng.below(20) == 0 { ";" } else { "," }).as_bytes());
        out.extend_from_slice(end);
        if rng.below(10) == 0 {
            out.extend_from_slice(end);
        }
    }
    // Now and then, raw byte damage.
    if rng.below(4) == 0 {
        for _ in 0..1 + rng.below(3) {
            if out.is_empty() {
                break;
            }
            let i = rng.below(out.len());
            out[i] = rng.below(256) as u8;
        }
    }
    out
}

#[test]
fn csv_never_panics() {
    let programs = csv_programs();
    let mut rng = Rng::new(0xc5f0);
    let start = Instant::now();
    let mut cases = 0;
    while cases < 200_000 && start.elapsed() < budget() {
        let bytes = random_csv(&mut rng);
        let program = &programs[rng.below(programs.len())];
        guarded("csv", &bytes, || csv_case(program, &bytes));
        cases += 1;
    }
    assert!(cases >= 200, "only {cases} cases in {:?}", start.elapsed());
    eprintln!("csv_never_panics: {cases} cases in {:.1?}", start.elapsed());
}

// ---------------------------------------------------------------------------
// Regressions

/// Every input that once crashed, replayed: `.nn` files through the model
/// case, `.csv` files through the CSV case for every program.
#[test]
fn regressions_replay() {
    let dir = root().join("tests/fuzz-failures");
    let models = files(&dir, "nn");
    let csvs = files(&dir, "csv");
    assert!(!models.is_empty() || !csvs.is_empty(), "no regression files in {}", dir.display());
    for path in models {
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        guarded("nn", &bytes, || model_case(&text));
    }
    let programs = csv_programs();
    for path in csvs {
        let bytes = std::fs::read(&path).unwrap();
        for program in &programs {
            guarded("csv", &bytes, || csv_case(program, &bytes));
        }
    }
}
