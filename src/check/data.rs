//! The `data { .. }` block: what each `input` and `target` reads.
//!
//! ```text
//! input  x[4]                                  # 4 columns by position
//! input  x = columns(sepal_length, petal_width) standardize
//! input  x[64] = rest() / 16                   # every column not bound elsewhere
//! target y = one_hot(species, 3)               # a class column, by name
//! target y = one_hot(3)                        # ... or by position (the last)
//! target y = column(progression) standardize
//! ```
//!
//! Names are looked up in the CSV header when the data is read; numbers in
//! `columns(..)` are 1-based positions, and `range(1, 4)` stands for 1, 2, 3, 4.

use super::{const_value, count, errors};
use crate::diag::Diagnostic;
use crate::ir::program::{ColumnRef, Columns, Encoding};
use crate::syntax::ast::{self, BinOp, Expr, ExprKind};

/// Data sources a binding may name.
pub const SOURCES: &[&str] = &["columns", "column", "rest", "one_hot"];
/// Words allowed after a binding.
pub const MODIFIERS: &[&str] = &["standardize"];

/// A checked binding, before it is given its index in the graph.
pub struct Spec {
    pub columns: Columns,
    pub encoding: Encoding,
    pub scale: f64,
    pub standardize: bool,
}

/// Check one declaration.
pub fn spec(decl: &ast::DataDecl, diags: &mut Vec<Diagnostic>) -> Option<Spec> {
    let mut ok = true;
    let mut standardize = false;
    for modifier in &decl.modifiers {
        match modifier.name.as_str() {
            "standardize" => standardize = true,
            name => {
                diags.push(errors::unknown_function("data modifier", name, modifier.span, MODIFIERS.iter().copied()));
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
                    if decl.kind == ast::DataKind::Input {
                        diags.push(errors::misplaced(
                            "`one_hot`",
                            source.span,
                            "one-hot encoding applies to a `target`",
                        ));
                        return None;
                    }
                    let (column, classes_expr) = match values.as_slice() {
                        [classes] => (Columns::Positional, *classes),
                        [column, classes] => (Columns::List(vec![column_ref(column, diags)?]), *classes),
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
                    let classes = count(classes_expr, "a number of classes", diags)?;
                    if classes < 2 {
                        diags.push(errors::bad_value(
                            format!("`one_hot` needs at least 2 classes, got {classes}"),
                            classes_expr.span,
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
                    if standardize || scale != 1.0 {
                        diags.push(errors::misplaced(
                            "scaling a one-hot target",
                            decl.span,
                            "`standardize` and `/ n` apply to numeric columns, not classes",
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
    ok.then_some(Spec { columns, encoding, scale, standardize })
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
