//! Diagnostics: what went wrong in a `.nn` file, and where.
//!
//! Error *data* ([`Diagnostic`]) is kept apart from *rendering*
//! ([`render`]), which goes through miette's graphical handler: the file
//! name with `line:col`, the source line, and a caret or underline under the
//! offending token. Stages collect diagnostics instead of stopping at the
//! first one, so one run reports every independent mistake.

use crate::span::{Span, line_col};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};
use std::fmt;
use std::sync::Arc;

/// One error in a model file, with a stable code (`E0101`) and labelled spans.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// Stable code, e.g. `E0201`; documented in the README.
    pub code: &'static str,
    /// Lowercase, no trailing full stop: "unknown activation `tahn`".
    pub message: String,
    /// The first label is the primary one (the caret); others add context.
    pub labels: Vec<Label>,
    /// A suggestion such as "did you mean `tanh`?".
    pub help: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

impl Diagnostic {
    pub fn new(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic { code, message: message.into(), labels: Vec::new(), help: None }
    }

    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label { span, message: message.into() });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// The primary span, if the diagnostic points anywhere.
    pub fn span(&self) -> Option<Span> {
        self.labels.first().map(|label| label.span)
    }
}

/// The diagnostic joined with its source, as miette wants it.
struct Report<'a> {
    diag: &'a Diagnostic,
    source: NamedSource<Arc<str>>,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.diag.fmt(f)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diag.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let labels = self.diag.labels.iter().enumerate().map(|(i, label)| {
            let span = (label.span.start as usize, label.span.len());
            let text = (!label.message.is_empty()).then(|| label.message.clone());
            if i == 0 { LabeledSpan::new_primary_with_span(text, span) } else { LabeledSpan::new_with_span(text, span) }
        });
        Some(Box::new(labels))
    }
}

/// How to draw diagnostics: with colour for a terminal, plain for files and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Color,
    Plain,
}

/// Render diagnostics against their source, one after another.
///
/// Each starts with a `file:line:col` header (so editors and `grep` find it)
/// followed by miette's drawing of the source with labels.
pub fn render(diags: &[Diagnostic], file_name: &str, source: &str, style: Style) -> String {
    let theme = match style {
        Style::Color => GraphicalTheme::unicode(),
        Style::Plain => GraphicalTheme::unicode_nocolor(),
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100).with_links(false);
    // One copy of the source for all the diagnostics, not one each.
    let shared: Arc<str> = Arc::from(source);
    let mut out = String::new();
    for diag in diags {
        let report = Report { diag, source: NamedSource::new(file_name, shared.clone()) };
        let location = match diag.span() {
            Some(span) => {
                let (line, col) = line_col(source, span.start as usize);
                format!("{file_name}:{line}:{col}")
            }
            None => file_name.to_string(),
        };
        out.push_str(&format!("error[{}]: {}\n  --> {location}\n", diag.code, diag.message));
        if has_long_lines(source, diag) {
            out.push_str(&excerpts(source, diag));
            continue;
        }
        let mut drawn = String::new();
        if handler.render_report(&mut drawn, &report).is_ok() {
            // miette starts with the code and the message, which our header
            // already gave; keep the drawing from the source box on.
            let body: Vec<&str> = drawn.lines().skip_while(|l| !l.trim_start().starts_with(['╭', ','])).collect();
            out.push_str(&body.join("\n"));
            out.push('\n');
        }
    }
    out
}

/// Lines longer than this (in chars) are not drawn whole: miette pads with
/// `format!("{:width$}")`, which panics past 65535 columns, and a megabyte
/// of one line helps no one. Such diagnostics get [`excerpts`] instead.
const MAX_DRAWN_LINE: usize = 1000;

/// Whether a label's lines, or the lines around them that miette shows as
/// context, are too long to draw.
fn has_long_lines(source: &str, diag: &Diagnostic) -> bool {
    diag.labels.iter().any(|label| {
        let start = (label.span.start as usize).min(source.len());
        let end = (label.span.end as usize).clamp(start, source.len());
        // From the start of the line before to the end of the line after.
        let mut from = source[..start].rfind('\n').unwrap_or(0);
        from = source[..from].rfind('\n').map_or(0, |i| i + 1);
        let mut to = source[end..].find('\n').map_or(source.len(), |i| end + i + 1);
        to = source[to..].find('\n').map_or(source.len(), |i| to + i);
        source[from..to].split('\n').any(|line| line.len() > MAX_DRAWN_LINE && line.chars().count() > MAX_DRAWN_LINE)
    })
}

/// Each label as a short window of its line with a caret, for lines too
/// long to draw whole.
fn excerpts(source: &str, diag: &Diagnostic) -> String {
    const CONTEXT: usize = 40;
    let mut out = String::new();
    for label in &diag.labels {
        let start = (label.span.start as usize).min(source.len());
        let (line, col) = line_col(source, start);
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let text = source[line_start..].split('\n').next().unwrap_or_default().trim_end_matches('\r');
        let chars: Vec<char> = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let at = (col - 1).min(chars.len());
        let width = source.get(label.span.range()).map_or(1, |t| t.chars().count()).clamp(1, CONTEXT);
        let from = at.saturating_sub(CONTEXT);
        let to = (at + width + CONTEXT).min(chars.len());
        let before = if from > 0 { "…" } else { "" };
        let after = if to < chars.len() { "…" } else { "" };
        let window: String = chars[from..to].iter().collect();
        let gutter = " ".repeat(line.to_string().len());
        let pad = " ".repeat(before.chars().count() + at - from);
        out.push_str(&format!("{gutter} │ (a line of {} chars, shown around column {col})\n", chars.len()));
        out.push_str(&format!("{line} │ {before}{window}{after}\n"));
        out.push_str(&format!("{gutter} │ {pad}{} {}\n", "^".repeat(width), label.message));
    }
    if let Some(help) = &diag.help {
        out.push_str(&format!("  help: {help}\n"));
    }
    out
}

/// Edit distance, for "did you mean" suggestions.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate to `name`, if it is close enough to be a likely typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = name.chars().count();
    if len > 256 {
        return None;
    }
    candidates
        .into_iter()
        // The distance is at least the difference in length: skip the
        // hopeless candidates before the quadratic distance (names and CSV
        // headers may be megabytes long).
        .filter(|c| {
            let c_len = c.chars().count();
            len.abs_diff(c_len) <= 2.max(c_len / 3)
        })
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
