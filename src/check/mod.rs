//! Check: AST → [`Program`] (a typed graph IR plus data bindings and settings).
//!
//! This stage resolves names, checks shapes and values, and spells every
//! language construct with the IR's primitive ops: `dense` becomes a matmul,
//! a bias add and activations (sliced per neuron when the activations
//! differ), `mse` a mean of squares, `cross_entropy` over a softmax layer a
//! stable `log_softmax`. Errors are collected, not fatal: one run reports
//! every independent mistake, each pointing into the file.

mod data;
mod errors;
mod settings;

use crate::diag::Diagnostic;
use crate::ir::program::{Binding, Layer, Program, Task};
use crate::ir::{Binary, DataVar, Dim, Graph, Init, NodeId, Op, Origin, ParamInfo, Shape, Unary};
use crate::span::Span;
use crate::syntax::ast::{self, BinOp, Expr, ExprKind};
use std::collections::{HashMap, HashSet};

/// Widths and unit counts above this are refused before anything is allocated.
pub const MAX_WIDTH: u64 = 1 << 16;
/// At most this many trainable numbers in one model (1 GiB of f32 would be 2^28).
pub const MAX_PARAMETERS: u64 = 1 << 26;

/// Activations a `dense` layer may name, alone or per neuron.
pub const ACTIVATIONS: &[&str] = &["identity", "sigmoid", "tanh", "relu", "softmax"];
/// Functions usable in expressions.
pub const FUNCTIONS: &[&str] = &[
    "exp",
    "log",
    "tanh",
    "sigmoid",
    "relu",
    "abs",
    "identity",
    "softmax",
    "sum",
    "mean",
    "mse",
    "cross_entropy",
    "dense",
];

/// Check a parsed file and lower it to a [`Program`].
pub fn check(file: &ast::File) -> Result<Program, Vec<Diagnostic>> {
    let mut checker = Checker::default();
    checker.file(file);
    if checker.diags.is_empty() { Ok(checker.finish()) } else { Err(checker.diags) }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NameKind {
    Input,
    Target,
    Param,
    Layer,
}

#[derive(Clone, Copy, Debug)]
struct Named {
    kind: NameKind,
    node: NodeId,
    span: Span,
}

#[derive(Default)]
struct Checker {
    graph: Graph,
    diags: Vec<Diagnostic>,
    names: HashMap<String, Named>,
    /// Names whose definition had an error (already reported): uses of them
    /// are not reported again as unknown.
    failed: HashSet<String>,
    /// Every layer of the `model` block, with where it is defined, to explain
    /// a use before the definition.
    layer_spans: HashMap<String, Span>,
    /// Declaration order, for suggestions and stable output.
    name_order: Vec<String>,
    layers: Vec<Layer>,
    data: Vec<Binding>,
    /// The layer whose definition is being lowered, recorded in node origins.
    current_layer: Option<String>,
    loss: Option<(NodeId, Span)>,
    last_layer: Option<NodeId>,
    train: crate::ir::program::TrainConfig,
}

/// The items of a file by kind, with duplicates of singular items reported.
struct Items<'a> {
    data: Option<&'a ast::DataBlock>,
    model: Option<&'a ast::ModelBlock>,
    params: Vec<&'a ast::ParamDecl>,
    loss: Option<&'a ast::LossDecl>,
    train: Option<&'a ast::TrainBlock>,
}

impl Checker {
    fn file(&mut self, file: &ast::File) {
        let items = self.items(file);
        if let Some(data) = items.data {
            self.data_block(data);
        }
        for param in &items.params {
            self.param(param);
        }
        if let Some(model) = items.model {
            for layer in &model.layers {
                self.layer_spans.entry(layer.name.name.clone()).or_insert(layer.name.span);
            }
            for layer in &model.layers {
                self.layer(layer);
            }
        }
        match items.loss {
            Some(loss) => self.loss(loss),
            None if file.items.is_empty() => self.diags.push(errors::empty_file()),
            None => {
                let end = file.items.last().map_or(Span::new(0, 0), |i| i.span());
                self.diags.push(errors::missing_loss(Span::new(end.end as usize, end.end as usize)));
            }
        }
        let has_data = items.data.is_some_and(|d| !d.decls.is_empty());
        if let Some(train) = items.train {
            self.train = settings::train(train, has_data, &mut self.diags);
        }
    }

    fn items<'a>(&mut self, file: &'a ast::File) -> Items<'a> {
        let mut items = Items { data: None, model: None, params: Vec::new(), loss: None, train: None };
        fn once<'a, T>(
            slot: &mut Option<&'a T>,
            item: &'a T,
            span_of: fn(&T) -> Span,
            what: &str,
            diags: &mut Vec<Diagnostic>,
        ) {
            match slot {
                Some(first) => diags.push(errors::duplicate_item(what, span_of(item), span_of(first))),
                None => *slot = Some(item),
            }
        }
        for item in &file.items {
            let diags = &mut self.diags;
            match item {
                ast::Item::Data(d) => once(&mut items.data, d, |x| x.span, "data", diags),
                ast::Item::Model(m) => once(&mut items.model, m, |x| x.span, "model", diags),
                ast::Item::Param(p) => items.params.push(p),
                ast::Item::Loss(l) => once(&mut items.loss, l, |x| x.span, "loss", diags),
                ast::Item::Train(t) => once(&mut items.train, t, |x| x.span, "train", diags),
            }
        }
        items
    }

    fn declare(&mut self, name: &ast::Ident, kind: NameKind, node: NodeId) {
        if let Some(first) = self.names.get(&name.name) {
            self.diags.push(errors::duplicate("name", &name.name, name.span, first.span));
            return;
        }
        self.names.insert(name.name.clone(), Named { kind, node, span: name.span });
        self.name_order.push(name.name.clone());
    }

    fn origin(&self, span: Span) -> Origin {
        Origin { span: Some(span), layer: self.current_layer.clone() }
    }

    /// Add a node, turning a shape error into a diagnostic at `span`.
    fn node(&mut self, op: Op, args: &[NodeId], span: Span) -> Option<NodeId> {
        match self.graph.add(op, args, self.origin(span)) {
            Ok(id) => Some(id),
            Err(err) => {
                self.diags.push(Diagnostic::new("E0201", err.0).with_label(span, "here"));
                None
            }
        }
    }

    fn constant(&mut self, value: f64, span: Span) -> NodeId {
        self.graph.add_declared(Op::Const(value), &[], Shape::SCALAR, self.origin(span)).expect("a scalar constant")
    }

    // ---- data ---------------------------------------------------------------

    fn data_block(&mut self, block: &ast::DataBlock) {
        for decl in &block.decls {
            let mut diags = Vec::new();
            let spec = data::spec(decl, &mut diags);
            self.diags.extend(diags);
            let Some(spec) = spec else {
                self.fail(&decl.name);
                continue;
            };
            let is_target = decl.kind == ast::DataKind::Target;
            let vars = if is_target { &mut self.graph.targets } else { &mut self.graph.inputs };
            let index = vars.len() as u32;
            let binding = Binding {
                name: decl.name.name.clone(),
                is_target,
                index,
                columns: spec.columns,
                encoding: spec.encoding,
                scale: spec.scale,
                standardize: spec.standardize,
                span: decl.span,
            };
            vars.push(DataVar { name: decl.name.name.clone(), width: binding.width() });
            let (op, kind) =
                if is_target { (Op::Target(index), NameKind::Target) } else { (Op::Input(index), NameKind::Input) };
            let shape = Shape::batch(binding.width());
            let node = self.graph.add_declared(op, &[], shape, self.origin(decl.name.span)).expect("a data leaf");
            self.declare(&decl.name, kind, node);
            self.data.push(binding);
        }
    }

    fn count(&mut self, expr: &Expr, what: &str) -> Option<u32> {
        count(expr, what, &mut self.diags)
    }

    // ---- params and layers -------------------------------------------------------

    fn param(&mut self, decl: &ast::ParamDecl) {
        let Some(init) = const_value(&decl.init) else {
            self.diags.push(errors::expected("a constant initial value", decl.init.span, "not a constant number"));
            self.fail(&decl.name);
            return;
        };
        if !init.is_finite() {
            self.diags.push(errors::bad_value(
                format!("initial value {init} is not finite"),
                decl.init.span,
                "use a finite number",
            ));
            self.fail(&decl.name);
            return;
        }
        let index = self.graph.params.len() as u32;
        self.graph.params.push(ParamInfo {
            name: decl.name.name.clone(),
            shape: Shape::SCALAR,
            init: Init::Value(init),
            layer: None,
        });
        let node = self
            .graph
            .add_declared(Op::Param(index), &[], Shape::SCALAR, self.origin(decl.name.span))
            .expect("a param leaf");
        self.declare(&decl.name, NameKind::Param, node);
    }

    fn layer(&mut self, binding: &ast::Binding) {
        self.current_layer = Some(binding.name.name.clone());
        let node = match &binding.value.kind {
            ExprKind::Call { callee, args } if callee.name == "dense" => self.dense(binding, args),
            _ => self.expr(&binding.value),
        };
        self.current_layer = None;
        match node {
            Some(node) => {
                self.declare(&binding.name, NameKind::Layer, node);
                self.last_layer = Some(node);
            }
            None => self.fail(&binding.name),
        }
    }

    /// Record that `name`'s definition failed, so that its uses stay quiet.
    fn fail(&mut self, name: &ast::Ident) {
        if !self.names.contains_key(&name.name) {
            self.failed.insert(name.name.clone());
        }
    }

    fn dense(&mut self, binding: &ast::Binding, args: &[ast::Arg]) -> Option<NodeId> {
        let call_span = binding.value.span;
        let mut positional = Vec::new();
        let mut bias = true;
        for arg in args {
            match &arg.name {
                None => positional.push(&arg.value),
                Some(name) if name.name == "bias" => match &arg.value.kind {
                    ExprKind::Name(v) if v == "true" || v == "false" => bias = v == "true",
                    _ => self.diags.push(errors::expected("`true` or `false`", arg.value.span, "not a boolean")),
                },
                Some(name) => self.diags.push(errors::unknown_argument("dense", &name.name, name.span, &["bias"])),
            }
        }
        if !(2..=3).contains(&positional.len()) {
            self.diags.push(errors::arity(
                "dense",
                "2 or 3 arguments (input, units, activation)",
                positional.len(),
                call_span,
            ));
            return None;
        }
        let source = self.expr(positional[0]);
        let units = self.count(positional[1], "a number of units");
        let activations = match positional.get(2) {
            Some(expr) => self.activation_list(expr)?,
            None => vec![("identity".to_string(), call_span)],
        };
        let (source, units) = (source?, units?);
        let source_shape = self.graph.shape(source);
        let inputs = match source_shape {
            Shape { rows: Dim::Batch, cols: Dim::Fixed(n) } => n,
            _ => {
                self.diags.push(
                    Diagnostic::new("E0201", format!("`dense` needs a batch of rows [B,n], got {source_shape}"))
                        .with_label(positional[0].span, format!("this has shape {source_shape}")),
                );
                return None;
            }
        };
        if activations.len() != 1 && activations.len() != units as usize {
            let span = positional[2].span;
            self.diags.push(errors::width_mismatch(&binding.name.name, span, units as usize, activations.len()));
            return None;
        }
        if activations.len() > 1 && activations.iter().any(|(a, _)| a == "softmax") {
            let span = activations.iter().find(|(a, _)| a == "softmax").unwrap().1;
            self.diags.push(errors::misplaced(
                "`softmax` in a per-neuron list",
                span,
                "softmax couples all neurons of a layer; use it as the layer's only activation",
            ));
            return None;
        }
        let total =
            self.graph.params.iter().map(|p| p.shape.len(1) as u64).sum::<u64>() + (inputs as u64 + 1) * units as u64;
        if total > MAX_PARAMETERS {
            self.diags.push(errors::too_large("the number of trainable parameters", call_span, MAX_PARAMETERS));
            return None;
        }
        let layer = &binding.name.name;
        let name_span = binding.name.span;
        let weight = self.new_param(&format!("{layer}.w"), Shape::fixed(inputs, units), Init::XavierUniform, name_span);
        let mut z = self.node(Op::MatMul { trans_a: false, trans_b: false }, &[source, weight], call_span)?;
        if bias {
            let b = self.new_param(&format!("{layer}.b"), Shape::fixed(1, units), Init::Value(0.0), name_span);
            z = self.node(Op::Binary(Binary::Add), &[z, b], call_span)?;
        }
        let out = self.activate(z, &activations, units, call_span)?;
        self.layers.push(Layer {
            name: layer.clone(),
            inputs,
            units,
            activations: if activations.len() == 1 {
                vec![activations[0].0.clone(); units as usize]
            } else {
                activations.iter().map(|(a, _)| a.clone()).collect()
            },
            bias,
            span: binding.span,
        });
        Some(out)
    }

    fn new_param(&mut self, name: &str, shape: Shape, init: Init, span: Span) -> NodeId {
        let index = self.graph.params.len() as u32;
        self.graph.params.push(ParamInfo { name: name.to_string(), shape, init, layer: self.current_layer.clone() });
        self.graph.add_declared(Op::Param(index), &[], shape, self.origin(span)).expect("a param leaf")
    }

    /// `tanh` or `[tanh, sigmoid]`, each checked against the known activations.
    fn activation_list(&mut self, expr: &Expr) -> Option<Vec<(String, Span)>> {
        let items: Vec<&Expr> = match &expr.kind {
            ExprKind::List(items) => items.iter().collect(),
            _ => vec![expr],
        };
        if items.is_empty() {
            self.diags.push(errors::expected("at least one activation", expr.span, "empty list"));
            return None;
        }
        let mut names = Vec::new();
        let mut ok = true;
        for item in items {
            match &item.kind {
                ExprKind::Name(name) if ACTIVATIONS.contains(&name.as_str()) => names.push((name.clone(), item.span)),
                ExprKind::Name(name) => {
                    self.diags.push(errors::unknown_function(
                        "activation",
                        name,
                        item.span,
                        ACTIVATIONS.iter().copied(),
                    ));
                    ok = false;
                }
                _ => {
                    self.diags.push(errors::expected(
                        "an activation name such as `tanh`",
                        item.span,
                        "not an activation",
                    ));
                    ok = false;
                }
            }
        }
        ok.then_some(names)
    }

    /// Apply one activation to the whole layer, or one per neuron: runs of
    /// equal activations share a column slice, and the slices are concatenated.
    fn activate(&mut self, z: NodeId, activations: &[(String, Span)], units: u32, span: Span) -> Option<NodeId> {
        if activations.len() == 1 || activations.iter().all(|(a, _)| *a == activations[0].0) {
            return self.apply_activation(&activations[0].0, z, span);
        }
        let mut parts = Vec::new();
        let mut start = 0usize;
        while start < units as usize {
            let name = &activations[start].0;
            let mut end = start + 1;
            while end < units as usize && activations[end].0 == *name {
                end += 1;
            }
            let shape = Shape::batch((end - start) as u32);
            let slice =
                self.graph.add_declared(Op::SliceCols { start: start as u32 }, &[z], shape, self.origin(span)).ok()?;
            parts.push(self.apply_activation(name, slice, activations[start].1)?);
            start = end;
        }
        self.node(Op::ConcatCols, &parts, span)
    }

    fn apply_activation(&mut self, name: &str, x: NodeId, span: Span) -> Option<NodeId> {
        let op = match name {
            "identity" => return Some(x),
            "sigmoid" => Op::Unary(Unary::Sigmoid),
            "tanh" => Op::Unary(Unary::Tanh),
            "relu" => Op::Unary(Unary::Relu),
            "softmax" => Op::Softmax,
            _ => unreachable!("activation names are checked against ACTIVATIONS"),
        };
        self.node(op, &[x], span)
    }

    fn loss(&mut self, decl: &ast::LossDecl) {
        self.current_layer = Some("loss".to_string());
        let loss = self.expr(&decl.expr);
        self.current_layer = None;
        let Some(loss) = loss else { return };
        let shape = self.graph.shape(loss);
        if !shape.is_scalar() {
            self.diags.push(errors::loss_not_scalar(decl.expr.span, shape));
            return;
        }
        if !self.depends_on_param(loss) {
            self.diags.push(errors::nothing_to_train(decl.expr.span));
            return;
        }
        self.loss = Some((loss, decl.expr.span));
    }

    fn depends_on_param(&self, root: NodeId) -> bool {
        let mut reach = vec![false; root.index() + 1];
        reach[root.index()] = true;
        for i in (0..=root.index()).rev() {
            if !reach[i] {
                continue;
            }
            let node = &self.graph.nodes[i];
            if matches!(node.op, Op::Param(_)) {
                return true;
            }
            for a in &node.args {
                reach[a.index()] = true;
            }
        }
        false
    }

    // ---- expressions --------------------------------------------------------------

    fn expr(&mut self, expr: &Expr) -> Option<NodeId> {
        let span = expr.span;
        match &expr.kind {
            ExprKind::Number(value) => Some(self.constant(*value, span)),
            ExprKind::Name(name) => match self.names.get(name) {
                Some(named) => Some(named.node),
                // Its definition has an error, reported already.
                None if self.failed.contains(name) => None,
                None => {
                    let known: Vec<&str> = self.name_order.iter().map(String::as_str).collect();
                    let mut diag = errors::unknown_name(name, span, known);
                    if let Some(&later) = self.layer_spans.get(name) {
                        diag = errors::used_before_definition(name, span, later);
                    }
                    self.diags.push(diag);
                    None
                }
            },
            ExprKind::Neg(inner) => {
                let x = self.expr(inner)?;
                self.node(Op::Unary(Unary::Neg), &[x], span)
            }
            ExprKind::Binary { op: BinOp::Pow, lhs, rhs } => {
                let base = self.expr(lhs)?;
                match const_value(rhs) {
                    Some(c) => self.node(Op::Unary(Unary::Pow(c)), &[base], span),
                    None => {
                        // a^b = exp(b·log a) when the exponent is not a constant.
                        let exponent = self.expr(rhs)?;
                        let log = self.node(Op::Unary(Unary::Log), &[base], span)?;
                        let product = self.binary(Binary::Mul, (exponent, rhs.span), (log, lhs.span), span)?;
                        self.node(Op::Unary(Unary::Exp), &[product], span)
                    }
                }
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let a = self.expr(lhs);
                let b = self.expr(rhs);
                let op = match op {
                    BinOp::Add => Binary::Add,
                    BinOp::Sub => Binary::Sub,
                    BinOp::Mul => Binary::Mul,
                    BinOp::Div => Binary::Div,
                    BinOp::Pow => unreachable!("handled above"),
                };
                self.binary(op, (a?, lhs.span), (b?, rhs.span), span)
            }
            ExprKind::Call { callee, args } => self.call(callee, args, span),
            ExprKind::List(_) => {
                self.diags.push(errors::misplaced(
                    "a list",
                    span,
                    "lists give per-neuron activations: `dense(x, 2, [tanh, relu])`",
                ));
                None
            }
        }
    }

    fn binary(&mut self, op: Binary, a: (NodeId, Span), b: (NodeId, Span), span: Span) -> Option<NodeId> {
        let (sa, sb) = (self.graph.shape(a.0), self.graph.shape(b.0));
        if Shape::broadcast(sa, sb).is_none() {
            let symbol = match op {
                Binary::Add => "+",
                Binary::Sub => "-",
                Binary::Mul => "*",
                Binary::Div => "/",
            };
            self.diags.push(errors::shape_mismatch(&format!("`{symbol}`"), (a.1, sa), (b.1, sb)).with_help(
                "arithmetic is elementwise: both sides need the same shape, or 1 where they differ \
                 (a [1,n] row or a single number is repeated to fit)",
            ));
            return None;
        }
        self.node(Op::Binary(op), &[a.0, b.0], span)
    }

    fn call(&mut self, callee: &ast::Ident, args: &[ast::Arg], span: Span) -> Option<NodeId> {
        let name = callee.name.as_str();
        if !FUNCTIONS.contains(&name) {
            if let Some(named) = self.names.get(name) {
                let what = match named.kind {
                    NameKind::Input => "a data input",
                    NameKind::Target => "a data target",
                    NameKind::Param => "a param",
                    NameKind::Layer => "a layer",
                };
                self.diags.push(
                    Diagnostic::new("E0205", format!("`{name}` is {what}, not a function"))
                        .with_label(callee.span, "not callable")
                        .with_label(named.span, "defined here")
                        .with_help(format!("use its value by name, as in `{name} * 2`")),
                );
            } else if self.failed.contains(name) {
                // Its definition has an error, reported already.
            } else {
                self.diags.push(errors::unknown_function("function", name, callee.span, FUNCTIONS.iter().copied()));
            }
            return None;
        }
        if name == "dense" {
            self.diags.push(errors::misplaced(
                "`dense` inside an expression",
                span,
                "define each layer on its own line in the `model` block: `h = dense(x, 8, tanh)`",
            ));
            return None;
        }
        let mut values = Vec::new();
        for arg in args {
            if let Some(arg_name) = &arg.name {
                self.diags.push(errors::unknown_argument(name, &arg_name.name, arg_name.span, &[]));
                return None;
            }
            values.push((self.expr(&arg.value), arg.value.span));
        }
        let expected = match name {
            "mse" | "cross_entropy" => 2,
            _ => 1,
        };
        if values.len() != expected {
            let what = if expected == 1 { "1 argument".to_string() } else { format!("{expected} arguments") };
            self.diags.push(errors::arity(name, &what, values.len(), span));
            return None;
        }
        let mut nodes = Vec::new();
        for (value, arg_span) in &values {
            nodes.push((value.as_ref().copied()?, *arg_span));
        }
        let x = nodes[0].0;
        match name {
            "exp" => self.node(Op::Unary(Unary::Exp), &[x], span),
            "log" => self.node(Op::Unary(Unary::Log), &[x], span),
            "abs" => self.node(Op::Unary(Unary::Abs), &[x], span),
            "identity" => Some(x),
            "tanh" | "sigmoid" | "relu" | "softmax" => self.apply_activation(name, x, span),
            "sum" => self.node(Op::Sum { rows: true, cols: true }, &[x], span),
            "mean" => self.mean(x, span),
            "mse" => {
                let (a, b) = (nodes[0], nodes[1]);
                self.same_shape("`mse`", a, b)?;
                let diff = self.node(Op::Binary(Binary::Sub), &[a.0, b.0], span)?;
                let square = self.node(Op::Unary(Unary::Pow(2.0)), &[diff], span)?;
                self.mean(square, span)
            }
            "cross_entropy" => {
                let (p, y) = (nodes[0], nodes[1]);
                self.same_shape("`cross_entropy`", p, y)?;
                // -Σ y·log p / rows, with log(softmax z) computed as log_softmax z.
                let node = self.graph.node(p.0);
                if node.op != Op::Softmax {
                    self.diags.push(errors::not_a_distribution(p.1));
                    return None;
                }
                let logits = node.args[0];
                let log_p = self.node(Op::LogSoftmax, &[logits], span)?;
                let product = self.node(Op::Binary(Binary::Mul), &[y.0, log_p], span)?;
                let total = self.node(Op::Sum { rows: true, cols: true }, &[product], span)?;
                let rows = self.rows_count(self.graph.shape(p.0).rows, span);
                let mean = self.node(Op::Binary(Binary::Div), &[total, rows], span)?;
                self.node(Op::Unary(Unary::Neg), &[mean], span)
            }
            _ => unreachable!("every name in FUNCTIONS is handled"),
        }
    }

    fn same_shape(&mut self, what: &str, a: (NodeId, Span), b: (NodeId, Span)) -> Option<()> {
        let (sa, sb) = (self.graph.shape(a.0), self.graph.shape(b.0));
        if sa != sb {
            let help = match what {
                "`cross_entropy`" => {
                    "`cross_entropy(p, y)` needs `p` and `y` of the same shape: one column per class \
                     (a target `one_hot(k)` has k)"
                }
                _ => "the model's output needs as many columns as the target it is compared with",
            };
            self.diags.push(errors::shape_mismatch(what, (a.1, sa), (b.1, sb)).with_help(help));
            return None;
        }
        Some(())
    }

    /// The number of rows of a dimension, as a scalar node.
    fn rows_count(&mut self, dim: Dim, span: Span) -> NodeId {
        match dim {
            Dim::Batch => self.graph.add(Op::BatchSize, &[], self.origin(span)).expect("batch size"),
            Dim::Fixed(n) => self.constant(n as f64, span),
        }
    }

    /// Mean of all elements: the sum divided by rows × cols.
    fn mean(&mut self, x: NodeId, span: Span) -> Option<NodeId> {
        let shape = self.graph.shape(x);
        let total = self.node(Op::Sum { rows: true, cols: true }, &[x], span)?;
        let rows = self.rows_count(shape.rows, span);
        let count = match shape.cols {
            Dim::Fixed(1) => rows,
            cols => {
                let cols = self.rows_count(cols, span);
                self.node(Op::Binary(Binary::Mul), &[rows, cols], span)?
            }
        };
        self.node(Op::Binary(Binary::Div), &[total, count], span)
    }

    fn finish(mut self) -> Program {
        let (loss, _) = self.loss.expect("checked: a loss exists when there are no errors");
        self.graph.set_output("loss", loss);
        let task = if self.data.is_empty() {
            Task::Minimize
        } else {
            match self.last_layer {
                Some(out) => {
                    self.graph.set_output("predict", out);
                    match (&self.graph.node(out).op, self.graph.shape(out).cols) {
                        (Op::Softmax, Dim::Fixed(classes)) => Task::Classification { classes },
                        _ => Task::Regression,
                    }
                }
                None => Task::Regression,
            }
        };
        let named = self
            .name_order
            .iter()
            .filter(|name| self.names[*name].kind == NameKind::Layer)
            .map(|name| (name.clone(), self.names[name].node))
            .collect();
        Program { graph: self.graph, data: self.data, task, train: self.train, layers: self.layers, named }
    }
}

/// The value of an expression made only of numbers and arithmetic.
pub fn const_value(expr: &Expr) -> Option<f64> {
    match &expr.kind {
        ExprKind::Number(v) => Some(*v),
        ExprKind::Neg(inner) => Some(-const_value(inner)?),
        ExprKind::Binary { op, lhs, rhs } => {
            let (a, b) = (const_value(lhs)?, const_value(rhs)?);
            Some(match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => a / b,
                BinOp::Pow => a.powf(b),
            })
        }
        _ => None,
    }
}

/// A positive whole number written in the file (a width or a count).
fn count(expr: &Expr, what: &str, diags: &mut Vec<Diagnostic>) -> Option<u32> {
    let Some(value) = const_value(expr) else {
        diags.push(errors::expected(&format!("{what} (a whole number)"), expr.span, "not a constant number"));
        return None;
    };
    if value < 1.0 || value.fract() != 0.0 {
        diags.push(errors::bad_value(
            format!("{what} must be a whole number of at least 1, got {value}"),
            expr.span,
            "write a positive integer",
        ));
        return None;
    }
    if value > MAX_WIDTH as f64 {
        diags.push(errors::too_large(what, expr.span, MAX_WIDTH));
        return None;
    }
    Some(value as u32)
}
