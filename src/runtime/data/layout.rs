//! Which columns of the file each binding reads: by position, by header
//! name, or "the rest". A name the file lacks is a diagnostic in the model
//! file (with a suggestion); a column bound twice too.

use super::{BindError, shorten};
use crate::diag::{Diagnostic, suggest};
use crate::ir::program::{Binding, ColumnRef, Columns};

/// What a data file says about its columns before any row is read.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub file: String,
    /// Column names, when the file has them (a CSV header line, Parquet).
    pub names: Option<Vec<String>>,
    pub width: usize,
}

impl Header {
    /// A column for messages: ``column `name` `` by its header name, or
    /// `column N` (1-based) without a header.
    pub fn column_name(&self, c: usize) -> String {
        match &self.names {
            Some(names) => format!("column `{}`", shorten(&names[c])),
            None => format!("column {}", c + 1),
        }
    }

    fn error(&self, line: Option<usize>, message: String, help: Option<String>) -> super::DataError {
        super::DataError { file: self.file.clone(), line, column: None, message, help }
    }
}

/// The CSV columns (0-based) each binding reads, in `bindings` order;
/// `None` for a target that is not in the file (prediction without labels).
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub columns: Vec<Option<Vec<usize>>>,
}

/// Decide which columns each binding reads. With `targets_optional`, a file
/// that lacks the targets (for prediction) binds inputs only.
pub fn resolve(bindings: &[Binding], table: &Header, targets_optional: bool) -> Result<Layout, BindError> {
    let all = resolve_with(bindings, table, true);
    match all {
        Err(_) if targets_optional => resolve_with(bindings, table, false).map_err(|_| all.unwrap_err()),
        result => result,
    }
}

fn resolve_with(bindings: &[Binding], table: &Header, with_targets: bool) -> Result<Layout, BindError> {
    let bound: Vec<&Binding> = bindings.iter().filter(|b| with_targets || !b.is_target).collect();
    let mut columns: Vec<Option<Vec<usize>>> = vec![None; bindings.len()];
    let mut diags = Vec::new();
    let mut owner: Vec<Option<&str>> = vec![None; table.width];
    // Named and numbered columns.
    for (i, binding) in bindings.iter().enumerate() {
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
    let positional: Vec<usize> = (0..bindings.len())
        .filter(|&i| bound.contains(&&bindings[i]) && bindings[i].columns == Columns::Positional)
        .collect();
    let all_positional = positional.len() == bound.len();
    let wanted: usize = positional.iter().map(|&i| bindings[i].column_count()).sum();
    if all_positional && wanted != table.width {
        let summary = describe(bindings, with_targets);
        let columns = if table.width == 1 { "1 column".to_string() } else { format!("{} columns", table.width) };
        let help = format!("{summary}; name the columns (`x = columns(a, b)`) to use some of them");
        return Err(BindError::Data(table.error(
            Some(1),
            format!("the file has {columns} but the model's data block binds {wanted} by position"),
            Some(help),
        )));
    }
    let mut next = 0;
    for &i in positional.iter().filter(|&&i| !bindings[i].is_target) {
        let n = bindings[i].column_count();
        columns[i] = Some((next..next + n).collect());
        next += n;
    }
    let mut end = table.width;
    for &i in positional.iter().filter(|&&i| bindings[i].is_target).rev() {
        let n = bindings[i].column_count();
        if n > end {
            return Err(BindError::Data(table.error(
                None,
                format!("the file has too few columns for `{}`", bindings[i].name),
                None,
            )));
        }
        columns[i] = Some((end - n..end).collect());
        end -= n;
    }
    for &i in &positional {
        for &c in columns[i].as_ref().expect("assigned above") {
            claim(&mut owner, table, c, &bindings[i], bindings[i].span, &mut diags);
        }
    }
    // The rest: every column nobody else reads.
    for (i, binding) in bindings.iter().enumerate() {
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
    table: &Header,
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

fn lookup(table: &Header, r: &ColumnRef) -> Result<usize, Diagnostic> {
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
            let Some(header) = &table.names else {
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

fn describe(bindings: &[Binding], with_targets: bool) -> String {
    let parts: Vec<String> = bindings
        .iter()
        .filter(|b| with_targets || !b.is_target)
        .map(|b| format!("{}: {} column(s)", b.name, b.column_count()))
        .collect();
    parts.join(", ")
}
