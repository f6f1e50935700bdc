//! Simplification: constant folding, algebraic identities and (through the
//! hash-consing builder) common-subexpression elimination.
//!
//! The pass rebuilds the graph node by node. Each node is first rewritten in
//! terms of the already-simplified arguments by [`rewrite`], which either
//! returns an existing node (an identity such as `x·1 = x`), a new constant
//! (folding), or a canonical form of the node (constants first in
//! commutative ops, nested constant factors merged). Then dead nodes are
//! dropped.

use crate::ir::{Binary, Graph, Node, NodeId, Op, Origin, Shape, Unary};

/// Simplify a graph; outputs keep their names.
pub fn simplify(graph: &Graph) -> Graph {
    simplify_mapped(graph).0
}

/// Simplify, and say where each old node went (`None`: it was dropped).
pub fn simplify_mapped(graph: &Graph) -> (Graph, Vec<Option<NodeId>>) {
    let mut out = graph.empty_like();
    let mut map: Vec<NodeId> = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let args: Vec<NodeId> = node.args.iter().map(|a| map[a.index()]).collect();
        let id = rewrite(&mut out, node, &args);
        map.push(id);
    }
    for (name, id) in &graph.outputs {
        out.set_output(name, map[id.index()]);
    }
    let (compacted, second) = compact_mapped(&out);
    let composed = map.iter().map(|id| second[id.index()]).collect();
    (compacted, composed)
}

/// A copy of the graph with only the nodes that reach an output.
pub fn compact(graph: &Graph) -> Graph {
    compact_mapped(graph).0
}

fn compact_mapped(graph: &Graph) -> (Graph, Vec<Option<NodeId>>) {
    let live = graph.live();
    let mut out = graph.empty_like();
    let mut map: Vec<Option<NodeId>> = vec![None; graph.nodes.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        if !live[i] {
            continue;
        }
        let args: Vec<NodeId> = node.args.iter().map(|a| map[a.index()].expect("live args are live")).collect();
        map[i] = Some(out.add_declared(node.op.clone(), &args, node.shape, node.origin.clone()).expect("same shapes"));
    }
    for (name, id) in &graph.outputs {
        out.set_output(name, map[id.index()].expect("outputs are live"));
    }
    (out, map)
}

struct Ctx<'a> {
    graph: &'a mut Graph,
    origin: Origin,
    shape: Shape,
}

impl Ctx<'_> {
    fn constant_of(&self, id: NodeId) -> Option<f64> {
        match self.graph.node(id).op {
            Op::Const(c) => Some(c),
            _ => None,
        }
    }

    /// A constant of the node's own shape.
    fn constant(&mut self, value: f64) -> NodeId {
        self.graph.add_declared(Op::Const(value), &[], self.shape, self.origin.clone()).expect("const")
    }

    fn scalar(&mut self, value: f64) -> NodeId {
        self.graph.add_declared(Op::Const(value), &[], Shape::SCALAR, self.origin.clone()).expect("const")
    }

    /// `x` at the node's shape: itself, or broadcast when it is smaller.
    fn fit(&mut self, x: NodeId) -> NodeId {
        if self.graph.shape(x) == self.shape {
            return x;
        }
        if let Some(c) = self.constant_of(x) {
            return self.constant(c);
        }
        self.graph.add_declared(Op::Broadcast, &[x], self.shape, self.origin.clone()).expect("broadcast")
    }

    fn make(&mut self, op: Op, args: &[NodeId]) -> NodeId {
        let id = self.graph.add(op, args, self.origin.clone()).expect("rewrites keep shapes");
        self.fit(id)
    }
}

fn rewrite(graph: &mut Graph, node: &Node, args: &[NodeId]) -> NodeId {
    let mut ctx = Ctx { graph, origin: node.origin.clone(), shape: node.shape };
    let consts: Vec<Option<f64>> = args.iter().map(|&a| ctx.constant_of(a)).collect();
    match &node.op {
        Op::Unary(u) => {
            if let Some(c) = consts[0] {
                return ctx.constant(u.eval(c));
            }
            let x = args[0];
            match (u, &ctx.graph.node(x).op) {
                (Unary::Neg, Op::Unary(Unary::Neg)) => return ctx.graph.node(x).args[0],
                // −select(c, a, 0) = select(c, −a, 0), as for products below.
                (Unary::Neg, Op::Select) if (1..3).any(|i| ctx.constant_of(ctx.graph.node(x).args[i]) == Some(0.0)) => {
                    let select = ctx.graph.node(x).clone();
                    let a = rewrite_new(&mut ctx, Op::Unary(Unary::Neg), &[select.args[1]]);
                    let b = rewrite_new(&mut ctx, Op::Unary(Unary::Neg), &[select.args[2]]);
                    return remake(&mut ctx, Op::Select, &[select.args[0], a, b]);
                }
                (Unary::Pow(c), _) if *c == 1.0 => return x,
                (Unary::Pow(c), _) if *c == 0.0 => return ctx.constant(1.0),
                (Unary::Pow(c), Op::Unary(Unary::Pow(d))) => {
                    let base = ctx.graph.node(x).args[0];
                    if d.fract() == 0.0 && c.fract() == 0.0 {
                        return ctx.make(Op::Unary(Unary::Pow(c * d)), &[base]);
                    }
                }
                _ => {}
            }
        }
        Op::Binary(b) => {
            if let Some(id) = without_broadcasts(&mut ctx, node, args) {
                return id;
            }
            if let (Some(x), Some(y)) = (consts[0], consts[1]) {
                return ctx.constant(b.eval(x, y));
            }
            if let Some(id) = binary(&mut ctx, *b, args[0], args[1], consts[0], consts[1]) {
                return id;
            }
        }
        Op::Compare(kind) => {
            if let Some(id) = without_broadcasts(&mut ctx, node, args) {
                return id;
            }
            if let (Some(x), Some(y)) = (consts[0], consts[1]) {
                return ctx.constant(kind.eval(x, y));
            }
        }
        Op::Select => {
            if let Some(id) = without_broadcasts(&mut ctx, node, args) {
                return id;
            }
            // A known condition picks its branch; equal branches need none.
            if let Some(c) = consts[0] {
                return ctx.fit(if c != 0.0 { args[1] } else { args[2] });
            }
            if args[1] == args[2] {
                return ctx.fit(args[1]);
            }
        }
        Op::Broadcast => {
            if let Some(c) = consts[0] {
                return ctx.constant(c);
            }
            if ctx.graph.shape(args[0]) == node.shape {
                return args[0];
            }
        }
        Op::Sum { .. } => {
            // Scalars and signs move out of sums: Σ(c·x) = c·Σx, Σ(−x) = −Σx.
            let inner = ctx.graph.node(args[0]).clone();
            let scalar = |ctx: &Ctx, id: NodeId| ctx.graph.shape(id).is_scalar();
            match inner.op {
                Op::Unary(Unary::Neg) => {
                    let sum = ctx.make(node.op.clone(), &[inner.args[0]]);
                    return rewrite_new(&mut ctx, Op::Unary(Unary::Neg), &[sum]);
                }
                Op::Binary(b @ (Binary::Mul | Binary::Div)) if scalar(&ctx, inner.args[1]) => {
                    let sum = ctx.make(node.op.clone(), &[inner.args[0]]);
                    return rewrite_new(&mut ctx, Op::Binary(b), &[sum, inner.args[1]]);
                }
                Op::Binary(Binary::Mul) if scalar(&ctx, inner.args[0]) => {
                    let sum = ctx.make(node.op.clone(), &[inner.args[1]]);
                    return rewrite_new(&mut ctx, Op::Binary(Binary::Mul), &[inner.args[0], sum]);
                }
                _ => {}
            }
            // Σ of a constant without batch dimensions is the constant times the count.
            let from = ctx.graph.shape(args[0]);
            if let Some(c) = consts[0]
                && from.rows != crate::ir::Dim::Batch
                && from.cols != crate::ir::Dim::Batch
            {
                let count = (from.len(1) / node.shape.len(1)) as f64;
                return ctx.constant(c * count);
            }
        }
        _ => {}
    }
    ctx.graph.add_declared(node.op.clone(), args, node.shape, node.origin.clone()).expect("same shapes")
}

/// The node rebuilt on its arguments' un-broadcast values, for elementwise
/// ops that broadcast by themselves (`None` when no argument is a broadcast
/// or dropping them would change the shape).
fn without_broadcasts(ctx: &mut Ctx, node: &Node, args: &[NodeId]) -> Option<NodeId> {
    let unwrapped: Vec<NodeId> = args
        .iter()
        .map(|&a| {
            let arg = ctx.graph.node(a);
            if arg.op == Op::Broadcast { arg.args[0] } else { a }
        })
        .collect();
    if unwrapped == args {
        return None;
    }
    let shapes: Vec<Shape> = unwrapped.iter().map(|&a| ctx.graph.shape(a)).collect();
    let shape = crate::ir::infer_shape(&node.op, &shapes, None).ok()?;
    (shape == node.shape).then(|| rewrite_new(ctx, node.op.clone(), &unwrapped))
}

/// Build a node through the rewrite rules (for nodes that rules create).
fn rewrite_new(ctx: &mut Ctx, op: Op, args: &[NodeId]) -> NodeId {
    let shapes: Vec<Shape> = args.iter().map(|&a| ctx.graph.shape(a)).collect();
    let shape = crate::ir::infer_shape(&op, &shapes, None).expect("rewrites keep shapes");
    let node = Node { op, args: args.to_vec(), shape, origin: ctx.origin.clone() };
    rewrite(ctx.graph, &node, args)
}

/// A node built through the rewrite rules, at the current node's shape.
fn remake(ctx: &mut Ctx, op: Op, args: &[NodeId]) -> NodeId {
    let id = rewrite_new(ctx, op, args);
    ctx.fit(id)
}

/// Identities and canonical forms for `x ⊕ y`; `None` keeps the node.
fn binary(ctx: &mut Ctx, b: Binary, x: NodeId, y: NodeId, cx: Option<f64>, cy: Option<f64>) -> Option<NodeId> {
    // Constant factors first in products, so that they meet and merge.
    if b == Binary::Mul && cy.is_some() && cx.is_none() {
        return binary(ctx, b, y, x, cy, cx).or_else(|| Some(ctx.make(Op::Binary(Binary::Mul), &[y, x])));
    }
    let op_of = |ctx: &Ctx, id: NodeId| ctx.graph.node(id).op.clone();
    let arg = |ctx: &Ctx, id: NodeId, i: usize| ctx.graph.node(id).args[i];
    match b {
        Binary::Add => {
            if let Some(id) = pads_to_concat(ctx, x, y) {
                return Some(id);
            }
            if let Some(id) = merge_selects(ctx, Binary::Add, x, y) {
                return Some(id);
            }
            if cx == Some(0.0) {
                return Some(ctx.fit(y));
            }
            if cy == Some(0.0) {
                return Some(ctx.fit(x));
            }
            // x + (-y) = x - y
            if op_of(ctx, y) == Op::Unary(Unary::Neg) {
                let inner = arg(ctx, y, 0);
                return Some(remake(ctx, Op::Binary(Binary::Sub), &[x, inner]));
            }
            if op_of(ctx, x) == Op::Unary(Unary::Neg) {
                let inner = arg(ctx, x, 0);
                return Some(remake(ctx, Op::Binary(Binary::Sub), &[y, inner]));
            }
            // Constants last in sums, negative ones as subtraction: x^2 - 1.
            if let Some(c) = cx {
                return Some(if c < 0.0 {
                    let positive = ctx.scalar(-c);
                    remake(ctx, Op::Binary(Binary::Sub), &[y, positive])
                } else {
                    remake(ctx, Op::Binary(Binary::Add), &[y, x])
                });
            }
            if let Some(c) = cy
                && c < 0.0
            {
                let positive = ctx.scalar(-c);
                return Some(remake(ctx, Op::Binary(Binary::Sub), &[x, positive]));
            }
        }
        Binary::Sub => {
            if let Some(id) = merge_selects(ctx, Binary::Sub, x, y) {
                return Some(id);
            }
            if cy == Some(0.0) {
                return Some(ctx.fit(x));
            }
            if cx == Some(0.0) {
                return Some(remake(ctx, Op::Unary(Unary::Neg), &[y]));
            }
            if x == y {
                return Some(ctx.constant(0.0));
            }
            if op_of(ctx, y) == Op::Unary(Unary::Neg) {
                let inner = arg(ctx, y, 0);
                return Some(remake(ctx, Op::Binary(Binary::Add), &[x, inner]));
            }
        }
        Binary::Mul => {
            if cx == Some(0.0) || cy == Some(0.0) {
                return Some(ctx.constant(0.0));
            }
            if cx == Some(1.0) {
                return Some(ctx.fit(y));
            }
            if cy == Some(1.0) {
                return Some(ctx.fit(x));
            }
            if cx == Some(-1.0) {
                return Some(remake(ctx, Op::Unary(Unary::Neg), &[y]));
            }
            if cy == Some(-1.0) {
                return Some(remake(ctx, Op::Unary(Unary::Neg), &[x]));
            }
            // Constant factors merged: c1 · (c2 · z) = (c1 c2) · z.
            if let Some(c1) = cx
                && op_of(ctx, y) == Op::Binary(Binary::Mul)
                && let Some(c2) = ctx.constant_of(arg(ctx, y, 0))
                && ctx.graph.shape(arg(ctx, y, 0)).is_scalar()
            {
                let z = arg(ctx, y, 1);
                let product = ctx.scalar(c1 * c2);
                return Some(remake(ctx, Op::Binary(Binary::Mul), &[product, z]));
            }
            // (−a) · (−b) = a · b; a pulled-out minus sign otherwise.
            let (nx, ny) = (op_of(ctx, x) == Op::Unary(Unary::Neg), op_of(ctx, y) == Op::Unary(Unary::Neg));
            if nx && ny {
                let (a, c) = (arg(ctx, x, 0), arg(ctx, y, 0));
                return Some(remake(ctx, Op::Binary(Binary::Mul), &[a, c]));
            }
            // z · select(k, a, 0) = select(k, z·a, 0) (either side, either
            // branch): no bigger, and the adjoints of a conditional's branches
            // can then merge (see `merge_selects`).
            let zero_branch = |ctx: &Ctx, id: NodeId| {
                op_of(ctx, id) == Op::Select && (1..3).any(|i| ctx.constant_of(arg(ctx, id, i)) == Some(0.0))
            };
            for (select, z) in [(y, x), (x, y)] {
                if zero_branch(ctx, select) {
                    let (cond, a, b) = (arg(ctx, select, 0), arg(ctx, select, 1), arg(ctx, select, 2));
                    let a = rewrite_new(ctx, Op::Binary(Binary::Mul), &[z, a]);
                    let b = rewrite_new(ctx, Op::Binary(Binary::Mul), &[z, b]);
                    return Some(remake(ctx, Op::Select, &[cond, a, b]));
                }
            }
            // z · z = z^2
            if x == y {
                return Some(remake(ctx, Op::Unary(Unary::Pow(2.0)), &[x]));
            }
        }
        Binary::Div => {
            if cy == Some(1.0) {
                return Some(ctx.fit(x));
            }
            if cx == Some(0.0) {
                return Some(ctx.constant(0.0));
            }
            // x / c = (1/c) · x, so constant factors can merge.
            if let Some(c) = cy
                && c != 0.0
                && ctx.graph.shape(y).is_scalar()
            {
                let inverse = ctx.scalar(1.0 / c);
                let node = ctx.graph.add(Op::Binary(Binary::Mul), &[inverse, x], ctx.origin.clone()).ok()?;
                let node_data = ctx.graph.node(node).clone();
                let args = node_data.args.clone();
                return Some(rewrite(ctx.graph, &node_data, &args));
            }
        }
    }
    None
}

/// `select(c, a, b) ± select(c, d, e)` is `select(c, a ± d, b ± e)`: no
/// more work, and the adjoint of a conditional, whose branches each receive
/// the gradient where chosen, `select(c, g, 0) + select(c, 0, g')`, becomes
/// `select(c, g, g')`.
fn merge_selects(ctx: &mut Ctx, op: Binary, x: NodeId, y: NodeId) -> Option<NodeId> {
    let (nx, ny) = (ctx.graph.node(x).clone(), ctx.graph.node(y).clone());
    if nx.op != Op::Select || ny.op != Op::Select || nx.args[0] != ny.args[0] {
        return None;
    }
    if nx.shape != ctx.shape || ny.shape != ctx.shape {
        return None;
    }
    let then = rewrite_new(ctx, Op::Binary(op), &[nx.args[1], ny.args[1]]);
    let otherwise = rewrite_new(ctx, Op::Binary(op), &[nx.args[2], ny.args[2]]);
    Some(remake(ctx, Op::Select, &[nx.args[0], then, otherwise]))
}

/// `pad(a, 0) + pad(b, wa)` covering all columns exactly is `[a | b]`: the
/// gradient of a per-neuron activation list, without the zero fill.
fn pads_to_concat(ctx: &mut Ctx, x: NodeId, y: NodeId) -> Option<NodeId> {
    let width = ctx.shape.width()?;
    let mut parts: Vec<(u32, u32, NodeId)> = Vec::new();
    let mut stack = vec![x, y];
    while let Some(id) = stack.pop() {
        let node = ctx.graph.node(id);
        match node.op {
            Op::PadCols { start } if node.shape == ctx.shape => {
                let inner = node.args[0];
                parts.push((start, ctx.graph.shape(inner).width()?, inner));
            }
            Op::ConcatCols if node.shape == ctx.shape => {
                let mut start = 0;
                for &a in &node.args {
                    let w = ctx.graph.shape(a).width()?;
                    parts.push((start, w, a));
                    start += w;
                }
            }
            _ => return None,
        }
    }
    parts.sort_by_key(|p| p.0);
    let mut next = 0;
    for (start, w, _) in &parts {
        if *start != next {
            return None;
        }
        next += w;
    }
    if next != width {
        return None;
    }
    let args: Vec<NodeId> = parts.iter().map(|p| p.2).collect();
    Some(remake(ctx, Op::ConcatCols, &args))
}
