//! The `model` block's layers: `dense` (a matmul, a bias add and its
//! activations, sliced per neuron when they differ) and the activation
//! lists it takes, checked against the built-ins' table and the user
//! functions; any other layer is an expression.

use super::builtins::{self, Kind};
use super::{Checker, MAX_PARAMETERS, NameKind, errors};
use crate::diag::Diagnostic;
use crate::ir::program::Layer;
use crate::ir::{Binary, Dim, Init, NodeId, Op, ParamInfo, Shape};
use crate::span::Span;
use crate::syntax::ast::{self, Expr, ExprKind};

/// One activation of a `dense` layer: `tanh`, or `leaky_relu(0.2)` — the
/// function with its arguments after the first.
#[derive(Clone, Debug)]
struct Activation {
    name: String,
    args: Vec<(NodeId, Span)>,
    /// As written (printed canonically), for `Program::layers`.
    text: String,
    span: Span,
}

impl Activation {
    fn same(&self, other: &Activation) -> bool {
        self.name == other.name && self.args.iter().map(|a| a.0).eq(other.args.iter().map(|a| a.0))
    }
}

impl Checker {
    pub(super) fn layer(&mut self, binding: &ast::Binding) {
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
            None => {
                vec![Activation { name: "identity".into(), args: Vec::new(), text: "identity".into(), span: call_span }]
            }
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
        if activations.len() > 1 && activations.iter().any(|a| a.name == "softmax") {
            let span = activations.iter().find(|a| a.name == "softmax").unwrap().span;
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
                vec![activations[0].text.clone(); units as usize]
            } else {
                activations.iter().map(|a| a.text.clone()).collect()
            },
            bias,
            span: binding.span,
        });
        Some(out)
    }

    fn new_param(&mut self, name: &str, shape: Shape, init: Init, span: Span) -> NodeId {
        let index = self.graph.params.len() as u32;
        self.graph.params.push(ParamInfo { name: name.to_string(), shape, init, layer: self.current_layer.clone() });
        let node = self.graph.add_declared(Op::Param(index), &[], shape, self.origin(span)).expect("a param leaf");
        self.param_nodes.insert(name.to_string(), node);
        node
    }

    /// `tanh` or `[tanh, leaky_relu(0.2)]`, each checked against the known
    /// activations and user functions; arguments after the name are the
    /// function's arguments after the first.
    fn activation_list(&mut self, expr: &Expr) -> Option<Vec<Activation>> {
        let items: Vec<&Expr> = match &expr.kind {
            ExprKind::List(items) => items.iter().collect(),
            _ => vec![expr],
        };
        if items.is_empty() {
            self.diags.push(errors::expected("at least one activation", expr.span, "empty list"));
            return None;
        }
        let mut activations = Vec::new();
        let mut ok = true;
        for item in items {
            let (callee, args) = match &item.kind {
                ExprKind::Name(name) => (ast::Ident { name: name.clone(), span: item.span }, &[][..]),
                ExprKind::Call { callee, args } => (callee.clone(), args.as_slice()),
                _ => {
                    self.diags.push(errors::expected(
                        "an activation name such as `tanh`",
                        item.span,
                        "not an activation",
                    ));
                    ok = false;
                    continue;
                }
            };
            match self.activation(&callee, args, item) {
                Some(activation) => activations.push(activation),
                None => ok = false,
            }
        }
        ok.then_some(activations)
    }

    /// One item of an activation list: `f` or `f(a, ..)`.
    fn activation(&mut self, callee: &ast::Ident, args: &[ast::Arg], item: &Expr) -> Option<Activation> {
        let name = callee.name.as_str();
        if !self.is_activation(name) {
            let mut known: Vec<String> = builtins::names(Kind::Activation).map(String::from).collect();
            known.extend(self.function_order.iter().filter(|f| self.is_activation(f)).cloned());
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            self.diags.push(errors::unknown_function("activation", name, callee.span, known));
            return None;
        }
        let builtin = builtins::lookup(name).filter(|_| !self.functions.contains_key(name));
        let extra = match builtin {
            Some(def) => {
                let (min, max) = def.arity();
                (min - 1, max - 1)
            }
            None => {
                let n = self.functions[name].decl.params.len() - 1;
                (n, n)
            }
        };
        if !(extra.0..=extra.1).contains(&args.len()) {
            let what = format!("{} after the layer's value", builtins::arity_text(extra.0, extra.1));
            let help = format!("in a layer, `{name}(a)` stands for `{name}(z, a)` applied to each value z");
            self.diags.push(errors::arity(name, &what, args.len(), item.span).with_help(help));
            return None;
        }
        let places = builtins::call_places(builtin, name, args, 1, &mut self.diags)?;
        let mut values = Vec::new();
        for arg in args {
            values.push((self.expr(&arg.value)?, arg.value.span));
        }
        if let (Some(def), Some(places)) = (builtin, places) {
            values = self.in_order(def, 1, &places, &values, item.span);
        }
        let text = crate::syntax::print::expr(item);
        Some(Activation { name: name.to_string(), args: values, text, span: item.span })
    }

    /// Apply one activation to the whole layer, or one per neuron: runs of
    /// equal activations share a column slice, and the slices are concatenated.
    fn activate(&mut self, z: NodeId, activations: &[Activation], units: u32, span: Span) -> Option<NodeId> {
        if activations.iter().all(|a| a.same(&activations[0])) {
            return self.apply_activation(&activations[0], z, span);
        }
        let mut parts = Vec::new();
        let mut start = 0usize;
        while start < units as usize {
            let activation = &activations[start];
            let mut end = start + 1;
            while end < units as usize && activations[end].same(activation) {
                end += 1;
            }
            let shape = Shape::batch((end - start) as u32);
            let slice =
                self.graph.add_declared(Op::SliceCols { start: start as u32 }, &[z], shape, self.origin(span)).ok()?;
            parts.push(self.apply_activation(activation, slice, activation.span)?);
            start = end;
        }
        self.node(Op::ConcatCols, &parts, span)
    }

    fn apply_activation(&mut self, activation: &Activation, x: NodeId, span: Span) -> Option<NodeId> {
        self.activation_fn(&activation.name, (x, span), &activation.args, span)
    }
}
