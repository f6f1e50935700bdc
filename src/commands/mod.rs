//! The subcommands, and what they share: reading the model, rendering
//! errors, writing files atomically.

pub mod cv;
pub mod draw;
pub mod eval;
pub mod export;
pub mod gradcheck;
pub mod inspect;
pub mod plot;
pub mod predict;
pub mod progress;
pub mod report;
pub mod run;

use nnc::diag::{self, Diagnostic, Style};
use nnc::pipeline::{self, Frontend, FrontendError};
use nnc::runtime::data::{self, BindError};
use nnc::runtime::weights;
use std::io::{IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;

/// Why a command failed; each maps to an exit code.
pub enum Failure {
    /// The input is wrong (exit 1); the text is already rendered.
    Input(String),
    /// Flags are wrong (exit 2).
    Usage(String),
    /// Training diverged (exit 3).
    Diverged(String),
    /// Ctrl-C stopped training; the outputs are written (exit 130).
    Interrupted(String),
}

impl Failure {
    pub fn report(self) -> ExitCode {
        let (text, code) = match self {
            Failure::Input(text) => (text, 1),
            Failure::Usage(text) => (format!("error: {text}\n"), 2),
            Failure::Diverged(text) => (format!("error: {text}\n"), 3),
            Failure::Interrupted(text) => (text, nnc::runtime::interrupt::EXIT_CODE),
        };
        eprint!("{text}");
        if !text.ends_with('\n') {
            eprintln!();
        }
        ExitCode::from(code)
    }

    /// A plain message about the input.
    pub fn input(message: impl std::fmt::Display) -> Failure {
        Failure::Input(format!("error: {message}\n"))
    }
}

/// Colour for a terminal, plain otherwise (and with `NO_COLOR`).
pub fn style() -> Style {
    if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() { Style::Color } else { Style::Plain }
}

/// A model file read, parsed and checked.
pub struct Model {
    pub path: String,
    pub text: String,
    pub front: Frontend,
    /// The categories counted in the data (or saved with the weights) that
    /// the model was checked with.
    pub categories: nnc::ir::program::Categories,
}

/// The metadata key of a weighted loss's weights in a weights file.
pub const LOSS_WEIGHTS_KEY: &str = "nnc.loss_weights";

impl Model {
    /// The model checked again with `weights = balanced` resolved to
    /// `values` (a no-op for other models).
    pub fn with_class_weights(&self, values: &[f64]) -> Result<Model, Failure> {
        match pipeline::frontend_weighted(&self.text, &self.categories, Some(values)) {
            Ok(front) => Ok(Model {
                front,
                path: self.path.clone(),
                text: self.text.clone(),
                categories: self.categories.clone(),
            }),
            Err(diags) => Err(model_errors(&diags, &self.path, &self.text)),
        }
    }

    /// Whether the loss has `weights = balanced` not yet counted.
    pub fn needs_class_weights(&self) -> bool {
        self.front.program.loss_weights.as_ref().is_some_and(|w| w.balanced && !w.resolved)
    }

    /// `weights = balanced` counted on `train` (the training rows) and the
    /// model checked again with them; `data` names the file in the error
    /// when a class has no training row.
    pub fn balance(self, bound: &data::Bound, data: &str) -> Result<Model, Failure> {
        if self.needs_class_weights() { self.balanced(bound, data) } else { Ok(self) }
    }

    /// [`Model::balance`] for a model kept as it is (one per fold).
    pub fn balanced(&self, bound: &data::Bound, data: &str) -> Result<Model, Failure> {
        let train = &bound.train;
        let program = &self.front.program;
        match nnc::runtime::class_weights::balanced(program, train) {
            Ok(values) => self.with_class_weights(&values),
            Err(absent) => {
                let span = program.loss_weights.as_ref().map_or_else(Default::default, |w| w.span);
                let name = class_names(program, &bound.transforms).and_then(|n| n.get(absent).cloned());
                let name = name.unwrap_or_else(|| absent.to_string());
                let diag = Diagnostic::new(
                    "E0301",
                    format!(
                        "`weights = balanced` needs every class in the training rows, and class `{name}` has none of the {} training rows of {data}",
                        train.rows
                    ),
                )
                .with_label(span, "balanced over the training rows")
                .with_help(
                    "give the weights as a list (`weights = [1, 2, 1]`), or keep some rows of that class for \
                     training (a validation split may have held them all out)",
                );
                Err(model_errors(&[diag], &self.path, &self.text))
            }
        }
    }

    /// The weighted loss's weights for the weights file, and by class name.
    pub fn loss_weights_json(&self) -> Option<String> {
        let w = self.front.program.loss_weights.as_ref()?;
        let json = serde_json::json!({
            "argument": w.kind.argument(),
            "balanced": w.balanced,
            "values": w.values,
        });
        Some(json.to_string())
    }
}

/// The target's class names when its labels were names (`Adelie`), from
/// the transforms fitted or saved with the data.
pub fn class_names(program: &nnc::ir::program::Program, transforms: &[data::Transform]) -> Option<Vec<String>> {
    let i = program.data.iter().position(|binding| binding.is_target)?;
    let t = transforms.get(i)?;
    let named = !t.categories.is_empty() && !t.categories_are_indices();
    (matches!(program.task, nnc::ir::program::Task::Classification { .. }) && named).then(|| t.categories.clone())
}

/// Model files larger than this are refused unread: the parser would give
/// up on one long before (see `syntax::parse`), and `/dev/zero` never ends.
const MAX_MODEL_BYTES: u64 = 64 << 20;

pub fn read_model(path: &Path) -> Result<Model, Failure> {
    let (name, text) = read_model_text(path)?;
    match pipeline::frontend(&text) {
        Ok(front) => Ok(Model { path: name, text, front, categories: Default::default() }),
        Err(diags) => Err(model_errors(&diags, &name, &text)),
    }
}

/// A model file and its training data: when a `one_hot(column)` binding
/// leaves its number of categories to the data, the data is read with the
/// model's bindings first and the model checked with the categories found.
/// Returns the table read, if it was read.
pub fn read_model_with_data(
    path: &Path,
    data: &Path,
    options: data::ReadOptions,
) -> Result<(Model, Option<data::Table>), Failure> {
    let (name, text) = read_model_text(path)?;
    let mut table = None;
    let mut counted = nnc::ir::program::Categories::new();
    let front = pipeline::frontend_counting(&text, |bindings| {
        let read = data::read_file(data, bindings, options)?;
        let categories = data::categories(bindings, &read)?;
        table = Some(read);
        counted = categories.clone();
        Ok(categories)
    });
    match front {
        Ok(front) => Ok((Model { path: name, text, front, categories: counted }, table)),
        Err(FrontendError::Model(diags)) => Err(model_errors(&diags, &name, &text)),
        Err(FrontendError::Counting(BindError::Data(e))) => Err(Failure::input(e)),
        Err(FrontendError::Counting(BindError::Model(diags))) => Err(model_errors(&diags, &name, &text)),
    }
}

/// The model a weights file was trained from: the given model file, or,
/// without one, the source text the file embeds (`nnc.source`), named
/// `FILE:nnc.source` in diagnostics. A given model file whose text differs
/// from the embedded one gets a note (its tensors must still fit). A model
/// whose categories come from the data takes them from the file.
pub fn model_for_weights(model: Option<&Path>, weights_path: &Path, quiet: bool) -> Result<Model, Failure> {
    let weights_name = weights_path.display().to_string();
    let (name, text) = match model {
        Some(path) => read_model_text(path)?,
        None => {
            let metadata = weights::read_metadata(weights_path).map_err(Failure::input)?;
            let Some(text) = metadata.get(weights::SOURCE_KEY) else {
                return Err(Failure::Usage(format!(
                    "{weights_name} does not embed its model's source (it was saved by an older nnc): give the model file too"
                )));
            };
            (format!("{weights_name}:nnc.source"), text.clone())
        }
    };
    // An unreadable weights file is reported when its tensors are loaded.
    let metadata = || weights::read_metadata(weights_path).unwrap_or_default();
    if model.is_some()
        && !quiet
        && metadata().get(weights::SOURCE_HASH_KEY).is_some_and(|h| *h != weights::source_hash(&text))
    {
        eprintln!("note: {weights_name} was saved from a different version of {name} (the source changed)");
    }
    let mut counted = nnc::ir::program::Categories::new();
    let front = pipeline::frontend_counting(&text, |_| {
        let categories = weights::saved_categories(&metadata());
        counted = categories.clone();
        Ok::<_, std::convert::Infallible>(categories)
    });
    let model = match front {
        Ok(front) => Model { path: name, text, front, categories: counted },
        Err(FrontendError::Model(diags)) => return Err(model_errors(&diags, &name, &text)),
        Err(FrontendError::Counting(never)) => match never {},
    };
    if !model.needs_class_weights() {
        return Ok(model);
    }
    // `weights = balanced`: the weights counted in training, saved with them.
    let saved = metadata().get(LOSS_WEIGHTS_KEY).and_then(|json| {
        let value: serde_json::Value = serde_json::from_str(json).ok()?;
        value["values"].as_array()?.iter().map(|v| v.as_f64()).collect::<Option<Vec<f64>>>()
    });
    match saved {
        Some(values) => model.with_class_weights(&values),
        None => Err(Failure::input(format!(
            "{weights_name} has no `{LOSS_WEIGHTS_KEY}`: the class weights that `weights = balanced` counted in training are not saved in it"
        ))),
    }
}

pub fn read_model_text(path: &Path) -> Result<(String, String), Failure> {
    let name = path.display().to_string();
    if path.is_dir() {
        return Err(Failure::input(format!("{name} is a directory, not a model file")));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_MODEL_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| Failure::input(format!("cannot read {name}: {e}")))?;
    if bytes.len() as u64 > MAX_MODEL_BYTES {
        return Err(Failure::input(format!("{name} is larger than {} MiB: not a model file?", MAX_MODEL_BYTES >> 20)));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let before = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
        let (line, col) = nnc::span::line_col(before, valid);
        Failure::input(format!("{name}:{line}:{col}: the file is not UTF-8 text (byte 0x{:02X})", bytes[valid]))
    })?;
    Ok((name, text))
}

/// At most this many diagnostics are drawn (each costs a pass over the
/// file); the count says how many there were.
const MAX_SHOWN: usize = 100;

pub fn model_errors(diags: &[Diagnostic], name: &str, text: &str) -> Failure {
    let n = diags.len();
    let mut out = diag::render(&diags[..n.min(MAX_SHOWN)], name, text, style());
    if n > MAX_SHOWN {
        out.push_str(&format!("… and {} more not shown\n", n - MAX_SHOWN));
    }
    out.push_str(&format!("{n} error{} in {name}\n", if n == 1 { "" } else { "s" }));
    Failure::Input(out)
}

/// A data-binding failure, rendered against the model or the data file.
pub fn bind_error(error: BindError, model: &Model) -> Failure {
    match error {
        BindError::Data(e) => Failure::input(e),
        BindError::Model(diags) => model_errors(&diags, &model.path, &model.text),
    }
}

/// Write to a temporary file beside `path` and rename it into place, so no
/// half-written file is ever visible under the final name.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let fail = |e: std::io::Error| Failure::input(format!("cannot write {}: {e}", path.display()));
    if path.is_dir() {
        return Err(Failure::input(format!("cannot write {}: it is a directory", path.display())));
    }
    let file_name = path.file_name().ok_or_else(|| fail(std::io::Error::other("not a file name")))?;
    let tmp = path.with_file_name(format!(".{}.{}.tmp", file_name.to_string_lossy(), std::process::id()));
    let tracked = nnc::runtime::interrupt::track(&tmp);
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    drop(tracked);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(fail)
}

/// Check before any work that `path` can be written as an output (`what`:
/// "weights file", "log file", ...): not a directory, in a directory that
/// exists and takes a new file. A probe file is created beside it and
/// removed at once, so a run never trains for an hour and then fails to save.
pub fn check_output(path: &Path, what: &str) -> Result<(), Failure> {
    let fail = |why: String| Failure::input(format!("cannot write {what} {}: {why}", path.display()));
    if path.is_dir() {
        return Err(fail("it is a directory".into()));
    }
    let Some(file_name) = path.file_name() else {
        return Err(fail("not a file name".into()));
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let probe = dir.join(format!(".{}.{}.probe.tmp", file_name.to_string_lossy(), std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(fail(e.to_string())),
    }
}

/// Refuse an output file that is one of the inputs: `--log data.csv` would
/// replace the data with the log.
pub fn check_not_an_input(output: &Path, flag: &str, inputs: &[(&Path, &str)]) -> Result<(), Failure> {
    let Some(out) = canonical(output) else { return Ok(()) };
    for (input, what) in inputs {
        if canonical(input).is_some_and(|i| i == out) {
            return Err(Failure::Usage(format!(
                "{flag} {} would overwrite the {what}; choose another file",
                output.display()
            )));
        }
    }
    Ok(())
}

/// The absolute path of a file that may not exist yet (its directory must).
pub fn canonical(path: &Path) -> Option<std::path::PathBuf> {
    if let Ok(path) = path.canonicalize() {
        return Some(path);
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    Some(dir.canonicalize().ok()?.join(path.file_name()?))
}

/// `--delimiter`: one ASCII character, or `tab`.
pub fn parse_delimiter(text: &str) -> Result<u8, String> {
    match text {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        "space" => Ok(b' '),
        _ if text.len() == 1 && text.is_ascii() && text != "\"" && text != "\n" => Ok(text.as_bytes()[0]),
        _ => Err(format!("a delimiter is one character such as `;`, or `tab`; got `{text}`")),
    }
}

/// An internal error: a bug, not the user's fault.
pub fn internal(message: String) -> Failure {
    Failure::input(format!(
        "internal compiler error: {message}\n  (this is a bug in nnc; please report it with the model file)"
    ))
}

/// `x` with `digits` decimals, never `-0.000000`: a value that rounds to
/// zero prints without a sign.
pub fn fixed(x: f64, digits: usize) -> String {
    let text = format!("{x:.digits$}");
    match text.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_string(),
        _ => text,
    }
}

/// "1 epoch", "2 epochs".
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 { format!("{n} {noun}") } else { format!("{n} {noun}s") }
}

/// `nnc run data.csv model.nn`: say the arguments are swapped rather than
/// report a syntax error at the CSV's header.
pub fn check_argument_order(model: &Path, data: Option<&Path>, command: &str) -> Result<(), Failure> {
    let extension = |p: &Path| p.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
    let data_like = |p: &Path| matches!(extension(p).as_deref(), Some("csv" | "tsv" | "txt" | "parquet"));
    let model_like = |p: &Path| extension(p).as_deref() == Some("nn");
    if data_like(model) && (data.is_none_or(model_like)) {
        let data_text = data.map_or("DATA".to_string(), |d| d.display().to_string());
        let model_text = data.filter(|d| model_like(d)).map_or("MODEL.nn".to_string(), |d| d.display().to_string());
        return Err(Failure::Usage(format!(
            "{} looks like a data file, not a model: the model comes first, as in `nnc {command} {model_text} {}`",
            model.display(),
            if data.is_some() { model.display().to_string() } else { data_text }
        )));
    }
    Ok(())
}

/// A throughput with its unit: `35.2 k rows/s`, `1.48 M rows/s`.
pub fn rate(per_second: f64, unit: &str) -> String {
    match per_second {
        r if r >= 1e9 => format!("{:.2} G {unit}/s", r / 1e9),
        r if r >= 1e6 => format!("{:.2} M {unit}/s", r / 1e6),
        r if r >= 1e3 => format!("{:.1} k {unit}/s", r / 1e3),
        r => format!("{r:.0} {unit}/s"),
    }
}
