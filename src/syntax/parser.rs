//! The parser: pest pairs → AST, and pest errors → [`Diagnostic`]s.
//!
//! Parsing runs in three steps:
//! 1. [`scan_brackets`] counts bracket nesting (outside comments) and rejects
//!    anything deeper than [`MAX_DEPTH`]: brackets are the grammar's only
//!    recursion, so this bounds the stack pest and [`Builder`] use, whatever the
//!    input. It also remembers unclosed brackets for the "never closed" label.
//! 2. pest runs `grammar/nn.pest` under a call limit ([`CALL_LIMIT`]).
//! 3. [`Builder`] folds the flat operator sequences into the AST, computing
//!    spans from the children, and rejects expressions more than [`MAX_DEPTH`]
//!    nodes deep (`a + b + … ` with hundreds of terms, `- - - … x`), so that no
//!    later stage recurses without bound either.

use crate::diag::Diagnostic;
use crate::span::Span;
use crate::syntax::ast::{
    Arg, BinOp, Binding, DataBlock, DataDecl, DataKind, Expr, ExprKind, File, Ident, Item,
    LossDecl, ModelBlock, ParamDecl, Setting, TrainBlock,
};
use pest::Parser as _;
use pest::error::{Error as PestError, ErrorVariant, InputLocation};
use pest::iterators::Pair;
use std::num::NonZeroUsize;
use std::sync::Once;

#[derive(pest_derive::Parser)]
#[grammar = "grammar/nn.pest"]
struct NnParser;

/// The deepest bracket nesting, and the deepest expression tree, accepted.
pub const MAX_DEPTH: usize = 200;

/// pest's budget of rule calls per parse: far above what any real model file
/// needs (about 30 calls per byte), low enough to stop a pathological input
/// within a second. pest's setting is process-wide; every caller sets the same.
const CALL_LIMIT: usize = 20_000_000;

pub fn parse(source: &str) -> Result<File, Vec<Diagnostic>> {
    static SET_LIMIT: Once = Once::new();
    SET_LIMIT.call_once(|| pest::set_call_limit(NonZeroUsize::new(CALL_LIMIT)));

    let unclosed = scan_brackets(source).map_err(|diag| vec![diag])?;
    let mut pairs = match NnParser::parse(Rule::file, source) {
        Ok(pairs) => pairs,
        Err(error) => return Err(vec![syntax_error(source, &error, &unclosed)]),
    };
    let Some(file) = pairs.next() else {
        return Ok(File { items: Vec::new() });
    };
    let mut builder = Builder { diags: Vec::new() };
    match builder.file(file) {
        Ok(file) if builder.diags.is_empty() => Ok(file),
        Ok(_) => Err(builder.diags),
        Err(fatal) => {
            builder.diags.push(fatal);
            Err(builder.diags)
        }
    }
}

// ---------------------------------------------------------------------------
// Diagnostics

fn number_out_of_range(span: Span) -> Diagnostic {
    Diagnostic::new("E0002", "number out of range")
        .with_label(span, "too large for a 64-bit float")
}

fn nested_too_deeply(span: Span) -> Diagnostic {
    Diagnostic::new("E0003", "expression nested too deeply")
        .with_label(span, format!("nested more than {MAX_DEPTH} levels deep"))
        .with_help("split the expression, or remove redundant brackets")
}

fn too_complex(span: Span) -> Diagnostic {
    Diagnostic::new("E0003", "file too large or complex to parse")
        .with_label(span, "the parser gave up here")
}

/// A pest error as one `E0001` diagnostic: what was expected, in words, and
/// what was found, labelled at the offending token.
fn syntax_error(source: &str, error: &PestError<Rule>, unclosed: &[(usize, char)]) -> Diagnostic {
    let pos = match error.location {
        InputLocation::Pos(pos) => pos,
        InputLocation::Span((start, _)) => start,
    };
    let pos = floor_char_boundary(source, pos);
    let (span, found) = token_at(source, pos);
    let positives = match &error.variant {
        ErrorVariant::ParsingError { positives, .. } => positives,
        ErrorVariant::CustomError { .. } => return too_complex(span),
    };
    let mut diag = Diagnostic::new("E0001", expected_message(positives))
        .with_label(span, format!("unexpected {found}"));
    if pos == source.len()
        && let Some(&(open, bracket)) = unclosed.last()
    {
        diag = diag.with_label(
            Span::new(open, open + bracket.len_utf8()),
            format!("this `{bracket}` is never closed"),
        );
    }
    diag
}

/// "expected an expression, `,` or `)`".
fn expected_message(positives: &[Rule]) -> String {
    let mut words: Vec<(u8, &str)> = positives.iter().flat_map(|&rule| words(rule)).collect();
    // `(` after a name is always possible (it would make a call) but rarely
    // what the user meant; mention it only when nothing else fits.
    if words.iter().any(|&(_, word)| word != "`(`") {
        words.retain(|&(_, word)| word != "`(`" || positives.contains(&Rule::paren));
    }
    words.sort();
    words.dedup();
    let words: Vec<&str> = words.into_iter().map(|(_, word)| word).collect();
    match words.as_slice() {
        [] => "syntax error".to_string(),
        [one] => format!("expected {one}"),
        [init @ .., last] => format!("expected {} or {last}", init.join(", ")),
    }
}

/// Human words for a rule, each with its rank in the "expected" list.
fn words(rule: Rule) -> Vec<(u8, &'static str)> {
    let word = match rule {
        Rule::expr
        | Rule::product
        | Rule::unary
        | Rule::power
        | Rule::exponent
        | Rule::primary
        | Rule::call
        | Rule::arg
        | Rule::paren
        | Rule::list => (0, "an expression"),
        Rule::name | Rule::ident | Rule::ident_start | Rule::ident_char | Rule::binding | Rule::setting => (1, "a name"),
        Rule::number => (2, "a number"),
        Rule::plus | Rule::minus | Rule::star | Rule::slash | Rule::caret => (3, "an operator"),
        Rule::eq => (4, "`=`"),
        Rule::lbracket => (5, "`[`"),
        Rule::lparen => (6, "`(`"),
        Rule::modifier => (7, "a modifier"),
        Rule::comma => (8, "`,`"),
        Rule::rparen => (9, "`)`"),
        Rule::rbracket => (10, "`]`"),
        Rule::lbrace => (11, "`{`"),
        Rule::data_decl => return vec![(12, "`input`"), (12, "`target`")],
        Rule::kw_input => (12, "`input`"),
        Rule::kw_target => (12, "`target`"),
        Rule::rbrace => (13, "`}`"),
        Rule::item | Rule::keyword => (14, "an item"),
        Rule::data_block | Rule::kw_data => (14, "`data`"),
        Rule::model_block | Rule::kw_model => (14, "`model`"),
        Rule::param_decl | Rule::kw_param => (14, "`param`"),
        Rule::loss_decl | Rule::kw_loss => (14, "`loss`"),
        Rule::train_block | Rule::kw_train => (14, "`train`"),
        Rule::EOI | Rule::file => (15, "end of file"),
        Rule::WHITESPACE | Rule::COMMENT => return Vec::new(),
    };
    vec![word]
}

/// The token starting at `pos` (a char boundary): its span and a description.
fn token_at(source: &str, pos: usize) -> (Span, String) {
    let rest = &source[pos..];
    let Some(first) = rest.chars().next() else {
        return (Span::new(pos, pos), "end of file".to_string());
    };
    let len = if first.is_ascii_alphabetic() || first == '_' {
        rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len())
    } else if first.is_ascii_digit() {
        rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '.')).unwrap_or(rest.len())
    } else {
        first.len_utf8()
    };
    let text = &rest[..len];
    let found = if first.is_control() || first.is_whitespace() || first == '\u{feff}' {
        format!("character U+{:04X}", u32::from(first))
    } else if first == '`' {
        "backtick".to_string()
    } else {
        format!("`{text}`")
    };
    (Span::new(pos, pos + len), found)
}

fn floor_char_boundary(source: &str, mut pos: usize) -> usize {
    pos = pos.min(source.len());
    while !source.is_char_boundary(pos) {
        pos -= 1;
    }
    pos
}

/// Checks that brackets nest at most [`MAX_DEPTH`] deep, and returns those
/// left unclosed at the end of the file (position and bracket), innermost last.
fn scan_brackets(source: &str) -> Result<Vec<(usize, char)>, Diagnostic> {
    let mut open: Vec<(usize, char)> = Vec::new();
    let mut in_comment = false;
    for (pos, c) in source.char_indices() {
        match c {
            '\n' => in_comment = false,
            _ if in_comment => {}
            '#' => in_comment = true,
            '(' | '[' | '{' => {
                open.push((pos, c));
                if open.len() > MAX_DEPTH {
                    return Err(nested_too_deeply(Span::new(pos, pos + 1)));
                }
            }
            ')' | ']' | '}' => {
                open.pop();
            }
            _ => {}
        }
    }
    Ok(open)
}

// ---------------------------------------------------------------------------
// Pairs → AST

/// An expression and the depth of its tree (a leaf is 1).
struct Node {
    expr: Expr,
    depth: usize,
}

/// Builds the AST. Recoverable problems (a number out of range) go to
/// `diags`; a fatal one (nesting too deep) is returned as `Err`.
struct Builder {
    diags: Vec<Diagnostic>,
}

type Fatal = Diagnostic;

fn span_of(pair: &Pair<'_, Rule>) -> Span {
    let span = pair.as_span();
    Span::new(span.start(), span.end())
}

fn ident(pair: Pair<'_, Rule>) -> Ident {
    Ident { name: pair.as_str().to_string(), span: span_of(&pair) }
}

fn node(kind: ExprKind, span: Span, depth: usize) -> Result<Node, Fatal> {
    if depth > MAX_DEPTH {
        return Err(nested_too_deeply(span));
    }
    Ok(Node { expr: Expr { kind, span }, depth })
}

fn binary(op: BinOp, lhs: Node, rhs: Node) -> Result<Node, Fatal> {
    let span = lhs.expr.span.to(rhs.expr.span);
    let depth = 1 + lhs.depth.max(rhs.depth);
    let kind = ExprKind::Binary { op, lhs: Box::new(lhs.expr), rhs: Box::new(rhs.expr) };
    node(kind, span, depth)
}

/// Wraps `operand` in one `Neg` per minus sign, the last sign innermost.
fn negate(minus_spans: &[Span], mut operand: Node) -> Result<Node, Fatal> {
    for &minus in minus_spans.iter().rev() {
        let span = minus.to(operand.expr.span);
        let depth = operand.depth + 1;
        operand = node(ExprKind::Neg(Box::new(operand.expr)), span, depth)?;
    }
    Ok(operand)
}

fn bin_op(rule: Rule) -> BinOp {
    match rule {
        Rule::plus => BinOp::Add,
        Rule::minus => BinOp::Sub,
        Rule::star => BinOp::Mul,
        Rule::slash => BinOp::Div,
        _ => BinOp::Pow,
    }
}

impl Builder {
    fn file(&mut self, pair: Pair<'_, Rule>) -> Result<File, Fatal> {
        let mut items = Vec::new();
        for item in pair.into_inner().filter(|p| p.as_rule() == Rule::item) {
            if let Some(inner) = item.into_inner().next() {
                items.push(self.item(inner)?);
            }
        }
        Ok(File { items })
    }

    fn item(&mut self, pair: Pair<'_, Rule>) -> Result<Item, Fatal> {
        let rule = pair.as_rule();
        let start = span_of(&pair);
        let mut parts = pair.into_inner();
        parts.next(); // the keyword
        Ok(match rule {
            Rule::data_block => {
                let decls = parts
                    .filter(|p| p.as_rule() == Rule::data_decl)
                    .map(|p| self.data_decl(p))
                    .collect::<Result<_, _>>()?;
                Item::Data(DataBlock { decls, span: start })
            }
            Rule::model_block => {
                let layers = parts
                    .filter(|p| p.as_rule() == Rule::binding)
                    .map(|p| {
                        let (name, value, span) = self.assignment(p)?;
                        Ok(Binding { name, value, span })
                    })
                    .collect::<Result<_, _>>()?;
                Item::Model(ModelBlock { layers, span: start })
            }
            Rule::train_block => {
                let settings = parts
                    .filter(|p| p.as_rule() == Rule::setting)
                    .map(|p| {
                        let (name, value, span) = self.assignment(p)?;
                        Ok(Setting { name, value, span })
                    })
                    .collect::<Result<_, _>>()?;
                Item::Train(TrainBlock { settings, span: start })
            }
            Rule::param_decl => {
                let (name, init, span) = self.name_eq_expr(start, parts)?;
                Item::Param(ParamDecl { name, init, span })
            }
            _ => {
                let expr = self.expr_in(parts)?;
                let span = Span { start: start.start, end: expr.span.end };
                Item::Loss(LossDecl { expr, span })
            }
        })
    }

    /// `name = expr` (a binding or a setting).
    fn assignment(&mut self, pair: Pair<'_, Rule>) -> Result<(Ident, Expr, Span), Fatal> {
        let start = span_of(&pair);
        self.name_eq_expr(start, pair.into_inner())
    }

    /// `name = expr` from the remaining parts; the span runs from `start` to
    /// the end of the expression.
    fn name_eq_expr<'i>(
        &mut self,
        start: Span,
        mut parts: impl Iterator<Item = Pair<'i, Rule>>,
    ) -> Result<(Ident, Expr, Span), Fatal> {
        let name = parts.next().map(ident).unwrap_or(Ident { name: String::new(), span: start });
        let value = self.expr_in(parts)?;
        let span = Span { start: start.start, end: value.span.end };
        Ok((name, value, span))
    }

    fn data_decl(&mut self, pair: Pair<'_, Rule>) -> Result<DataDecl, Fatal> {
        let mut span = span_of(&pair);
        span.end = span.start;
        let mut kind = DataKind::Input;
        let mut name = Ident { name: String::new(), span };
        let mut width = None;
        let mut source = None;
        let mut modifiers = Vec::new();
        let mut after = Rule::data_decl;
        for part in pair.into_inner() {
            let rule = part.as_rule();
            // An `expr` pair may end in whitespace; the built expression does not.
            let end = match rule {
                Rule::expr => {
                    let value = self.expr(part)?.expr;
                    let end = value.span.end;
                    match after {
                        Rule::lbracket => width = Some(value),
                        _ => source = Some(value),
                    }
                    end
                }
                _ => {
                    let end = span_of(&part).end;
                    match rule {
                        Rule::kw_input => kind = DataKind::Input,
                        Rule::kw_target => kind = DataKind::Target,
                        Rule::ident => name = ident(part),
                        Rule::modifier => modifiers.push(ident(part)),
                        _ => {}
                    }
                    end
                }
            };
            span.end = span.end.max(end);
            after = rule;
        }
        Ok(DataDecl { kind, name, width, source, modifiers, span })
    }

    /// The first `expr` among `parts`.
    fn expr_in<'i>(
        &mut self,
        mut parts: impl Iterator<Item = Pair<'i, Rule>>,
    ) -> Result<Expr, Fatal> {
        match parts.find(|p| p.as_rule() == Rule::expr) {
            Some(pair) => Ok(self.expr(pair)?.expr),
            // Unreachable for a successful parse; an empty name keeps it total.
            None => Ok(Expr { kind: ExprKind::Name(String::new()), span: Span::default() }),
        }
    }

    /// `expr` and `product`: operands separated by left-associative operators.
    fn expr(&mut self, pair: Pair<'_, Rule>) -> Result<Node, Fatal> {
        let mut parts = pair.into_inner();
        let Some(first) = parts.next() else { return Err(too_complex(Span::default())) };
        let mut acc = self.operand(first)?;
        while let (Some(op), Some(rhs)) = (parts.next(), parts.next()) {
            let rhs = self.operand(rhs)?;
            acc = binary(bin_op(op.as_rule()), acc, rhs)?;
        }
        Ok(acc)
    }

    fn operand(&mut self, pair: Pair<'_, Rule>) -> Result<Node, Fatal> {
        match pair.as_rule() {
            Rule::product => self.expr(pair),
            _ => self.unary(pair),
        }
    }

    /// `unary` (`- - power`) and `exponent` (`- - primary`).
    fn unary(&mut self, pair: Pair<'_, Rule>) -> Result<Node, Fatal> {
        let mut minus_spans = Vec::new();
        let mut operand = None;
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::minus => minus_spans.push(span_of(&part)),
                Rule::power => operand = Some(self.power(part)?),
                _ => operand = Some(self.primary(part)?),
            }
        }
        let Some(operand) = operand else { return Err(too_complex(Span::default())) };
        negate(&minus_spans, operand)
    }

    /// `primary (^ exponent)*`, folded from the right: in `a ^ -b ^ c` the
    /// minus belongs to `b ^ c`.
    fn power(&mut self, pair: Pair<'_, Rule>) -> Result<Node, Fatal> {
        let mut base = None;
        // Each exponent: its minus signs and its primary.
        let mut exponents: Vec<(Vec<Span>, Node)> = Vec::new();
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::primary => base = Some(self.primary(part)?),
                Rule::exponent => {
                    let mut minus_spans = Vec::new();
                    for piece in part.into_inner() {
                        match piece.as_rule() {
                            Rule::minus => minus_spans.push(span_of(&piece)),
                            _ => exponents.push((minus_spans.clone(), self.primary(piece)?)),
                        }
                    }
                }
                _ => {}
            }
        }
        let Some(base) = base else { return Err(too_complex(Span::default())) };
        let Some((minus_spans, last)) = exponents.pop() else { return Ok(base) };
        let mut acc = negate(&minus_spans, last)?;
        while let Some((minus_spans, primary)) = exponents.pop() {
            acc = negate(&minus_spans, binary(BinOp::Pow, primary, acc)?)?;
        }
        binary(BinOp::Pow, base, acc)
    }

    fn primary(&mut self, pair: Pair<'_, Rule>) -> Result<Node, Fatal> {
        let outer = span_of(&pair);
        let Some(pair) = pair.into_inner().next() else { return Err(too_complex(outer)) };
        let span = span_of(&pair);
        match pair.as_rule() {
            Rule::number => {
                let value = pair.as_str().parse::<f64>().unwrap_or(f64::INFINITY);
                if !value.is_finite() {
                    self.diags.push(number_out_of_range(span));
                }
                node(ExprKind::Number(value), span, 1)
            }
            Rule::name => node(ExprKind::Name(pair.as_str().to_string()), span, 1),
            Rule::paren => {
                let inner = pair.into_inner().find(|p| p.as_rule() == Rule::expr);
                let Some(inner) = inner else { return Err(too_complex(span)) };
                let mut inner = self.expr(inner)?;
                inner.expr.span = span;
                Ok(inner)
            }
            Rule::list => {
                let mut items = Vec::new();
                let mut depth = 0;
                for part in pair.into_inner().filter(|p| p.as_rule() == Rule::expr) {
                    let item = self.expr(part)?;
                    depth = depth.max(item.depth);
                    items.push(item.expr);
                }
                node(ExprKind::List(items), span, depth + 1)
            }
            _ => {
                let mut parts = pair.into_inner();
                let callee = parts.next().map(ident).unwrap_or(Ident { name: String::new(), span });
                let mut args = Vec::new();
                let mut depth = 0;
                for arg in parts.filter(|p| p.as_rule() == Rule::arg) {
                    let mut name = None;
                    let mut value = None;
                    for part in arg.into_inner() {
                        match part.as_rule() {
                            Rule::ident => name = Some(ident(part)),
                            Rule::expr => value = Some(self.expr(part)?),
                            _ => {}
                        }
                    }
                    let Some(value) = value else { return Err(too_complex(span)) };
                    depth = depth.max(value.depth);
                    args.push(Arg { name, value: value.expr });
                }
                node(ExprKind::Call { callee, args }, span, depth + 1)
            }
        }
    }
}
