//! The `data { .. }` block: what each `input` and `target` reads.
//!
//! ```text
//! input  x[4]                                  # 4 columns by position
//! input  x = columns(sepal_length, petal_width) standardize
//! input  x[64] = rest() / 16                   # every column not bound elsewhere
//! target y = one_hot(species, 3)               # a class column, by name
//! target y = one_hot(species)                  # ... its classes counted in the data
//! target y = one_hot(3)                        # ... or by position (the last)
//! input  island = one_hot(island)              # a categorical input
//! target y = column(progression) standardize
//! input  x = columns(a, b) fill(median)        # missing cells get the training median
//! missing = drop                               # rows with a missing cell are dropped
//! ```
//!
//! Names are looked up in the CSV header when the data is read; numbers in
//! `columns(..)` are 1-based positions, and `range(1, 4)` stands for 1, 2, 3, 4.
//! A `one_hot(column)` without its number of categories takes it from
//! [`Categories`], counted in the data before checking; without data it is
//! an error (E0308).

use super::{const_value, count, errors};
use crate::diag::Diagnostic;
use crate::ir::program::{Categories, ColumnRef, Columns, Encoding, Fill, FillValue, Missing};
use crate::syntax::ast::{self, BinOp, Expr, ExprKind};

/// Data sources a binding may name.
pub const SOURCES: &[&str] = &["columns", "column", "rest", "one_hot"];
/// Words allowed after a binding.
pub const MODIFIERS: &[&str] = &["standardize", "fill"];
/// Settings of the `data` block.
pub const SETTINGS: &[&str] = &["missing"];

/// A checked binding, before it is given its index in the graph.
pub struct Spec {
    pub columns: Columns,
    pub encoding: Encoding,
    pub scale: f64,
    pub standardize: bool,
    pub fill: Option<Fill>,
}

impl Spec {
    /// The binding of `decl`, the `index`-th input or target.
    pub fn binding(self, decl: &ast::DataDecl, index: u32) -> crate::ir::program::Binding {
        crate::ir::program::Binding {
            name: decl.name.name.clone(),
            is_target: decl.kind == ast::DataKind::Target,
            index,
            columns: self.columns,
            encoding: self.encoding,
            scale: self.scale,
            standardize: self.standardize,
            class_indices: None,
            fill: self.fill,
            span: decl.span,
        }
    }
}

/// The `data` block's settings.
pub fn settings(block: &ast::DataBlock, diags: &mut Vec<Diagnostic>) -> Missing {
    let mut missing = Missing::Error;
    let mut seen: Vec<&ast::Setting> = Vec::new();
    for setting in &block.settings {
        if let Some(first) = seen.iter().find(|s| s.name.name == setting.name.name) {
            diags.push(errors::duplicate("setting", &setting.name.name, setting.name.span, first.name.span));
            continue;
        }
        seen.push(setting);
        match setting.name.name.as_str() {
            "missing" => match &setting.value.kind {
                ExprKind::Name(word) if word == "drop" => missing = Missing::Drop,
                ExprKind::Name(word) if word == "error" => missing = Missing::Error,
                _ => diags.push(errors::bad_value(
                    "`missing` is `drop` or `error`".to_string(),
                    setting.value.span,
                    "`missing = drop` drops rows with a missing cell in a bound column; \
                     to fill cells instead, write `fill(mean)` after a binding",
                )),
            },
            name => {
                diags.push(errors::unknown_function("data setting", name, setting.name.span, SETTINGS.iter().copied()))
            }
        }
    }
    missing
}

/// `fill(mean)`, `fill(median)`, `fill(0)`, with `indicator` as an optional
/// second argument.
fn fill(args: &[ast::Arg], span: crate::span::Span, diags: &mut Vec<Diagnostic>) -> Option<Fill> {
    let help = "write `fill(mean)`, `fill(median)` or `fill(0)`, and `fill(mean, indicator)` \
                for a 0/1 column marking the filled cells";
    if args.is_empty() || args.len() > 2 || args.iter().any(|a| a.name.is_some()) {
        diags.push(errors::arity("fill", "1 or 2 arguments (what to fill with, `indicator`)", args.len(), span));
        return None;
    }
    let value = match (&args[0].value.kind, const_value(&args[0].value)) {
        (ExprKind::Name(word), _) if word == "mean" => FillValue::Mean,
        (ExprKind::Name(word), _) if word == "median" => FillValue::Median,
        (_, Some(v)) if v.is_finite() => FillValue::Constant(v),
        _ => {
            diags.push(errors::bad_value("`fill` takes `mean`, `median` or a number".into(), args[0].value.span, help));
            return None;
        }
    };
    let indicator = match args.get(1).map(|a| &a.value) {
        None => false,
        Some(Expr { kind: ExprKind::Name(word), .. }) if word == "indicator" => true,
        Some(other) => {
            diags.push(errors::bad_value("the second argument of `fill` is `indicator`".into(), other.span, help));
            return None;
        }
    };
    Some(Fill { value, indicator })
}

/// Check one declaration.
/// With `categories` `None` (bindings read before the data is), a
/// `one_hot(column)` without its number gets 0 classes for now.
pub fn spec(decl: &ast::DataDecl, categories: Option<&Categories>, diags: &mut Vec<Diagnostic>) -> Option<Spec> {
    let mut ok = true;
    let mut standardize = false;
    let mut filled = None;
    for modifier in &decl.modifiers {
        match &modifier.kind {
            ExprKind::Name(name) if name == "standardize" => standardize = true,
            ExprKind::Call { callee, args } if callee.name == "fill" => match fill(args, modifier.span, diags) {
                Some(f) => filled = Some(f),
                None => ok = false,
            },
            ExprKind::Name(name) | ExprKind::Call { callee: ast::Ident { name, .. }, .. } => {
                let span = match &modifier.kind {
                    ExprKind::Call { callee, .. } => callee.span,
                    _ => modifier.span,
                };
                diags.push(errors::unknown_function("data modifier", name, span, MODIFIERS.iter().copied()));
                ok = false;
            }
            _ => {
                diags.push(errors::expected("a modifier such as `standardize`", modifier.span, "not a modifier"));
                ok = false;
            }
        }
    }
    let width = match &decl.width {
        Some(expr) => Some((count(expr, "a width", diags)?, expr.span)),
        None => None,
    };
    let (source, scale) = match &decl.source {
        Some(expr) => {
            let (source, scale) = split_scale(expr, diags)?;
            (Some(source), scale)
        }
        None => (None, 1.0),
    };
    let name = &decl.name.name;
    let (columns, encoding) = match source {
        None => match width {
            Some((width, _)) => (Columns::Positional, Encoding::Raw { width }),
            None => {
                diags.push(
                    Diagnostic::new("E0205", format!("`{name}` needs a width or a source"))
                        .with_label(decl.name.span, "which columns?")
                        .with_help(format!(
                            "write `{name}[n]` for n columns by position, `{name} = columns(a, b)` by header name, \
                             or `{name} = one_hot(column, k)` for a class column"
                        )),
                );
                return None;
            }
        },
        Some(source) => {
            let ExprKind::Call { callee, args } = &source.kind else {
                diags.push(errors::expected("a data source such as `columns(a, b)`", source.span, "not a data source"));
                return None;
            };
            for arg in args {
                if let Some(arg_name) = &arg.name {
                    diags.push(errors::unknown_argument(&callee.name, &arg_name.name, arg_name.span, &[]));
                    return None;
                }
            }
            let values: Vec<&Expr> = args.iter().map(|a| &a.value).collect();
            match callee.name.as_str() {
                "columns" | "column" => {
                    if values.is_empty() || (callee.name == "column" && values.len() != 1) {
                        let expected = if callee.name == "column" { "1 argument" } else { "at least 1 argument" };
                        diags.push(errors::arity(&callee.name, expected, values.len(), source.span));
                        return None;
                    }
                    let mut refs = Vec::new();
                    for value in &values {
                        refs.extend(column_refs(value, diags)?);
                    }
                    let n = refs.len() as u32;
                    if let Some((width, span)) = width
                        && width != n
                    {
                        diags.push(errors::bad_value(
                            format!("width {width} does not match the {n} column(s) listed"),
                            span,
                            "leave the width out: it is the number of columns listed",
                        ));
                        return None;
                    }
                    (Columns::List(refs), Encoding::Raw { width: n })
                }
                "rest" => {
                    if !values.is_empty() {
                        diags.push(errors::arity("rest", "no arguments", values.len(), source.span));
                        return None;
                    }
                    let Some((width, _)) = width else {
                        diags.push(
                            Diagnostic::new("E0205", "`rest()` needs a width")
                                .with_label(decl.name.span, "how many columns?")
                                .with_help(format!(
                                    "write `{name}[n] = rest()`; the data file is checked to have n more"
                                )),
                        );
                        return None;
                    };
                    (Columns::Rest, Encoding::Raw { width })
                }
                "one_hot" => {
                    let (column, classes_expr) = match values.as_slice() {
                        // `one_hot(species)`: a named column, its categories counted in the data.
                        [Expr { kind: ExprKind::Name(_), .. }] => {
                            (Columns::List(vec![column_ref(values[0], diags)?]), None)
                        }
                        [classes] => (Columns::Positional, Some(*classes)),
                        [column, classes] => (Columns::List(vec![column_ref(column, diags)?]), Some(*classes)),
                        _ => {
                            diags.push(errors::arity(
                                "one_hot",
                                "1 or 2 arguments (the column, the number of classes)",
                                values.len(),
                                source.span,
                            ));
                            return None;
                        }
                    };
                    let classes = match classes_expr {
                        Some(expr) => count(expr, "a number of classes", diags)?,
                        None => match categories.map(|c| c.get(name)) {
                            None => 0,
                            Some(Some(&k)) => k,
                            Some(None) => {
                                diags.push(
                                    Diagnostic::new(
                                        "E0308",
                                        format!("the number of categories of `{name}` comes from the data"),
                                    )
                                    .with_label(source.span, "counted in the data file")
                                    .with_help(format!(
                                        "give a data file, or write the number: `{name} = one_hot(column, k)`"
                                    )),
                                );
                                return None;
                            }
                        },
                    };
                    let classes_span = classes_expr.map_or(source.span, |e| e.span);
                    if classes < 2 && (classes_expr.is_some() || categories.is_some()) {
                        diags.push(errors::bad_value(
                            format!("`one_hot` needs at least 2 classes, got {classes}"),
                            classes_span,
                            "the number of classes is the width of the one-hot row",
                        ));
                        return None;
                    }
                    if let Some((width, span)) = width
                        && width != classes
                    {
                        diags.push(errors::bad_value(
                            format!("width {width} does not match `one_hot(.., {classes})`"),
                            span,
                            "leave the width out: `one_hot(column, k)` gives k columns",
                        ));
                        return None;
                    }
                    if standardize || scale != 1.0 || filled.is_some() {
                        diags.push(errors::misplaced(
                            "scaling or filling a one-hot binding",
                            decl.span,
                            "`standardize`, `fill` and `/ n` apply to numeric columns, not categories \
                             (a missing category is an error, or dropped with `missing = drop`)",
                        ));
                        return None;
                    }
                    (column, Encoding::OneHot { classes })
                }
                other => {
                    diags.push(errors::unknown_function("data source", other, callee.span, SOURCES.iter().copied()));
                    return None;
                }
            }
        }
    };
    ok.then_some(Spec { columns, encoding, scale, standardize, fill: filled })
}

/// `SOURCE / n` or `SOURCE * n`: the source and the factor to multiply by.
fn split_scale<'a>(expr: &'a Expr, diags: &mut Vec<Diagnostic>) -> Option<(&'a Expr, f64)> {
    let ExprKind::Binary { op, lhs, rhs } = &expr.kind else { return Some((expr, 1.0)) };
    let factor = match (op, const_value(rhs)) {
        (BinOp::Div, Some(n)) if n != 0.0 && n.is_finite() => 1.0 / n,
        (BinOp::Mul, Some(n)) if n != 0.0 && n.is_finite() => n,
        _ => {
            diags.push(errors::expected(
                "a data source, optionally scaled by a number: `rest() / 16`",
                expr.span,
                "not a data source",
            ));
            return None;
        }
    };
    let (source, inner) = split_scale(lhs, diags)?;
    Some((source, inner * factor))
}

/// One column, or `range(first, last)`: the 1-based positions first..=last.
fn column_refs(expr: &Expr, diags: &mut Vec<Diagnostic>) -> Option<Vec<ColumnRef>> {
    let ExprKind::Call { callee, args } = &expr.kind else { return Some(vec![column_ref(expr, diags)?]) };
    if callee.name != "range" {
        diags.push(errors::expected("a column, or `range(first, last)`", expr.span, "not a column"));
        return None;
    }
    let bounds: Vec<Option<f64>> = args.iter().map(|a| const_value(&a.value)).collect();
    match bounds.as_slice() {
        [Some(first), Some(last)]
            if first.fract() == 0.0 && last.fract() == 0.0 && *first >= 1.0 && first <= last && *last <= 1e6 =>
        {
            Some((*first as usize..=*last as usize).map(|c| ColumnRef::Index(c - 1, expr.span)).collect())
        }
        _ => {
            diags.push(errors::bad_value(
                "`range` takes two 1-based column positions, first ≤ last".to_string(),
                expr.span,
                "e.g. `columns(range(1, 4))` for the first four columns",
            ));
            None
        }
    }
}

/// A column by header name (`petal_width`) or 1-based position (`3`).
fn column_ref(expr: &Expr, diags: &mut Vec<Diagnostic>) -> Option<ColumnRef> {
    match &expr.kind {
        ExprKind::Name(name) => Some(ColumnRef::Name(name.clone(), expr.span)),
        ExprKind::Number(n) if n.fract() == 0.0 && *n >= 1.0 && *n <= 1e9 => {
            Some(ColumnRef::Index(*n as usize - 1, expr.span))
        }
        _ => {
            diags.push(errors::expected("a column: a header name or a 1-based position", expr.span, "not a column"));
            None
        }
    }
}
