//! The graph IR's text read back: the inverse of [`super::print`], so that
//! pass tests can start from IR text (`tests/passes/`, like Cranelift's
//! filetests) instead of a whole `.nn` model.
//!
//! `parse(&print::graph(g))` rebuilds `g`: the same node ids, ops, shapes,
//! layers, declarations and outputs. Only the `.nn` spans are lost, and the
//! dead nodes the printer leaves out become unused stand-ins that keep the
//! ids of the others.
//!
//! The reader checks the syntax and the names — every `%n` used is defined,
//! every `param h.w` declared — and nothing else: a graph whose shapes do not
//! fit, or whose arguments come after their users, parses, so that
//! [`super::verify`] can be shown such a graph. Errors carry the 1-based line
//! and column. Lines starting with `;` are comments (filetest directives, the
//! verifier's marks).

use super::{
    Binary, Compare, DataVar, Dim, Graph, Hyper, Init, Node, NodeId, Op, Origin, ParamInfo, Shape, StateInfo, Unary,
};
use std::fmt;

/// Malformed IR text, at a 1-based line and column (in characters).
#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

impl std::error::Error for ParseError {}

/// The largest node id read: each id below it costs a node, and a typing
/// slip such as `%4000000000` should not take the memory of four billion.
const MAX_ID: u32 = (1 << 20) - 1;

/// Read a graph printed by [`super::print::graph`].
pub fn parse(text: &str) -> Result<Graph, ParseError> {
    let mut items = Vec::new();
    let mut opened = false;
    let mut closed = None;
    let mut last_line = 0;
    for (index, line) in text.lines().enumerate() {
        last_line = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with(';') {
            continue;
        }
        let mut cursor = Cursor::new(index + 1, line);
        if let Some(close) = closed {
            return Err(cursor.error(format!("text after the graph's closing `}}` (line {close})")));
        }
        if !opened {
            cursor.expect_word("graph")?;
            cursor.expect("{")?;
            cursor.end()?;
            opened = true;
        } else if trimmed == "}" {
            closed = Some(index + 1);
        } else {
            items.push((index + 1, item(&mut cursor)?));
        }
    }
    if closed.is_none() {
        let what = if opened { "a closing `}`" } else { "`graph {`" };
        return Err(ParseError { line: last_line.max(1), col: 1, message: format!("the text ends without {what}") });
    }
    build(items, closed.unwrap_or(last_line))
}

/// One line inside `graph { .. }`, its names not yet resolved.
enum Item {
    Data { is_target: bool, var: DataVar },
    Param(ParamInfo),
    State { name: String, shape: Shape, param: Name },
    Node { id: Name<u32>, shape: Shape, op: RawOp, args: Vec<Name<u32>>, layer: Option<String> },
    Return(Vec<(String, Name<u32>)>),
}

/// A name (or `%n`) with the column it was written at, for errors.
struct Name<T = String> {
    value: T,
    col: usize,
}

/// An op, or a leaf naming a declaration still to be looked up.
enum RawOp {
    Op(Op),
    Leaf { kind: &'static str, name: Name },
}

fn item(cursor: &mut Cursor) -> Result<Item, ParseError> {
    let (code, layer) = match cursor.rest().find(';') {
        Some(at) => {
            let comment = &cursor.rest()[at + 1..];
            (at, Some(comment.strip_prefix(' ').unwrap_or(comment).to_string()))
        }
        None => (cursor.rest().len(), None),
    };
    cursor.limit(code);
    if cursor.peek() == Some('%') {
        let id = cursor.node_id()?;
        cursor.expect(":")?;
        let shape = cursor.shape()?;
        cursor.expect("=")?;
        let op = op(cursor)?;
        let mut args = Vec::new();
        if !cursor.at_end() {
            loop {
                args.push(cursor.node_id()?);
                if !cursor.eat(",") {
                    break;
                }
            }
        }
        cursor.end()?;
        return Ok(Item::Node { id, shape, op, args, layer });
    }
    let keyword = cursor.ident()?;
    let item = match keyword.value.as_str() {
        "input" | "target" => {
            let name = cursor.name()?;
            cursor.expect(":")?;
            let col = cursor.col();
            let shape = cursor.shape()?;
            let (Dim::Batch, Dim::Fixed(width)) = (shape.rows, shape.cols) else {
                return Err(cursor.error_at(col, format!("{} is f32[B,width], not f32{shape}", keyword.value)));
            };
            Item::Data { is_target: keyword.value == "target", var: DataVar { name: name.value, width } }
        }
        "param" => {
            let name = cursor.name()?;
            cursor.expect(":")?;
            let shape = cursor.shape()?;
            cursor.expect("=")?;
            let init = if cursor.eat_word("xavier") { Init::XavierUniform } else { Init::Value(cursor.number()?) };
            Item::Param(ParamInfo { name: name.value, shape, init, layer: layer.clone() })
        }
        "state" => {
            let name = cursor.name()?;
            cursor.expect(":")?;
            let shape = cursor.shape()?;
            cursor.expect_word("for")?;
            Item::State { name: name.value, shape, param: cursor.name()? }
        }
        "return" => {
            let mut outputs = Vec::new();
            if !cursor.at_end() {
                loop {
                    let name = cursor.name()?;
                    cursor.expect("=")?;
                    outputs.push((name.value, cursor.node_id()?));
                    if !cursor.eat(",") {
                        break;
                    }
                }
            }
            Item::Return(outputs)
        }
        other => {
            return Err(cursor.error_at(
                keyword.col,
                format!("expected `%n: ..`, `input`, `target`, `param`, `state`, `return` or `}}`, found `{other}`"),
            ));
        }
    };
    if layer.is_some() && !matches!(item, Item::Param(_)) {
        return Err(
            cursor.error_at(cursor.col_of(cursor.limit), format!("a `{}` line takes no layer comment", keyword.value))
        );
    }
    cursor.end()?;
    Ok(item)
}

/// The op and its attributes, up to its arguments.
fn op(cursor: &mut Cursor) -> Result<RawOp, ParseError> {
    let name = cursor.ident()?;
    let attrs = if cursor.peek() == Some('[') { Some(cursor.attributes()?) } else { None };
    let line = cursor.line;
    let no_attrs = |op: Op| match &attrs {
        None => Ok(RawOp::Op(op)),
        Some(attrs) => {
            Err(ParseError { line, col: attrs.col, message: format!("`{}` takes no attributes", name.value) })
        }
    };
    match name.value.as_str() {
        "input" | "target" | "param" | "state" if attrs.is_none() => {
            let kind = match name.value.as_str() {
                "input" => "input",
                "target" => "target",
                "param" => "param",
                _ => "state",
            };
            Ok(RawOp::Leaf { kind, name: cursor.name()? })
        }
        "hyper" if attrs.is_none() => {
            let hyper = cursor.ident()?;
            let op = match hyper.value.as_str() {
                "lr" => Hyper::LearningRate,
                "step" => Hyper::Step,
                "schedule" => Hyper::Schedule,
                "bias_correction" => {
                    cursor.expect("[")?;
                    let beta = cursor.number()?;
                    cursor.expect("]")?;
                    Hyper::BiasCorrection(beta)
                }
                other => return Err(cursor.error_at(hyper.col, format!("unknown hyper-parameter `{other}`"))),
            };
            Ok(RawOp::Op(Op::Hyper(op)))
        }
        "const" if attrs.is_none() => Ok(RawOp::Op(Op::Const(cursor.number()?))),
        "batch_size" => no_attrs(Op::BatchSize),
        "broadcast" => no_attrs(Op::Broadcast),
        "softmax" => no_attrs(Op::Softmax),
        "log_softmax" => no_attrs(Op::LogSoftmax),
        "concat_cols" => no_attrs(Op::ConcatCols),
        "select" => no_attrs(Op::Select),
        "pow" => {
            let attrs = attrs.ok_or_else(|| cursor.error("`pow` needs its exponent: `pow[2]`"))?;
            Ok(RawOp::Op(Op::Unary(Unary::Pow(attrs.single_number()?))))
        }
        "matmul" => {
            let attrs = attrs.unwrap_or_default();
            let flags = attrs.flags(&["trans_a", "trans_b"])?;
            Ok(RawOp::Op(Op::MatMul { trans_a: flags[0], trans_b: flags[1] }))
        }
        "sum" => {
            let attrs = attrs.ok_or_else(|| cursor.error("`sum` needs its axes: `sum[rows]`, `sum[cols]`"))?;
            let flags = attrs.flags(&["rows", "cols"])?;
            Ok(RawOp::Op(Op::Sum { rows: flags[0], cols: flags[1] }))
        }
        "slice_cols" | "pad_cols" => {
            let attrs = attrs.ok_or_else(|| cursor.error(format!("`{}` needs `[start=n]`", name.value)))?;
            let values = attrs.values(&["start"])?;
            let start = whole(line, &values[0])?;
            Ok(RawOp::Op(if name.value == "slice_cols" { Op::SliceCols { start } } else { Op::PadCols { start } }))
        }
        "dropout" => {
            let attrs = attrs.ok_or_else(|| cursor.error("`dropout` needs `[rate=r,site=n]`"))?;
            let values = attrs.values(&["rate", "site"])?;
            Ok(RawOp::Op(Op::Dropout { rate: number(line, &values[0])?, site: whole(line, &values[1])? }))
        }
        other => {
            let unary = Unary::PLAIN.into_iter().find(|u| u.name() == other);
            let binary = Binary::ALL.into_iter().find(|b| b.name() == other);
            let compare = Compare::ALL.into_iter().find(|c| c.name() == other);
            match (unary, binary, compare) {
                (Some(u), ..) => no_attrs(Op::Unary(u)),
                (_, Some(b), _) => no_attrs(Op::Binary(b)),
                (.., Some(c)) => no_attrs(Op::Compare(c)),
                _ if attrs.is_some() => {
                    Err(cursor.error_at(name.col, format!("`{other}` takes no attributes, or is not an op")))
                }
                _ => Err(cursor.error_at(name.col, format!("unknown op `{other}`"))),
            }
        }
    }
}

/// An attribute's value as a number.
fn number(line: usize, value: &Name) -> Result<f64, ParseError> {
    value.value.parse().map_err(|_| ParseError {
        line,
        col: value.col,
        message: format!("expected a number, found `{}`", value.value),
    })
}

/// An attribute's value as a whole number.
fn whole(line: usize, value: &Name) -> Result<u32, ParseError> {
    value.value.parse().map_err(|_| ParseError {
        line,
        col: value.col,
        message: format!("expected a whole number, found `{}`", value.value),
    })
}

/// The bracketed attributes after an op's name: `[trans_a,trans_b]`, `[start=2]`.
#[derive(Default)]
struct Attributes {
    line: usize,
    col: usize,
    /// Each comma-separated part, with its column.
    parts: Vec<Name>,
}

impl Attributes {
    fn error(&self, col: usize, message: String) -> ParseError {
        ParseError { line: self.line, col, message }
    }

    /// Flags, each at most once and in the given order: which are present.
    fn flags(&self, names: &[&str]) -> Result<Vec<bool>, ParseError> {
        let mut present = vec![false; names.len()];
        let mut next = 0;
        for part in self.parts.iter().filter(|p| !p.value.is_empty() || self.parts.len() > 1) {
            match names.iter().position(|n| *n == part.value) {
                Some(i) if i >= next => {
                    present[i] = true;
                    next = i + 1;
                }
                _ => {
                    return Err(self.error(
                        part.col,
                        format!("expected {} (in this order), found `{}`", quoted(names), part.value),
                    ));
                }
            }
        }
        Ok(present)
    }

    /// `name=value` pairs, exactly these names in this order.
    fn values(&self, names: &[&str]) -> Result<Vec<Name>, ParseError> {
        let expected = || names.iter().map(|n| format!("{n}=..")).collect::<Vec<_>>().join(",");
        if self.parts.len() != names.len() {
            return Err(self.error(self.col, format!("expected `[{}]`", expected())));
        }
        let mut values = Vec::new();
        for (part, name) in self.parts.iter().zip(names) {
            let Some(value) = part.value.strip_prefix(name).and_then(|v| v.strip_prefix('=')) else {
                return Err(self.error(part.col, format!("expected `{name}=..`, found `{}`", part.value)));
            };
            values.push(Name { value: value.to_string(), col: part.col + name.chars().count() + 1 });
        }
        Ok(values)
    }

    /// One number: `pow[3]`.
    fn single_number(&self) -> Result<f64, ParseError> {
        match self.parts.as_slice() {
            [part] => number(self.line, part),
            _ => Err(self.error(self.col, "expected one number in the brackets".into())),
        }
    }
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// Resolve names and ids, and build the graph.
fn build(items: Vec<(usize, Item)>, close_line: usize) -> Result<Graph, ParseError> {
    let mut graph = Graph::default();
    let error = |line, col, message: String| ParseError { line, col, message };
    // Declarations first, wherever they stand, so that nodes may name them.
    for (line, item) in &items {
        let (kind, name) = match item {
            Item::Data { is_target: false, var } => ("input", &var.name),
            Item::Data { is_target: true, var } => ("target", &var.name),
            Item::Param(param) => ("param", &param.name),
            Item::State { name, .. } => ("state", name),
            _ => continue,
        };
        if declaration(&graph, kind, name).is_some() {
            return Err(error(*line, 1, format!("{kind} `{name}` is declared twice")));
        }
        match item {
            Item::Data { is_target: false, var } => graph.inputs.push(var.clone()),
            Item::Data { is_target: true, var } => graph.targets.push(var.clone()),
            Item::Param(param) => graph.params.push(param.clone()),
            Item::State { name, shape, param } => {
                let Some(index) = declaration(&graph, "param", &param.value) else {
                    return Err(error(*line, param.col, format!("state `{name}` is for an undeclared param")));
                };
                graph.states.push(StateInfo { name: name.clone(), shape: *shape, param: index });
            }
            _ => {}
        }
    }
    let defined: std::collections::HashSet<u32> = items
        .iter()
        .filter_map(|(_, item)| match item {
            Item::Node { id, .. } => Some(id.value),
            _ => None,
        })
        .collect();
    let check_defined = |line, id: &Name<u32>| {
        if defined.contains(&id.value) {
            Ok(NodeId(id.value))
        } else {
            Err(error(line, id.col, format!("%{} is not defined", id.value)))
        }
    };
    let mut returned = None;
    for (line, item) in items {
        match item {
            Item::Node { id, shape, op, args, layer } => {
                let next = graph.nodes.len() as u32;
                if id.value < next {
                    return Err(error(
                        line,
                        id.col,
                        format!("%{} comes after %{}: ids must increase", id.value, next - 1),
                    ));
                }
                if id.value > MAX_ID {
                    return Err(error(line, id.col, format!("%{} is too large: ids go up to %{MAX_ID}", id.value)));
                }
                // The printer leaves dead nodes out; stand-ins keep the ids.
                while (graph.nodes.len() as u32) < id.value {
                    let stand_in =
                        Node { op: Op::Const(0.0), args: Vec::new(), shape: Shape::SCALAR, origin: Origin::default() };
                    graph.push_unchecked(stand_in, false);
                }
                let op = match op {
                    RawOp::Op(op) => op,
                    RawOp::Leaf { kind, name } => {
                        let Some(index) = declaration(&graph, kind, &name.value) else {
                            return Err(error(line, name.col, format!("{kind} `{}` is not declared", name.value)));
                        };
                        match kind {
                            "input" => Op::Input(index),
                            "target" => Op::Target(index),
                            "param" => Op::Param(index),
                            _ => Op::State(index),
                        }
                    }
                };
                let args = args.iter().map(|a| check_defined(line, a)).collect::<Result<Vec<_>, _>>()?;
                graph.push_unchecked(Node { op, args, shape, origin: Origin { span: None, layer } }, true);
            }
            Item::Return(outputs) => {
                if let Some(first) = returned {
                    return Err(error(line, 1, format!("a second `return` (the first is on line {first})")));
                }
                returned = Some(line);
                for (name, id) in outputs {
                    if graph.output(&name).is_some() {
                        return Err(error(line, id.col, format!("output `{name}` is returned twice")));
                    }
                    let id = check_defined(line, &id)?;
                    graph.set_output(&name, id);
                }
            }
            _ => {}
        }
    }
    if returned.is_none() {
        return Err(error(close_line, 1, "the graph has no `return` line".into()));
    }
    Ok(graph)
}

/// The index of the declaration `name` of this kind.
fn declaration(graph: &Graph, kind: &str, name: &str) -> Option<u32> {
    let position = match kind {
        "input" => graph.inputs.iter().position(|v| v.name == name),
        "target" => graph.targets.iter().position(|v| v.name == name),
        "param" => graph.params.iter().position(|p| p.name == name),
        _ => graph.states.iter().position(|s| s.name == name),
    };
    position.map(|i| i as u32)
}

/// A position in one line, the tokens separated by spaces.
struct Cursor<'a> {
    line: usize,
    text: &'a str,
    pos: usize,
    /// Where the code ends: the start of the trailing `; comment`.
    limit: usize,
}

impl<'a> Cursor<'a> {
    fn new(line: usize, text: &'a str) -> Cursor<'a> {
        Cursor { line, text, pos: 0, limit: text.len() }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..self.limit]
    }

    /// End the code `len` bytes after the current position.
    fn limit(&mut self, len: usize) {
        self.limit = self.pos + len;
    }

    fn col_of(&self, pos: usize) -> usize {
        self.text[..pos].chars().count() + 1
    }

    fn col(&mut self) -> usize {
        self.skip_spaces();
        self.col_of(self.pos)
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError { line: self.line, col: self.col_of(self.pos), message: message.into() }
    }

    fn error_at(&self, col: usize, message: impl Into<String>) -> ParseError {
        ParseError { line: self.line, col, message: message.into() }
    }

    fn skip_spaces(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_spaces();
        self.rest().chars().next()
    }

    fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// The found token, for messages: `found `x``, or the end of the line.
    fn found(&self) -> String {
        match self.rest().split_whitespace().next() {
            Some(token) => format!("found `{token}`"),
            None => "found the end of the line".to_string(),
        }
    }

    fn end(&mut self) -> Result<(), ParseError> {
        if self.at_end() { Ok(()) } else { Err(self.error(format!("expected the end of the line, {}", self.found()))) }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_spaces();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str) -> Result<(), ParseError> {
        if self.eat(token) { Ok(()) } else { Err(self.error(format!("expected `{token}`, {}", self.found()))) }
    }

    /// Take `word` if it is the next whole word.
    fn eat_word(&mut self, word: &str) -> bool {
        self.skip_spaces();
        let rest = self.rest();
        let whole = rest.strip_prefix(word).is_some_and(|after| after.chars().next().is_none_or(|c| !is_name_char(c)));
        if whole {
            self.pos += word.len();
        }
        whole
    }

    fn expect_word(&mut self, word: &str) -> Result<(), ParseError> {
        if self.eat_word(word) { Ok(()) } else { Err(self.error(format!("expected `{word}`, {}", self.found()))) }
    }

    /// Characters while `keep` holds, at least one.
    fn take(&mut self, what: &str, keep: impl Fn(char) -> bool) -> Result<Name, ParseError> {
        self.skip_spaces();
        let col = self.col_of(self.pos);
        let rest = self.rest();
        let len = rest.find(|c| !keep(c)).unwrap_or(rest.len());
        if len == 0 {
            return Err(self.error(format!("expected {what}, {}", self.found())));
        }
        self.pos += len;
        Ok(Name { value: rest[..len].to_string(), col })
    }

    /// A declaration's or output's name: `h.w`, `grad.h.w`.
    fn name(&mut self) -> Result<Name, ParseError> {
        self.take("a name", is_name_char)
    }

    /// An op's or hyper-parameter's name: letters, digits and `_`.
    fn ident(&mut self) -> Result<Name, ParseError> {
        self.take("a name", |c| c.is_alphanumeric() || c == '_')
    }

    fn number(&mut self) -> Result<f64, ParseError> {
        let token = self.take("a number", |c| c.is_alphanumeric() || matches!(c, '.' | '-' | '+'))?;
        token.value.parse().map_err(|_| self.error_at(token.col, format!("expected a number, found `{}`", token.value)))
    }

    /// `%7`.
    fn node_id(&mut self) -> Result<Name<u32>, ParseError> {
        self.skip_spaces();
        let col = self.col_of(self.pos);
        if !self.eat("%") {
            return Err(self.error(format!("expected a value `%n`, {}", self.found())));
        }
        let digits = self.take("the number after `%`", |c| c.is_ascii_digit())?;
        let value = digits.value.parse().map_err(|_| self.error_at(col, format!("%{} is too large", digits.value)))?;
        Ok(Name { value, col })
    }

    /// `f32[B,4]`.
    fn shape(&mut self) -> Result<Shape, ParseError> {
        self.expect("f32[")?;
        let rows = self.dim()?;
        self.expect(",")?;
        let cols = self.dim()?;
        self.expect("]")?;
        Ok(Shape::new(rows, cols))
    }

    fn dim(&mut self) -> Result<Dim, ParseError> {
        if self.eat("B") {
            return Ok(Dim::Batch);
        }
        let digits = self.take("a size or `B`", |c| c.is_ascii_digit())?;
        let size = digits.value.parse().map_err(|_| self.error_at(digits.col, "the size is too large"))?;
        Ok(Dim::Fixed(size))
    }

    /// `[a,b=c]`, split at the commas.
    fn attributes(&mut self) -> Result<Attributes, ParseError> {
        let col = self.col();
        self.expect("[")?;
        let rest = self.rest();
        let Some(close) = rest.find(']') else {
            return Err(self.error("expected `]` to close the attributes"));
        };
        let mut parts = Vec::new();
        let mut start = self.pos;
        for part in rest[..close].split(',') {
            parts.push(Name { value: part.trim().to_string(), col: self.col_of(start) });
            start += part.len() + 1;
        }
        self.pos += close + 1;
        Ok(Attributes { line: self.line, col, parts })
    }
}

fn is_name_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, ',' | ':' | '=' | ';' | '%' | '[' | ']')
}
