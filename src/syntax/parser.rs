//! The parser: pest pairs → AST, and pest errors → [`Diagnostic`]s.
//!
//! Parsing runs in three steps:
//! 1. [`scan`] counts bracket nesting (outside comments) and rejects
//!    anything deeper than [`MAX_DEPTH`]: brackets are the grammar's only
//!    recursion, so this bounds the stack pest uses, whatever the
//!    input. It also notes unclosed brackets, for a "never closed" label, and
//!    where the last token ends, to point at an unexpected end of file.
//! 2. pest runs `grammar/nn.pest` under a call limit ([`CALL_LIMIT`]).
//! 3. [`build`] folds pest's token stream into the AST without recursion,
//!    computing spans from the children, and rejects expressions more than
//!    [`MAX_DEPTH`] nodes deep (`a + b + …` with hundreds of terms,
//!    `- - - … x`), so that no later stage recurses without bound either.

use crate::diag::Diagnostic;
use crate::span::Span;
use crate::syntax::ast::{
    Arg, BinOp, Binding, DataBlock, DataDecl, DataKind, Expr, ExprKind, File, FnDecl, Ident, Item, LossDecl,
    ModelBlock, ParamDecl, Setting, TrainBlock,
};
use pest::Parser as _;
use pest::Token;
use pest::error::{Error as PestError, ErrorVariant, InputLocation};
use pest::iterators::Pairs;
use std::num::NonZeroUsize;
use std::sync::Once;

#[derive(pest_derive::Parser)]
#[grammar = "grammar/nn.pest"]
struct NnParser;

/// The deepest bracket nesting, and the deepest expression tree, accepted.
pub const MAX_DEPTH: usize = 200;

/// pest's budget of rule calls per parse. Model files take about 11 calls per
/// byte (deeply bracketed text up to 75), so this admits megabyte files yet
/// stops a pathological input quickly. pest's setting is process-wide; every
/// parse sets the same value.
const CALL_LIMIT: usize = 20_000_000;

pub fn parse(source: &str) -> Result<File, Vec<Diagnostic>> {
    static SET_LIMIT: Once = Once::new();
    SET_LIMIT.call_once(|| pest::set_call_limit(NonZeroUsize::new(CALL_LIMIT)));

    let scan = scan(source).map_err(|diag| vec![diag])?;
    match NnParser::parse(Rule::file, source) {
        Ok(pairs) => build(source, pairs),
        Err(error) => Err(vec![syntax_error(source, &error, &scan)]),
    }
}

// ---------------------------------------------------------------------------
// Diagnostics

fn number_out_of_range(span: Span) -> Diagnostic {
    Diagnostic::new("E0002", "number out of range").with_label(span, "too large for a 64-bit float")
}

fn nested_too_deeply(span: Span) -> Diagnostic {
    Diagnostic::new("E0003", "expression nested too deeply")
        .with_label(span, format!("nested more than {MAX_DEPTH} levels deep"))
        .with_help("split the expression, or remove redundant brackets")
}

fn too_complex(span: Span) -> Diagnostic {
    Diagnostic::new("E0003", "file too large or complex to parse").with_label(span, "the parser gave up here")
}

/// A pest error as one `E0001` diagnostic: what was expected, in words, and
/// what was found, labelled at the offending token.
fn syntax_error(source: &str, error: &PestError<Rule>, scan: &Scan) -> Diagnostic {
    let pos = match error.location {
        InputLocation::Pos(pos) => pos,
        InputLocation::Span((start, _)) => start,
    };
    let pos = floor_char_boundary(source, pos);
    let (span, found) = if pos == source.len() {
        (end_of_file(source, scan.last_token_end), "end of file".to_string())
    } else {
        token_at(source, pos)
    };
    let positives = match &error.variant {
        ErrorVariant::ParsingError { positives, .. } => positives,
        ErrorVariant::CustomError { .. } => return too_complex(span),
    };
    let mut diag =
        Diagnostic::new("E0001", expected_message(positives)).with_label(span, format!("unexpected {found}"));
    let found_text = source.get(span.range()).unwrap_or_default();
    if pos == source.len()
        && let Some(&(open, bracket)) = scan.unclosed.last()
    {
        diag = diag.with_label(Span::new(open, open + bracket.len_utf8()), format!("this `{bracket}` is never closed"));
    } else if is_reserved(found_text) && source[span.end as usize..].trim_start().starts_with('=') {
        diag = diag.with_help(format!(
            "`{found_text}` is a reserved word: it cannot name a layer, a param or a setting; choose another name"
        ));
    } else if is_item_keyword(found_text)
        && let Some(&(open, bracket)) = open_brackets(source, pos).last()
    {
        // `model { ... loss ...`: most likely a forgotten closing bracket.
        let close = match bracket {
            '(' => ')',
            '[' => ']',
            _ => '}',
        };
        diag = diag
            .with_label(Span::new(open, open + bracket.len_utf8()), format!("this `{bracket}` is still open"))
            .with_help(format!("close it with `{close}` before the next item"));
    } else if ["<", ">", "==", "!="].iter().any(|op| source[pos..].starts_with(op))
        && ["<", ">", "==", "!="].iter().any(|op| source[..pos].rsplit('\n').next().unwrap_or_default().contains(op))
    {
        diag = diag.with_help("comparisons do not chain: write `a < b < c` as `(a < b) * (b < c)`");
    } else if source[pos..].chars().next().is_some_and(|c| c.is_alphabetic() && !c.is_ascii()) {
        diag = diag.with_help("names are made of ASCII letters, digits and `_`");
    }
    diag
}

fn is_item_keyword(word: &str) -> bool {
    matches!(word, "data" | "model" | "param" | "fn" | "loss" | "train")
}

/// Words that cannot be names: the item keywords and `if`, `then`, `else`.
fn is_reserved(word: &str) -> bool {
    is_item_keyword(word) || matches!(word, "if" | "then" | "else")
}

/// The brackets still open at byte `end`, outermost first (comments skipped).
fn open_brackets(source: &str, end: usize) -> Vec<(usize, char)> {
    let mut open = Vec::new();
    let mut in_comment = false;
    for (pos, c) in source[..end].char_indices() {
        match c {
            '\n' => in_comment = false,
            _ if in_comment => {}
            '#' => in_comment = true,
            '(' | '[' | '{' => open.push((pos, c)),
            ')' | ']' | '}' => {
                open.pop();
            }
            _ => {}
        }
    }
    open
}

/// "expected an expression, `,` or `)`".
fn expected_message(positives: &[Rule]) -> String {
    let mut words: Vec<(u8, &str)> = positives.iter().flat_map(|&rule| words(rule)).collect();
    // `(` after a name is always possible (it would make a call) but rarely
    // what the user meant; mention it only when nothing else fits.
    if words.iter().any(|&(_, word)| word != "`(`") {
        words.retain(|&(_, word)| word != "`(`");
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
        | Rule::compare
        | Rule::sum
        | Rule::kw_if
        | Rule::product
        | Rule::unary
        | Rule::power
        | Rule::exponent
        | Rule::primary
        | Rule::call
        | Rule::arg
        | Rule::paren
        | Rule::list => (0, "an expression"),
        Rule::name | Rule::ident | Rule::ident_start | Rule::ident_char | Rule::binding | Rule::setting => {
            (1, "a name")
        }
        Rule::number => (2, "a number"),
        Rule::plus
        | Rule::minus
        | Rule::star
        | Rule::slash
        | Rule::caret
        | Rule::lt
        | Rule::le
        | Rule::gt
        | Rule::ge
        | Rule::eqeq
        | Rule::ne
        | Rule::compare_op => (3, "an operator"),
        Rule::eq => (4, "`=`"),
        Rule::kw_then => (4, "`then`"),
        Rule::kw_else => (4, "`else`"),
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
        Rule::fn_decl | Rule::kw_fn => (14, "`fn`"),
        Rule::loss_decl | Rule::kw_loss => (14, "`loss`"),
        Rule::train_block | Rule::kw_train => (14, "`train`"),
        Rule::EOI | Rule::file => (15, "end of file"),
        Rule::WHITESPACE | Rule::COMMENT => return Vec::new(),
    };
    vec![word]
}

/// Where to point when the file ends too soon: just after the last token.
/// (Not at the very end: a label there is not drawn. If the last token ends
/// the file, the label covers its last char instead.)
fn end_of_file(source: &str, last_token_end: usize) -> Span {
    let end = floor_char_boundary(source, last_token_end);
    if end < source.len() {
        return Span::new(end, end);
    }
    let start = source[..end].char_indices().next_back().map_or(end, |(start, _)| start);
    Span::new(start, end)
}

/// The token starting at `pos` (a char boundary): its span and a description.
fn token_at(source: &str, pos: usize) -> (Span, String) {
    let rest = source.get(pos..).unwrap_or_default();
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

/// What a quick pass over the text finds before pest runs.
struct Scan {
    /// Brackets left open at the end of the file (offset and bracket),
    /// innermost last.
    unclosed: Vec<(usize, char)>,
    /// The end of the last char that is neither whitespace nor comment.
    last_token_end: usize,
}

/// Checks that brackets nest at most [`MAX_DEPTH`] deep.
fn scan(source: &str) -> Result<Scan, Diagnostic> {
    let mut scan = Scan { unclosed: Vec::new(), last_token_end: 0 };
    let mut in_comment = false;
    for (pos, c) in source.char_indices() {
        match c {
            '\n' => in_comment = false,
            _ if in_comment => continue,
            '#' => in_comment = true,
            '(' | '[' | '{' => {
                scan.unclosed.push((pos, c));
                if scan.unclosed.len() > MAX_DEPTH {
                    return Err(nested_too_deeply(Span::new(pos, pos + 1)));
                }
            }
            ')' | ']' | '}' => {
                scan.unclosed.pop();
            }
            _ => {}
        }
        if !(in_comment || c.is_whitespace()) {
            scan.last_token_end = pos + c.len_utf8();
        }
    }
    Ok(scan)
}

// ---------------------------------------------------------------------------
// Tokens → AST
//
// pest's pairs form a tree, but walking it recursively costs kilobytes of
// stack per bracket level in a debug build (about 16 KiB for each `(`).
// Instead, [`build`] reads the flat `Start`/`End` token stream: `Start` opens
// a frame, `End` reduces the frame's children to one [`Child`] of its parent.
// Nothing recurses.
//
// Spans come from the children, never from a compound rule's own pest span,
// which can include whitespace after an optional or repeated tail.

/// An expression and the depth of its tree (a leaf is 1).
struct Node {
    expr: Expr,
    depth: usize,
}

/// What a finished rule leaves for its parent.
enum Child {
    /// Keywords, punctuation, operators: only their kind and place matter.
    Token(Rule, Span),
    Ident(Ident),
    Expr(Node),
    /// `- - primary` after a `^`: its minus signs and its primary.
    Exponent(Vec<Span>, Node),
    Arg(Arg, usize),
    Decl(DataDecl),
    /// A word or call after a data declaration (`standardize`, `fill(mean)`).
    Modifier(Expr),
    /// A binding or a setting: `name = value`.
    Assign(Ident, Expr, Span),
    Item(Item),
    Items(Vec<Item>),
}

impl Child {
    fn span(&self) -> Span {
        match self {
            Child::Token(_, span) | Child::Assign(_, _, span) => *span,
            Child::Ident(ident) => ident.span,
            Child::Expr(node) | Child::Exponent(_, node) => node.expr.span,
            Child::Arg(arg, _) => arg.span(),
            Child::Decl(decl) => decl.span,
            Child::Modifier(expr) => expr.span,
            Child::Item(item) => item.span(),
            Child::Items(_) => Span::default(),
        }
    }
}

struct Frame {
    rule: Rule,
    start: usize,
    children: Vec<Child>,
}

/// Builds the AST from pest's token stream. Numbers out of range are
/// collected; nesting too deep stops the build.
fn build(source: &str, pairs: Pairs<'_, Rule>) -> Result<File, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut items = Vec::new();
    for token in pairs.tokens() {
        match token {
            Token::Start { rule, pos } => {
                stack.push(Frame { rule, start: pos.pos(), children: Vec::new() });
            }
            Token::End { pos, .. } => {
                let Some(frame) = stack.pop() else { break };
                let span = Span::new(frame.start, pos.pos());
                let text = source.get(span.range()).unwrap_or_default();
                let reduced = reduce(frame.rule, span, text, frame.children, &mut diags);
                match (reduced.map_err(|fatal| vec![fatal])?, stack.last_mut()) {
                    (Some(Child::Items(file)), _) => items = file,
                    (Some(child), Some(parent)) => parent.children.push(child),
                    _ => {}
                }
            }
        }
    }
    if diags.is_empty() { Ok(File { items }) } else { Err(diags) }
}

/// A parse tree that the grammar cannot produce: a bug, reported rather than
/// panicked on.
fn malformed(span: Span) -> Diagnostic {
    Diagnostic::new("E0001", "internal error: unexpected parse tree").with_label(span, "while reading this")
}

fn outer_span(children: &[Child], fallback: Span) -> Span {
    match (children.first(), children.last()) {
        (Some(first), Some(last)) => first.span().to(last.span()),
        _ => fallback,
    }
}

fn leaf(kind: ExprKind, span: Span) -> Node {
    Node { expr: Expr { kind, span }, depth: 1 }
}

/// A node of `depth`, unless that is too deep: then an error labelled `at`
/// (the operator or bracket that went one level too far).
fn node(kind: ExprKind, span: Span, depth: usize, at: Span) -> Result<Node, Diagnostic> {
    if depth > MAX_DEPTH {
        return Err(nested_too_deeply(at));
    }
    Ok(Node { expr: Expr { kind, span }, depth })
}

fn binary(op: BinOp, op_span: Span, lhs: Node, rhs: Node) -> Result<Node, Diagnostic> {
    let span = lhs.expr.span.to(rhs.expr.span);
    let depth = 1 + lhs.depth.max(rhs.depth);
    let kind = ExprKind::Binary { op, lhs: Box::new(lhs.expr), rhs: Box::new(rhs.expr) };
    node(kind, span, depth, op_span)
}

/// Wraps `operand` in one `Neg` per minus sign, the last sign innermost.
fn negate(minus_spans: &[Span], mut operand: Node) -> Result<Node, Diagnostic> {
    for &minus in minus_spans.iter().rev() {
        let span = minus.to(operand.expr.span);
        let depth = operand.depth + 1;
        operand = node(ExprKind::Neg(Box::new(operand.expr)), span, depth, minus)?;
    }
    Ok(operand)
}

/// Reduces one finished rule, spanning `span` with text `text`, to what its
/// parent needs.
fn reduce(
    rule: Rule,
    span: Span,
    text: &str,
    children: Vec<Child>,
    diags: &mut Vec<Diagnostic>,
) -> Result<Option<Child>, Diagnostic> {
    let outer = outer_span(&children, span);
    let child = match rule {
        Rule::number => {
            let value = text.parse::<f64>().unwrap_or(f64::INFINITY);
            if !value.is_finite() {
                diags.push(number_out_of_range(span));
            }
            Child::Expr(leaf(ExprKind::Number(value), span))
        }
        Rule::ident => Child::Ident(Ident { name: text.to_string(), span }),
        Rule::modifier => match children.into_iter().next() {
            Some(Child::Ident(ident)) => Child::Modifier(leaf(ExprKind::Name(ident.name), ident.span).expr),
            Some(Child::Expr(node)) => Child::Modifier(node.expr),
            _ => return Err(malformed(span)),
        },
        Rule::name => Child::Expr(leaf(ExprKind::Name(text.to_string()), span)),
        Rule::primary | Rule::item => return Ok(children.into_iter().next()),
        Rule::paren => {
            let inner = children.into_iter().find_map(|child| match child {
                Child::Expr(node) => Some(node),
                _ => None,
            });
            let Some(mut inner) = inner else {
                return Err(malformed(span));
            };
            inner.expr.span = outer;
            Child::Expr(inner)
        }
        Rule::list => {
            let mut items = Vec::new();
            let mut depth = 0;
            for child in children {
                if let Child::Expr(item) = child {
                    depth = depth.max(item.depth);
                    items.push(item.expr);
                }
            }
            let open = Span { end: outer.start + 1, ..outer };
            Child::Expr(node(ExprKind::List(items), outer, depth + 1, open)?)
        }
        Rule::call => {
            let mut callee = None;
            let mut args = Vec::new();
            let mut depth = 0;
            for child in children {
                match child {
                    Child::Ident(ident) => callee = Some(ident),
                    Child::Arg(arg, arg_depth) => {
                        depth = depth.max(arg_depth);
                        args.push(arg);
                    }
                    _ => {}
                }
            }
            let Some(callee) = callee else {
                return Err(malformed(span));
            };
            let at = callee.span;
            Child::Expr(node(ExprKind::Call { callee, args }, outer, depth + 1, at)?)
        }
        Rule::arg => {
            let mut name = None;
            let mut value = None;
            for child in children {
                match child {
                    Child::Ident(ident) => name = Some(ident),
                    Child::Expr(node) => value = Some(node),
                    _ => {}
                }
            }
            let Some(value) = value else {
                return Err(malformed(span));
            };
            Child::Arg(Arg { name, value: value.expr }, value.depth)
        }
        Rule::exponent | Rule::unary => {
            let mut minus_spans = Vec::new();
            let mut operand = None;
            for child in children {
                match child {
                    Child::Token(_, minus) => minus_spans.push(minus),
                    Child::Expr(node) => operand = Some(node),
                    _ => {}
                }
            }
            let Some(operand) = operand else {
                return Err(malformed(span));
            };
            match rule {
                Rule::exponent => Child::Exponent(minus_spans, operand),
                _ => Child::Expr(negate(&minus_spans, operand)?),
            }
        }
        Rule::power => Child::Expr(power(children, span)?),
        Rule::expr => Child::Expr(conditional(children, span)?),
        Rule::compare | Rule::sum | Rule::product => Child::Expr(operators(children, span)?),
        Rule::data_decl => Child::Decl(data_decl(children, outer)),
        Rule::binding | Rule::setting | Rule::param_decl => {
            let mut name = None;
            let mut value = None;
            for child in children {
                match child {
                    Child::Ident(ident) => name = Some(ident),
                    Child::Expr(node) => value = Some(node.expr),
                    _ => {}
                }
            }
            if let (None, Some(ExprKind::Call { callee, .. }), Rule::setting) =
                (&name, value.as_ref().map(|v| &v.kind), rule)
            {
                name = Some(callee.clone());
            }
            let (Some(name), Some(value)) = (name, value) else {
                return Err(malformed(span));
            };
            match rule {
                Rule::param_decl => Child::Item(Item::Param(ParamDecl { name, init: value, span: outer })),
                _ => Child::Assign(name, value, outer),
            }
        }
        Rule::fn_decl => {
            let mut idents = Vec::new();
            let mut body = None;
            for child in children {
                match child {
                    Child::Ident(ident) => idents.push(ident),
                    Child::Expr(node) => body = Some(node.expr),
                    _ => {}
                }
            }
            let (Some(body), false) = (body, idents.is_empty()) else {
                return Err(malformed(span));
            };
            let name = idents.remove(0);
            Child::Item(Item::Fn(FnDecl { name, params: idents, body, span: outer }))
        }
        Rule::loss_decl => {
            let expr = children.into_iter().find_map(|child| match child {
                Child::Expr(node) => Some(node.expr),
                _ => None,
            });
            let Some(expr) = expr else {
                return Err(malformed(span));
            };
            Child::Item(Item::Loss(LossDecl { expr, span: outer }))
        }
        Rule::data_block => {
            let mut decls = Vec::new();
            let mut settings = Vec::new();
            for child in children {
                match child {
                    Child::Decl(decl) => decls.push(decl),
                    Child::Assign(name, value, span) => settings.push(Setting { name, value, span }),
                    _ => {}
                }
            }
            Child::Item(Item::Data(DataBlock { decls, settings, span: outer }))
        }
        Rule::model_block | Rule::train_block => {
            let assigns = children.into_iter().filter_map(|child| match child {
                Child::Assign(name, value, span) => Some((name, value, span)),
                _ => None,
            });
            match rule {
                Rule::model_block => {
                    let layers = assigns.map(|(name, value, span)| Binding { name, value, span });
                    Child::Item(Item::Model(ModelBlock { layers: layers.collect(), span: outer }))
                }
                _ => {
                    let settings = assigns.map(|(name, value, span)| Setting { name, value, span });
                    Child::Item(Item::Train(TrainBlock { settings: settings.collect(), span: outer }))
                }
            }
        }
        Rule::file => Child::Items(
            children
                .into_iter()
                .filter_map(|child| match child {
                    Child::Item(item) => Some(item),
                    _ => None,
                })
                .collect(),
        ),
        Rule::EOI | Rule::WHITESPACE | Rule::COMMENT => return Ok(None),
        _ => Child::Token(rule, span),
    };
    Ok(Some(child))
}

/// `primary (^ exponent)*`, folded from the right: in `a ^ -b ^ c` the minus
/// belongs to `b ^ c`.
fn power(children: Vec<Child>, span: Span) -> Result<Node, Diagnostic> {
    let mut base = None;
    let mut carets = Vec::new();
    let mut exponents = Vec::new();
    for child in children {
        match child {
            Child::Expr(node) => base = Some(node),
            Child::Token(_, caret) => carets.push(caret),
            Child::Exponent(minus_spans, node) => exponents.push((minus_spans, node)),
            _ => {}
        }
    }
    let Some(base) = base else {
        return Err(malformed(span));
    };
    let (Some((minus_spans, last)), Some(mut caret)) = (exponents.pop(), carets.pop()) else {
        return Ok(base);
    };
    let mut acc = negate(&minus_spans, last)?;
    while let (Some((minus_spans, primary)), Some(previous)) = (exponents.pop(), carets.pop()) {
        acc = negate(&minus_spans, binary(BinOp::Pow, caret, primary, acc)?)?;
        caret = previous;
    }
    binary(BinOp::Pow, caret, base, acc)
}

/// `operand (op operand)*`, folded from the left: sums, products, and a
/// sum with at most one comparison at its end.
fn operators(children: Vec<Child>, span: Span) -> Result<Node, Diagnostic> {
    let mut operands = children.into_iter();
    let Some(Child::Expr(mut acc)) = operands.next() else {
        return Err(malformed(span));
    };
    while let (Some(Child::Token(op, op_span)), Some(Child::Expr(rhs))) = (operands.next(), operands.next()) {
        let op = match op {
            Rule::plus => BinOp::Add,
            Rule::minus => BinOp::Sub,
            Rule::star => BinOp::Mul,
            Rule::slash => BinOp::Div,
            Rule::lt => BinOp::Lt,
            Rule::le => BinOp::Le,
            Rule::gt => BinOp::Gt,
            Rule::ge => BinOp::Ge,
            Rule::eqeq => BinOp::Eq,
            _ => BinOp::Ne,
        };
        acc = binary(op, op_span, acc, rhs)?;
    }
    Ok(acc)
}

/// `(if cond then value else)* last`, folded from the right: each `if`
/// takes everything after its `else` as its alternative. The last branch is
/// spelled out in `expr`'s own children (a sum and perhaps a comparison).
fn conditional(children: Vec<Child>, span: Span) -> Result<Node, Diagnostic> {
    let mut keywords = Vec::new();
    let mut operands = Vec::new();
    let mut children = children.into_iter().peekable();
    while let Some(Child::Token(Rule::kw_if, if_span)) = children.peek() {
        keywords.push(*if_span);
        children.next();
        for _ in 0..2 {
            match (children.next(), children.next()) {
                (Some(Child::Expr(node)), Some(Child::Token(..))) => operands.push(node),
                _ => return Err(malformed(span)),
            }
        }
    }
    let mut acc = operators(children.collect(), span)?;
    while let (Some(if_span), Some(then), Some(cond)) = (keywords.pop(), operands.pop(), operands.pop()) {
        let span = if_span.to(acc.expr.span);
        let depth = 1 + cond.depth.max(then.depth).max(acc.depth);
        let kind = ExprKind::If { cond: Box::new(cond.expr), then: Box::new(then.expr), otherwise: Box::new(acc.expr) };
        acc = node(kind, span, depth, if_span)?;
    }
    Ok(acc)
}

/// `input x[3] = source modifier*`: the expression after `[` is the width,
/// the one after `=` the source.
fn data_decl(children: Vec<Child>, span: Span) -> DataDecl {
    let mut decl = DataDecl {
        kind: DataKind::Input,
        name: Ident { name: String::new(), span },
        width: None,
        source: None,
        modifiers: Vec::new(),
        span,
    };
    let mut after = Rule::data_decl;
    for child in children {
        match child {
            Child::Token(rule, _) => {
                match rule {
                    Rule::kw_input => decl.kind = DataKind::Input,
                    Rule::kw_target => decl.kind = DataKind::Target,
                    _ => {}
                }
                after = rule;
            }
            Child::Modifier(modifier) => decl.modifiers.push(modifier),
            Child::Ident(ident) => decl.name = ident,
            Child::Expr(node) if after == Rule::lbracket => decl.width = Some(node.expr),
            Child::Expr(node) => decl.source = Some(node.expr),
            _ => {}
        }
    }
    decl
}
