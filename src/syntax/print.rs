//! The AST as text: a tree dump ([`ast`]) and `.nn` source ([`source`]).
//!
//! The dump is what `nnc ir --stage ast` shows: one node per line, two spaces
//! of indent per level, each node with its span as `@start..end`. Every field
//! of every node is there; absent optional parts (a data declaration without a
//! width, say) are simply not printed.
//!
//! For the file
//!
//! ```text
//! data { input x[3] standardize }
//! param w = 0
//! loss -w^2 + f(x, 2, [a])
//! train { optimizer = sgd(lr = 0.1) }
//! ```
//!
//! the dump is
//!
//! ```text
//! file
//!   data @0..31
//!     input @7..29
//!       ident x @13..14
//!       width
//!         number 3 @15..16
//!       modifier standardize @18..29
//!   param @32..43
//!     ident w @38..39
//!     number 0 @42..43
//!   loss @44..68
//!     binary + @49..68
//!       neg @49..53
//!         binary ^ @50..53
//!           name w @50..51
//!           number 2 @52..53
//!       call @56..68
//!         callee f @56..57
//!         name x @58..59
//!         number 2 @61..62
//!         list @64..67
//!           name a @65..66
//!   train @69..104
//!     setting @77..102
//!       ident optimizer @77..86
//!       call @89..102
//!         callee sgd @89..92
//!         arg lr @93..95
//!           number 0.1 @98..101
//! ```
//!
//! Identifiers are `ident` (a declared name), `callee`, `modifier` and
//! `arg NAME` (a named argument, its value below it); positional arguments sit
//! directly under their call. A `fn` item lists its `param`s, then its body.
//! Expressions are `number`, `name`, `call`, `neg`, `binary OP`, `list` and
//! `if` (condition, value, alternative). Numbers print as [`number`] does.
//!
//! [`source`] prints valid `.nn` text with only the parentheses precedence
//! needs, so `parse(source(parse(s)))` equals `parse(s)` up to spans. That
//! holds for any AST the parser produces; a hand-built AST with a negative,
//! infinite or NaN number, or a name that is not an identifier, prints as
//! something that does not parse back to the same tree.

use crate::syntax::ast::{BinOp, DataKind, Expr, ExprKind, File, Ident, Item, Setting};
use std::fmt::Write as _;

/// The tree dump of a whole file.
pub fn ast(file: &File) -> String {
    let mut out = String::from("file\n");
    for item in &file.items {
        dump_item(&mut out, 1, item);
    }
    out
}

/// `.nn` source for a whole file: one item per paragraph, one declaration,
/// layer or setting per line.
pub fn source(file: &File) -> String {
    let items: Vec<String> = file.items.iter().map(item_source).collect();
    items.join("\n")
}

/// The shortest text that parses back to the same number: `3`, `0.05`, `1e-7`.
pub fn number(value: f64) -> String {
    let text = format!("{value:?}");
    match text.strip_suffix(".0") {
        Some(integer) => integer.to_string(),
        None => text,
    }
}

/// An expression as `.nn` source.
pub fn expr(expr: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, expr);
    out
}

// ---------------------------------------------------------------------------
// Tree dump

fn line(out: &mut String, depth: usize, text: std::fmt::Arguments<'_>) {
    for _ in 0..depth {
        out.push_str("  ");
    }
    let _ = out.write_fmt(text);
    out.push('\n');
}

fn dump_ident(out: &mut String, depth: usize, role: &str, ident: &Ident) {
    line(out, depth, format_args!("{role} {} @{}", ident.name, ident.span));
}

/// The `name = value` settings of a `data` or `train` block.
fn dump_settings(out: &mut String, depth: usize, settings: &[Setting]) {
    for setting in settings {
        line(out, depth, format_args!("setting @{}", setting.span));
        dump_ident(out, depth + 1, "ident", &setting.name);
        dump_expr(out, depth + 1, &setting.value);
    }
}

fn dump_item(out: &mut String, depth: usize, item: &Item) {
    match item {
        Item::Data(block) => {
            line(out, depth, format_args!("data @{}", block.span));
            for decl in &block.decls {
                let kind = match decl.kind {
                    DataKind::Input => "input",
                    DataKind::Target => "target",
                };
                line(out, depth + 1, format_args!("{kind} @{}", decl.span));
                dump_ident(out, depth + 2, "ident", &decl.name);
                if let Some(width) = &decl.width {
                    line(out, depth + 2, format_args!("width"));
                    dump_expr(out, depth + 3, width);
                }
                if let Some(source) = &decl.source {
                    line(out, depth + 2, format_args!("source"));
                    dump_expr(out, depth + 3, source);
                }
                for modifier in &decl.modifiers {
                    match &modifier.kind {
                        ExprKind::Name(name) => {
                            line(out, depth + 2, format_args!("modifier {name} @{}", modifier.span))
                        }
                        _ => {
                            line(out, depth + 2, format_args!("modifier"));
                            dump_expr(out, depth + 3, modifier);
                        }
                    }
                }
            }
            dump_settings(out, depth + 1, &block.settings);
        }
        Item::Model(block) => {
            line(out, depth, format_args!("model @{}", block.span));
            for layer in &block.layers {
                line(out, depth + 1, format_args!("binding @{}", layer.span));
                dump_ident(out, depth + 2, "ident", &layer.name);
                dump_expr(out, depth + 2, &layer.value);
            }
        }
        Item::Param(param) => {
            line(out, depth, format_args!("param @{}", param.span));
            dump_ident(out, depth + 1, "ident", &param.name);
            dump_expr(out, depth + 1, &param.init);
        }
        Item::Fn(decl) => {
            line(out, depth, format_args!("fn @{}", decl.span));
            dump_ident(out, depth + 1, "ident", &decl.name);
            for param in &decl.params {
                dump_ident(out, depth + 1, "param", param);
            }
            dump_expr(out, depth + 1, &decl.body);
        }
        Item::Loss(loss) => {
            line(out, depth, format_args!("loss @{}", loss.span));
            dump_expr(out, depth + 1, &loss.expr);
        }
        Item::Train(block) => {
            line(out, depth, format_args!("train @{}", block.span));
            dump_settings(out, depth + 1, &block.settings);
        }
    }
}

fn dump_expr(out: &mut String, depth: usize, expr: &Expr) {
    let span = expr.span;
    match &expr.kind {
        ExprKind::Number(value) => line(out, depth, format_args!("number {} @{span}", number(*value))),
        ExprKind::Name(name) => line(out, depth, format_args!("name {name} @{span}")),
        ExprKind::Call { callee, args } => {
            line(out, depth, format_args!("call @{span}"));
            dump_ident(out, depth + 1, "callee", callee);
            for arg in args {
                match &arg.name {
                    Some(name) => {
                        dump_ident(out, depth + 1, "arg", name);
                        dump_expr(out, depth + 2, &arg.value);
                    }
                    None => dump_expr(out, depth + 1, &arg.value),
                }
            }
        }
        ExprKind::Neg(operand) => {
            line(out, depth, format_args!("neg @{span}"));
            dump_expr(out, depth + 1, operand);
        }
        ExprKind::Binary { op, lhs, rhs } => {
            line(out, depth, format_args!("binary {} @{span}", op.symbol()));
            dump_expr(out, depth + 1, lhs);
            dump_expr(out, depth + 1, rhs);
        }
        ExprKind::List(items) => {
            line(out, depth, format_args!("list @{span}"));
            for item in items {
                dump_expr(out, depth + 1, item);
            }
        }
        ExprKind::If { cond, then, otherwise } => {
            line(out, depth, format_args!("if @{span}"));
            dump_expr(out, depth + 1, cond);
            dump_expr(out, depth + 1, then);
            dump_expr(out, depth + 1, otherwise);
        }
    }
}

// ---------------------------------------------------------------------------
// Source

fn item_source(item: &Item) -> String {
    match item {
        Item::Data(block) => {
            let lines = block.decls.iter().map(|decl| {
                let mut text = match decl.kind {
                    DataKind::Input => format!("input {}", decl.name.name),
                    DataKind::Target => format!("target {}", decl.name.name),
                };
                if let Some(width) = &decl.width {
                    let _ = write!(text, "[{}]", expr(width));
                }
                if let Some(source) = &decl.source {
                    let _ = write!(text, " = {}", expr(source));
                }
                for modifier in &decl.modifiers {
                    let _ = write!(text, " {}", expr(modifier));
                }
                text
            });
            let settings = block.settings.iter().map(|s| format!("{} = {}", s.name.name, expr(&s.value)));
            block_source("data", lines.chain(settings))
        }
        Item::Model(block) => block_source(
            "model",
            block.layers.iter().map(|layer| format!("{} = {}", layer.name.name, expr(&layer.value))),
        ),
        Item::Param(param) => format!("param {} = {}\n", param.name.name, expr(&param.init)),
        Item::Fn(decl) => {
            let params: Vec<&str> = decl.params.iter().map(|p| p.name.as_str()).collect();
            format!("fn {}({}) = {}\n", decl.name.name, params.join(", "), expr(&decl.body))
        }
        Item::Loss(loss) => format!("loss {}\n", expr(&loss.expr)),
        Item::Train(block) => block_source(
            "train",
            block.settings.iter().map(|setting| format!("{} = {}", setting.name.name, expr(&setting.value))),
        ),
    }
}

fn block_source(keyword: &str, lines: impl Iterator<Item = String>) -> String {
    let mut out = format!("{keyword} {{\n");
    let mut empty = true;
    for text in lines {
        let _ = writeln!(out, "  {text}");
        empty = false;
    }
    if empty {
        return format!("{keyword} {{}}\n");
    }
    out.push_str("}\n");
    out
}

/// Binding strength: `if` 0, comparisons 1, `+ -` 2, `* /` 3, prefix minus
/// 4, `^` 5, atoms 6.
fn precedence(expr: &Expr) -> u8 {
    match &expr.kind {
        ExprKind::If { .. } => 0,
        ExprKind::Binary { op, .. } if is_comparison(*op) => 1,
        ExprKind::Binary { op: BinOp::Add | BinOp::Sub, .. } => 2,
        ExprKind::Binary { op: BinOp::Mul | BinOp::Div, .. } => 3,
        ExprKind::Neg(_) => 4,
        ExprKind::Number(value) if value.is_sign_negative() => 4,
        ExprKind::Binary { op: BinOp::Pow, .. } => 5,
        _ => 6,
    }
}

fn is_comparison(op: BinOp) -> bool {
    matches!(op, BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne)
}

/// Writes `expr`, in parentheses if it binds looser than `min`.
fn write_operand(out: &mut String, expr: &Expr, min: u8) {
    if precedence(expr) < min {
        out.push('(');
        write_expr(out, expr);
        out.push(')');
    } else {
        write_expr(out, expr);
    }
}

fn write_expr(out: &mut String, expr: &Expr) {
    match &expr.kind {
        ExprKind::Number(value) => out.push_str(&number(*value)),
        ExprKind::Name(name) => out.push_str(name),
        ExprKind::Call { callee, args } => {
            out.push_str(&callee.name);
            out.push('(');
            for (i, arg) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                if let Some(name) = &arg.name {
                    out.push_str(&name.name);
                    out.push_str(" = ");
                }
                write_expr(out, &arg.value);
            }
            out.push(')');
        }
        ExprKind::Neg(operand) => {
            out.push('-');
            write_operand(out, operand, 4);
        }
        ExprKind::Binary { op, lhs, rhs } => {
            // Left-associative operators need parentheses on an equal-strength
            // right operand; `^` is right-associative and takes a negated exponent.
            // Comparisons do not chain: both operands bind tighter.
            let (lhs_min, rhs_min) = match op {
                BinOp::Add | BinOp::Sub => (2, 3),
                BinOp::Mul | BinOp::Div => (3, 4),
                BinOp::Pow => (6, 4),
                _ => (2, 2),
            };
            write_operand(out, lhs, lhs_min);
            match op {
                BinOp::Pow => out.push('^'),
                _ => {
                    out.push(' ');
                    out.push_str(op.symbol());
                    out.push(' ');
                }
            }
            write_operand(out, rhs, rhs_min);
        }
        ExprKind::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, item);
            }
            out.push(']');
        }
        ExprKind::If { cond, then, otherwise } => {
            // The condition and the `then` branch are comparisons at most; the
            // `else` branch may be another conditional.
            out.push_str("if ");
            write_operand(out, cond, 1);
            out.push_str(" then ");
            write_operand(out, then, 1);
            out.push_str(" else ");
            write_expr(out, otherwise);
        }
    }
}
