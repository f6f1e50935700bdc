//! Check: AST → [`Program`] (a typed graph IR plus data bindings and settings).
//!
//! This stage resolves names, checks shapes and values, and spells every
//! language construct with the IR's primitive ops: `dense` becomes a matmul,
//! a bias add and activations ([`layers`]), each built-in its spelling from
//! the table in [`builtins`], a conditional a `select` of a comparison, and
//! a call of a user `fn` its body inlined ([`functions`]). Errors are collected, not fatal: one run
//! reports every independent mistake, each pointing into the file.

pub mod builtins;
mod data;
mod errors;
mod functions;
mod layers;
mod settings;

use crate::diag::Diagnostic;
use crate::ir::program::{Binding, Categories, Layer, LossWeightKind, Program, Task};
use crate::ir::{Binary, Compare, DataVar, Dim, Graph, Init, NodeId, Op, Origin, ParamInfo, Shape, Unary};
use crate::span::Span;
use crate::syntax::ast::{self, BinOp, Expr, ExprKind};
use builtins::{Builtin, Def};
use std::collections::{HashMap, HashSet};

/// Widths and unit counts above this are refused before anything is allocated.
pub const MAX_WIDTH: u64 = 1 << 16;
/// At most this many trainable numbers in one model (1 GiB of f32 would be 2^28).
pub const MAX_PARAMETERS: u64 = 1 << 26;

/// Check a parsed file and lower it to a [`Program`].
pub fn check(file: &ast::File) -> Result<Program, Vec<Diagnostic>> {
    check_with(file, &Categories::new())
}

/// [`check`], with the number of categories of each `one_hot(column)`
/// binding written without one, as counted in the data.
pub fn check_with(file: &ast::File, categories: &Categories) -> Result<Program, Vec<Diagnostic>> {
    check_weighted(file, categories, None)
}

/// [`check_with`], with the class weights that `weights = balanced` stands
/// for, counted on the training rows (without them the graph holds ones
/// and `Program::loss_weights` says they are not resolved).
pub fn check_weighted(
    file: &ast::File,
    categories: &Categories,
    class_weights: Option<&[f64]>,
) -> Result<Program, Vec<Diagnostic>> {
    let mut checker = Checker {
        categories: categories.clone(),
        class_weights: class_weights.map(<[f64]>::to_vec),
        ..Checker::default()
    };
    checker.file(file);
    if checker.diags.is_empty() { Ok(checker.finish()) } else { Err(checker.diags) }
}

/// The `data` block's bindings before the data is read (a `one_hot(column)`
/// without its number has 0 classes): enough to find and read the columns.
/// Errors here are reported again, in full, by [`check`].
pub fn data_bindings(file: &ast::File) -> (Vec<Binding>, crate::ir::program::Missing) {
    let mut bindings = Vec::new();
    let mut missing = crate::ir::program::Missing::Error;
    let mut diags = Vec::new();
    for item in &file.items {
        let ast::Item::Data(block) = item else { continue };
        missing = data::settings(block, &mut diags);
        let (mut inputs, mut targets) = (0, 0);
        for decl in &block.decls {
            let Some(spec) = data::spec(decl, None, &mut diags) else { continue };
            let is_target = decl.kind == ast::DataKind::Target;
            let counter = if is_target { &mut targets } else { &mut inputs };
            bindings.push(spec.binding(decl, *counter));
            *counter += 1;
        }
    }
    (bindings, missing)
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
    /// Every trainable tensor's leaf by name (`h.w`, `h.b`, `x`), for dotted names.
    param_nodes: HashMap<String, NodeId>,
    /// The user functions by name, and their names in file order.
    functions: HashMap<String, functions::Function>,
    function_order: Vec<String>,
    /// While inlining a function: its parameters' values, innermost call last.
    scopes: Vec<HashMap<String, NodeId>>,
    /// Calls already inlined, by function and argument nodes.
    inlined: HashMap<(String, Vec<NodeId>), NodeId>,
    inline_count: usize,
    call_depth_reported: bool,
    /// Dropouts so far: each gets its own random stream.
    dropout_sites: u32,
    /// Categories counted in the data, for `one_hot(column)` without a number.
    categories: crate::ir::program::Categories,
    missing: crate::ir::program::Missing,
    /// The first classification loss outside user functions: the output it
    /// scores, the label as written, and whether it is binary.
    label: Option<(NodeId, NodeId, bool)>,
    /// What `weights = balanced` stands for, when the data was counted.
    class_weights: Option<Vec<f64>>,
    /// The first weighted loss's weights.
    loss_weights: Option<crate::ir::program::LossWeights>,
}

/// The items of a file by kind, with duplicates of singular items reported.
struct Items<'a> {
    data: Option<&'a ast::DataBlock>,
    model: Option<&'a ast::ModelBlock>,
    params: Vec<&'a ast::ParamDecl>,
    fns: Vec<&'a ast::FnDecl>,
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
        self.functions(&items.fns);
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
        let mut items = Items { data: None, model: None, params: Vec::new(), fns: Vec::new(), loss: None, train: None };
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
                ast::Item::Fn(f) => items.fns.push(f),
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
        self.missing = data::settings(block, &mut self.diags);
        for decl in &block.decls {
            let mut diags = Vec::new();
            let spec = data::spec(decl, Some(&self.categories), &mut diags);
            self.diags.extend(diags);
            let Some(spec) = spec else {
                self.fail(&decl.name);
                continue;
            };
            let is_target = decl.kind == ast::DataKind::Target;
            let vars = if is_target { &mut self.graph.targets } else { &mut self.graph.inputs };
            let index = vars.len() as u32;
            let binding = spec.binding(decl, index);
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
        self.param_nodes.entry(decl.name.name.clone()).or_insert(node);
    }

    /// Record that `name`'s definition failed, so that its uses stay quiet.
    fn fail(&mut self, name: &ast::Ident) {
        if !self.names.contains_key(&name.name) {
            self.failed.insert(name.name.clone());
        }
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
            // Inside a function, only its parameters (checked beforehand).
            ExprKind::Name(name) if !self.scopes.is_empty() => self.scopes.last()?.get(name).copied(),
            ExprKind::Name(name) if name.contains('.') => self.dotted(name, span),
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
                let kind = match op {
                    BinOp::Add => Op::Binary(Binary::Add),
                    BinOp::Sub => Op::Binary(Binary::Sub),
                    BinOp::Mul => Op::Binary(Binary::Mul),
                    BinOp::Div => Op::Binary(Binary::Div),
                    BinOp::Lt => Op::Compare(Compare::Lt),
                    BinOp::Le => Op::Compare(Compare::Le),
                    BinOp::Gt => Op::Compare(Compare::Gt),
                    BinOp::Ge => Op::Compare(Compare::Ge),
                    BinOp::Eq => Op::Compare(Compare::Eq),
                    BinOp::Ne => Op::Compare(Compare::Ne),
                    BinOp::Pow => unreachable!("handled above"),
                };
                self.elementwise(kind, op.symbol(), (a?, lhs.span), (b?, rhs.span), span)
            }
            ExprKind::If { cond, then, otherwise } => {
                let c = self.expr(cond);
                let a = self.expr(then);
                let b = self.expr(otherwise);
                self.select((c?, cond.span), (a?, then.span), (b?, otherwise.span), span)
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
        let symbol = match op {
            Binary::Add => "+",
            Binary::Sub => "-",
            Binary::Mul => "*",
            Binary::Div => "/",
        };
        self.elementwise(Op::Binary(op), symbol, a, b, span)
    }

    /// A broadcasting op of two arguments (arithmetic or a comparison).
    fn elementwise(
        &mut self,
        op: Op,
        symbol: &str,
        a: (NodeId, Span),
        b: (NodeId, Span),
        span: Span,
    ) -> Option<NodeId> {
        let (sa, sb) = (self.graph.shape(a.0), self.graph.shape(b.0));
        if Shape::broadcast(sa, sb).is_none() {
            self.diags.push(errors::shape_mismatch(&format!("`{symbol}`"), (a.1, sa), (b.1, sb)).with_help(
                "arithmetic is elementwise: both sides need the same shape, or 1 where they differ \
                 (a [1,n] row or a single number is repeated to fit)",
            ));
            return None;
        }
        self.node(op, &[a.0, b.0], span)
    }

    /// `h.w`, `h.b`: a `dense` layer's parameter.
    fn dotted(&mut self, name: &str, span: Span) -> Option<NodeId> {
        if let Some(&node) = self.param_nodes.get(name) {
            return Some(node);
        }
        let layer = name.split('.').next().unwrap_or_default();
        if self.failed.contains(layer) {
            return None; // the layer's definition has an error, reported already
        }
        let known: Vec<&str> = self.param_nodes.keys().filter(|k| k.contains('.')).map(String::as_str).collect();
        let mut known = known;
        known.sort_unstable();
        self.diags.push(errors::unknown_parameter(name, span, known));
        None
    }

    fn call(&mut self, callee: &ast::Ident, args: &[ast::Arg], span: Span) -> Option<NodeId> {
        let name = callee.name.as_str();
        let is_user = self.functions.contains_key(name);
        let def = builtins::lookup(name);
        if !is_user && def.is_none() {
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
                let known = self.callable_names();
                let known: Vec<&str> = known.iter().map(String::as_str).collect();
                self.diags.push(errors::unknown_function("function", name, callee.span, known));
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
        // `l2(weights)`: every `dense` weight matrix, unless something is named `weights`.
        if let (Some(def @ Def { builtin: Builtin::L1 | Builtin::L2, .. }), [arg]) = (def, args)
            && !is_user
            && arg.name.is_none()
            && matches!(&arg.value.kind, ExprKind::Name(n) if n == "weights")
            && !self.names.contains_key("weights")
            && self.scopes.is_empty()
        {
            return self.regularise_all(def, arg.value.span, span);
        }
        if let (Some(Def { builtin: Builtin::Dropout, .. }), [x, rate]) = (def, args)
            && !is_user
            && x.name.is_none()
            && rate.name.is_none()
        {
            return self.dropout(&x.value, &rate.value, span);
        }
        let builtin = def.filter(|_| !is_user);
        let places = builtins::call_places(builtin, name, args, 0, &mut self.diags)?;
        // A loss's weights are a list or a word, read as written, not as a value.
        if let (Some(def @ Def { builtin: Builtin::CrossEntropy | Builtin::BinaryCrossEntropy, .. }), Some(places)) =
            (builtin, &places)
            && let Some(at) = places.iter().position(|&place| place == 2)
        {
            return self.weighted_loss(def, args, at, span);
        }
        let values: Vec<(Option<NodeId>, Span)> =
            args.iter().map(|arg| (self.expr(&arg.value), arg.value.span)).collect();
        if let Some(def) = builtin {
            let (min, max) = def.arity();
            if !(min..=max).contains(&values.len()) {
                self.diags.push(errors::arity(name, &builtins::arity_text(min, max), values.len(), span));
                return None;
            }
        }
        let mut nodes = Vec::new();
        for (value, arg_span) in &values {
            nodes.push((value.as_ref().copied()?, *arg_span));
        }
        match (builtin, places) {
            (Some(def), Some(places)) => {
                let args = self.in_order(def, 0, &places, &nodes, span);
                self.builtin(def, &args, span)
            }
            _ => self.call_user(name, &nodes, span),
        }
    }

    /// `cross_entropy(p, y, weights = ..)` or `binary_cross_entropy(p, y,
    /// pos_weight = ..)`, the weight argument at `at`.
    fn weighted_loss(&mut self, def: &Def, args: &[ast::Arg], at: usize, span: Span) -> Option<NodeId> {
        if args.len() != 3 {
            let (min, max) = def.arity();
            self.diags.push(errors::arity(def.name, &builtins::arity_text(min, max), args.len(), span));
            return None;
        }
        let kind = match def.builtin {
            Builtin::CrossEntropy => LossWeightKind::Class,
            _ => LossWeightKind::Positive,
        };
        let written = &args[at].value;
        // `p` and `y` have no defaults, so they come first, by position.
        let mut values = args.iter().enumerate().filter(|(i, _)| *i != at).map(|(_, arg)| &arg.value);
        let (p_expr, y_expr) = (values.next()?, values.next()?);
        let p = self.expr(p_expr).map(|node| (node, p_expr.span));
        let y = self.expr(y_expr).map(|node| (node, y_expr.span));
        let none = kind == LossWeightKind::Class && matches!(&written.kind, ExprKind::Name(n) if n == "none");
        let weights = if none { None } else { Some(builtins::Weights::read(kind, written, &mut self.diags)?) };
        let (p, y) = (p?, y?);
        match kind {
            LossWeightKind::Class => self.cross_entropy(p, y, weights.as_ref(), span),
            LossWeightKind::Positive => self.binary_cross_entropy(p, y, weights.as_ref(), span),
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
                    let scored = self.label.filter(|(output, _, _)| *output == out);
                    match (&self.graph.node(out).op, self.graph.shape(out).cols, scored) {
                        (Op::Softmax, Dim::Fixed(classes), _) => Task::Classification { classes },
                        (Op::Unary(Unary::Sigmoid), Dim::Fixed(labels), Some((_, _, true))) => Task::Binary { labels },
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
        let functions = self.function_graphs();
        let label = self.label.filter(|(output, _, _)| Some(*output) == self.last_layer).map(|(_, label, _)| label);
        Program {
            graph: self.graph,
            data: self.data,
            task,
            train: self.train,
            layers: self.layers,
            named,
            functions,
            missing: self.missing,
            label,
            loss_weights: self.loss_weights,
        }
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
                BinOp::Lt => f64::from(a < b),
                BinOp::Le => f64::from(a <= b),
                BinOp::Gt => f64::from(a > b),
                BinOp::Ge => f64::from(a >= b),
                BinOp::Eq => f64::from(a == b),
                BinOp::Ne => f64::from(a != b),
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
