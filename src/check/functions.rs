//! User functions: `fn swish(x) = x * sigmoid(x)`.
//!
//! A function is inlined where it is called: its body is checked again with
//! its parameters bound to the argument nodes, so it is differentiated,
//! simplified and fused exactly like the same expression written out, and
//! its shapes are whatever its arguments' are. Hash-consing makes a repeated
//! call with the same arguments the same nodes; a memo skips re-checking it.
//!
//! A function may reuse a built-in's name (`fn swish(x) = ..`): the file's
//! definition is then used everywhere in the file, as an activation too.
//!
//! Before any call, [`Checker::functions`] checks every definition once, so
//! a mistake in a body is reported once however often it is called (and
//! even if it never is): the body may name only its parameters; every
//! callee must exist and get the right number of arguments; and no function
//! may call itself, directly or through others (inlining would not end).
//! Calls of a function with such a mistake are then quiet. What depends on
//! the arguments — their shapes — is checked at each call, and diagnostics
//! found while inlining point into the body, with a label on the call.

use super::builtins::{self, Arg, Kind, arity_text};
use super::{Checker, errors};
use crate::ir::program::UserFunction;
use crate::ir::{Init, NodeId, Op, ParamInfo, Shape};
use crate::span::Span;
use crate::syntax::ast::{self, Expr, ExprKind};
use std::collections::HashMap;

/// At most this many calls of user functions are inlined in one model
/// (functions calling functions can expand exponentially).
pub const MAX_INLINED_CALLS: usize = 100_000;
/// Calls of user functions nest at most this deep (inlining recurses).
pub const MAX_CALL_DEPTH: usize = 64;

/// A `fn` definition and whether it checked.
#[derive(Clone, Debug)]
pub(super) struct Function {
    pub decl: ast::FnDecl,
    pub ok: bool,
}

impl Checker {
    /// Register and check every `fn`, before the model uses any.
    pub(super) fn functions(&mut self, decls: &[&ast::FnDecl]) {
        let mut order = Vec::new();
        for decl in decls {
            let name = &decl.name.name;
            // A built-in may be redefined (the file's own wins), but not `dense`.
            if name == "dense" {
                self.diags.push(errors::builtin_redefined(name, decl.name.span));
                continue;
            }
            if let Some(first) = self.functions.get(name) {
                self.diags.push(errors::duplicate("function", name, decl.name.span, first.decl.name.span));
                continue;
            }
            let mut ok = true;
            let mut seen: HashMap<&str, Span> = HashMap::new();
            for param in &decl.params {
                if let Some(&first) = seen.get(param.name.as_str()) {
                    self.diags.push(errors::duplicate("parameter", &param.name, param.span, first));
                    ok = false;
                }
                seen.entry(&param.name).or_insert(param.span);
            }
            self.functions.insert(name.clone(), Function { decl: (*decl).clone(), ok });
            order.push(name.clone());
        }
        // Bodies, and who calls whom.
        let mut calls: HashMap<String, Vec<(String, Span)>> = HashMap::new();
        for name in &order {
            let decl = self.functions[name].decl.clone();
            let mut callees = Vec::new();
            if !self.check_body(&decl, &decl.body, &mut callees) {
                self.functions.get_mut(name).expect("registered").ok = false;
            }
            calls.insert(name.clone(), callees);
        }
        for cycle in cycles(&order, &calls) {
            let names: Vec<&str> = cycle.iter().map(|(name, _)| name.as_str()).collect();
            let closing = cycle.last().expect("a cycle has a call").1;
            self.diags.push(errors::recursive_function(&names, closing));
            for (name, _) in &cycle {
                self.functions.get_mut(name).expect("registered").ok = false;
            }
        }
        self.function_order = order;
    }

    /// Names, callees and argument counts in a body; collects the calls of
    /// user functions. False after reporting a mistake.
    fn check_body(&mut self, decl: &ast::FnDecl, expr: &Expr, calls: &mut Vec<(String, Span)>) -> bool {
        match &expr.kind {
            ExprKind::Number(_) => true,
            ExprKind::Name(name) => {
                if decl.params.iter().any(|p| p.name == *name) {
                    return true;
                }
                let params: Vec<&str> = decl.params.iter().map(|p| p.name.as_str()).collect();
                self.diags.push(errors::unknown_in_function(name, &decl.name.name, expr.span, &params));
                false
            }
            ExprKind::Neg(inner) => self.check_body(decl, inner, calls),
            ExprKind::Binary { lhs, rhs, .. } => {
                let left = self.check_body(decl, lhs, calls);
                self.check_body(decl, rhs, calls) && left
            }
            ExprKind::If { cond, then, otherwise } => {
                let c = self.check_body(decl, cond, calls);
                let t = self.check_body(decl, then, calls);
                self.check_body(decl, otherwise, calls) && c && t
            }
            ExprKind::List(_) => {
                self.diags.push(errors::misplaced(
                    "a list",
                    expr.span,
                    "lists give per-neuron activations: `dense(x, 2, [tanh, relu])`",
                ));
                false
            }
            ExprKind::Call { callee, args } => {
                let mut ok = true;
                let name = callee.name.as_str();
                match builtins::lookup(name).filter(|_| !self.functions.contains_key(name)) {
                    // Named arguments are placed now; the call is checked again where it is inlined.
                    Some(def) => ok &= builtins::places(def, args, 0, &mut self.diags).is_some(),
                    None => {
                        for arg in args {
                            if let Some(arg_name) = &arg.name {
                                self.diags.push(errors::unknown_argument(name, &arg_name.name, arg_name.span, &[]));
                                ok = false;
                            }
                        }
                    }
                }
                let expected = match self.functions.get(name) {
                    Some(function) => {
                        calls.push((name.to_string(), callee.span));
                        Some((function.decl.params.len(), function.decl.params.len()))
                    }
                    None if name == "dense" => {
                        self.diags.push(errors::misplaced(
                            "`dense` inside a function",
                            expr.span,
                            "a function computes from its parameters; pass a layer's value in: `f(h)`",
                        ));
                        ok = false;
                        None
                    }
                    None if let Some(def) = builtins::lookup(name) => Some(def.arity()),
                    None => {
                        let known = self.callable_names();
                        let known: Vec<&str> = known.iter().map(String::as_str).collect();
                        self.diags.push(errors::unknown_function("function", name, callee.span, known));
                        ok = false;
                        None
                    }
                };
                if let Some((min, max)) = expected
                    && !(min..=max).contains(&args.len())
                {
                    self.diags.push(errors::arity(name, &arity_text(min, max), args.len(), expr.span));
                    ok = false;
                }
                for arg in args {
                    ok &= self.check_body(decl, &arg.value, calls);
                }
                ok
            }
        }
    }

    /// Every name a call may use: built-ins and user functions.
    pub(super) fn callable_names(&self) -> Vec<String> {
        let mut names: Vec<String> = builtins::BUILTINS.iter().map(|d| d.name.to_string()).collect();
        names.extend(self.function_order.iter().cloned());
        names
    }

    /// Inline a call of the user function `name`.
    pub(super) fn call_user(&mut self, name: &str, args: &[Arg], span: Span) -> Option<NodeId> {
        let function = self.functions.get(name)?.clone();
        if !function.ok {
            return None; // its definition has an error, reported already
        }
        let params = &function.decl.params;
        if params.len() != args.len() {
            let (n, got) = (params.len(), args.len());
            self.diags.push(errors::arity(name, &arity_text(n, n), got, span));
            return None;
        }
        let key = (name.to_string(), args.iter().map(|a| a.0).collect::<Vec<_>>());
        if let Some(&result) = self.inlined.get(&key) {
            return Some(result);
        }
        if self.scopes.len() >= MAX_CALL_DEPTH {
            // Reported once, at the innermost call; the callers stay quiet.
            if !self.call_depth_reported {
                self.call_depth_reported = true;
                self.diags.push(errors::too_large("the nesting of function calls", span, MAX_CALL_DEPTH as u64));
            }
            return None;
        }
        self.inline_count += 1;
        if self.inline_count > MAX_INLINED_CALLS {
            if self.inline_count == MAX_INLINED_CALLS + 1 {
                let what = "the expansion of user functions (calls inlined)";
                self.diags.push(errors::too_large(what, span, MAX_INLINED_CALLS as u64));
            }
            return None;
        }
        let scope = params.iter().zip(args).map(|(p, a)| (p.name.clone(), a.0)).collect();
        self.scopes.push(scope);
        let before = self.diags.len();
        let result = self.expr(&function.decl.body);
        self.scopes.pop();
        // Label the call; through nested calls, keep the innermost and the outermost.
        for diag in &mut self.diags[before..] {
            let label = crate::diag::Label { span, message: format!("in this call of `{name}`") };
            let calls: Vec<usize> =
                (0..diag.labels.len()).filter(|&i| diag.labels[i].message.starts_with("in this call of ")).collect();
            match calls.as_slice() {
                [_, .., outer] => diag.labels[*outer] = label,
                _ => diag.labels.push(label),
            }
        }
        if let Some(result) = result {
            self.inlined.insert(key, result);
        }
        result
    }

    /// Each checked function on scalars, for `nnc grad`: a graph with one
    /// `[1,1]` parameter per function parameter and the body as `loss`.
    /// Functions whose body needs other shapes are left out.
    pub(super) fn function_graphs(&mut self) -> Vec<UserFunction> {
        let mut out = Vec::new();
        for name in self.function_order.clone() {
            let function = self.functions[&name].clone();
            if !function.ok {
                continue;
            }
            let graph = std::mem::take(&mut self.graph);
            let inlined = std::mem::take(&mut self.inlined);
            let diags = self.diags.len();
            let layer = self.current_layer.replace(name.clone());
            let mut args = Vec::new();
            for (index, param) in function.decl.params.iter().enumerate() {
                self.graph.params.push(ParamInfo {
                    name: param.name.clone(),
                    shape: Shape::SCALAR,
                    init: Init::Value(0.0),
                    layer: None,
                });
                let leaf =
                    self.graph.add_declared(Op::Param(index as u32), &[], Shape::SCALAR, self.origin(param.span));
                args.push((leaf.expect("a scalar leaf"), param.span));
            }
            let body = self.call_user(&name, &args, function.decl.span);
            let ok = self.diags.len() == diags;
            self.diags.truncate(diags);
            self.current_layer = layer;
            self.inlined = inlined;
            let mut own = std::mem::replace(&mut self.graph, graph);
            if let (Some(body), true) = (body, ok)
                && own.shape(body).is_scalar()
            {
                own.set_output("loss", body);
                out.push(UserFunction { name, graph: own });
            }
        }
        out
    }
}

/// Every cycle of calls among `order`'s functions, found by depth-first
/// search (without recursion): each as the functions in call order with the
/// span of the call that leads to the next one, the last closing the cycle.
fn cycles(order: &[String], calls: &HashMap<String, Vec<(String, Span)>>) -> Vec<Vec<(String, Span)>> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        Open,
        Done,
    }
    let mut state: HashMap<&str, State> = order.iter().map(|n| (n.as_str(), State::New)).collect();
    let mut found = Vec::new();
    for root in order {
        if state[root.as_str()] != State::New {
            continue;
        }
        // (function, index of its next call to follow, span of the call into it)
        let mut stack: Vec<(&str, usize, Span)> = vec![(root, 0, Span::default())];
        state.insert(root, State::Open);
        while let Some(top) = stack.last_mut() {
            let name = top.0;
            let edges = calls.get(name).map_or(&[][..], Vec::as_slice);
            let Some((callee, call_span)) = edges.get(top.1) else {
                state.insert(name, State::Done);
                stack.pop();
                continue;
            };
            top.1 += 1;
            match state.get(callee.as_str()).copied() {
                Some(State::New) => {
                    state.insert(callee, State::Open);
                    stack.push((callee, 0, *call_span));
                }
                Some(State::Open) => {
                    // The stack from `callee` up is the cycle.
                    let start = stack.iter().position(|(n, _, _)| *n == callee).expect("open means on the stack");
                    let mut cycle: Vec<(String, Span)> = Vec::new();
                    for i in start..stack.len() {
                        let leads = stack.get(i + 1).map_or(*call_span, |next| next.2);
                        cycle.push((stack[i].0.to_string(), leads));
                    }
                    found.push(cycle);
                }
                _ => {}
            }
        }
    }
    found
}

impl Checker {
    /// Whether `name` is a function usable as an activation: a built-in
    /// activation or a user function (of at least one parameter).
    pub(super) fn is_activation(&self, name: &str) -> bool {
        builtins::lookup(name).is_some_and(|d| d.kind == Kind::Activation)
            || self.functions.get(name).is_some_and(|f| !f.decl.params.is_empty())
    }
}
