//! Lowering: graph IR → kernel IR, fusing elementwise chains into loops.
//!
//! The plan, in order:
//! 1. keep the nodes the kernel's outputs need (`loss` and the parameter
//!    updates for training; `loss` and `predict` for evaluation);
//! 2. decide which nodes get a buffer ([`Lowerer::needs_buffer`]); all
//!    others are inlined as expressions into their consumers;
//! 3. emit one loop nest per buffered node in topological order, then the
//!    loss, the prediction, and last the parameter updates — written in place
//!    when no later statement reads the old value;
//! 4. prove every index in bounds ([`super::bounds::check_bounds`]).

use super::BinaryOp;
use super::{Buffer, BufferId, BufferKind, Expr, Extent, Index, Kernel, Local, LoopVar, Stmt, UnaryOp};
use crate::ir::{Binary, Dim, Graph, Hyper, NodeId, Op, Shape, Unary};
use std::collections::HashMap;

/// Which kernel to build from a graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelKind {
    /// Loss, gradients and parameter updates, batch after batch.
    Train,
    /// Loss and predictions for one batch (the whole set), parameters unchanged.
    Eval,
    /// Predictions only: reads no targets (for data without labels).
    Predict,
}

/// A position along one dimension: a loop variable plus a constant, or a
/// constant alone (size-1 dimensions, which broadcast).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Pos {
    var: Option<LoopVar>,
    offset: u32,
}

impl Pos {
    const ZERO: Pos = Pos { var: None, offset: 0 };

    fn shifted(self, by: u32) -> Pos {
        Pos { var: self.var, offset: self.offset + by }
    }
}

/// Choices of the lowering that are tuning, not meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LowerOptions {
    /// Matrix products of at least this many multiply-adds (rows counted
    /// at the largest batch) become a [`Stmt::Gemm`] call instead of a
    /// fused loop nest; `u64::MAX` keeps every product in loops.
    pub gemm_min_macs: u64,
    /// A training kernel doing at least this much work per batch
    /// ([`super::parallel::work`]) has its sums over rows cut into chunks
    /// ([`super::shard`]); `u64::MAX` shards none. A property of the kernel,
    /// not of the threads, so that every thread count runs the same sums.
    pub shard_min_work: u64,
}

/// The default cut-over to the library GEMM, measured on the machine in
/// BENCHMARKS.md ("GEMM cut-over"): below it the fused f32x4 loop nest,
/// which needs no buffer for the product and no call, is as fast or faster.
pub const GEMM_MIN_MACS: u64 = 1 << 20;

impl Default for LowerOptions {
    fn default() -> LowerOptions {
        LowerOptions { gemm_min_macs: GEMM_MIN_MACS, shard_min_work: super::parallel::PARALLEL_MIN_WORK }
    }
}

/// Lower `graph` to a kernel sized for batches of at most `max_batch` rows.
pub fn lower(graph: &Graph, kind: KernelKind, max_batch: usize) -> Result<Kernel, String> {
    lower_with(graph, kind, max_batch, LowerOptions::default())
}

/// [`lower`] with explicit tuning options.
pub fn lower_with(graph: &Graph, kind: KernelKind, max_batch: usize, options: LowerOptions) -> Result<Kernel, String> {
    // A kernel for single rows (per-sample SGD, models without data) is
    // specialised: the batch dimension becomes a constant 1, so its loops and
    // index arithmetic disappear.
    let unit;
    let graph = if max_batch <= 1 {
        unit = with_unit_batch(graph);
        &unit
    } else {
        graph
    };
    let outputs: Vec<(String, NodeId)> = graph
        .outputs
        .iter()
        .filter(|(name, _)| match kind {
            KernelKind::Train => name == "loss" || name.starts_with("update."),
            KernelKind::Eval => name == "loss" || name == "predict",
            KernelKind::Predict => name == "predict",
        })
        .cloned()
        .collect();
    let mut lowerer = Lowerer::new(graph, &outputs, kind, max_batch.max(1))?;
    lowerer.gemm_min_macs = options.gemm_min_macs;
    lowerer.emit_all(&outputs)?;
    let kernel = Kernel {
        kind,
        buffers: lowerer.buffers,
        body: lowerer.body,
        n_loop_vars: lowerer.n_vars,
        n_locals: lowerer.n_locals,
        scratch_len: lowerer.scratch_len,
        max_batch: max_batch.max(1),
        vector_loops: Vec::new(),
        blocked_rows: Vec::new(),
        written_out: Vec::new(),
        paired_loops: Vec::new(),
    };
    super::bounds::check_bounds(&kernel)?;
    debug_verify(&kernel, "lower");
    let mut kernel = kernel;
    super::vectorize::vectorize(&mut kernel);
    debug_verify(&kernel, "vectorize");
    if kind == KernelKind::Train && super::parallel::work(&kernel) >= options.shard_min_work {
        super::shard::shard(&mut kernel);
        debug_verify(&kernel, "shard");
    }
    Ok(kernel)
}

/// In debug builds and tests, [`super::verify`] the kernel a pass made.
fn debug_verify(kernel: &Kernel, pass: &str) {
    if cfg!(debug_assertions)
        && let Err(err) = super::verify(kernel)
    {
        panic!("kernel IR verification failed after {pass} (a compiler bug): {err}");
    }
}

struct Lowerer<'g> {
    graph: &'g Graph,
    live: Vec<bool>,
    uses: Vec<u32>,
    /// Buffers holding node values (scratch, predict or a parameter).
    node_buffer: HashMap<NodeId, BufferId>,
    leaf_buffer: HashMap<Op2, BufferId>,
    buffers: Vec<Buffer>,
    body: Vec<Stmt>,
    n_vars: u32,
    n_locals: u32,
    scratch_len: usize,
    max_batch: usize,
    extents: HashMap<LoopVar, Extent>,
    /// Epilogue node → the matmul or sum computed inside its loop nest.
    epilogue_of: HashMap<NodeId, NodeId>,
    /// Reductions computed inside an epilogue (they get no buffer).
    deferred: std::collections::HashSet<NodeId>,
    /// While emitting an epilogue: the reduction and its accumulator.
    substitute: Option<(NodeId, Local)>,
    /// Matrix products computed by the library GEMM ([`Stmt::Gemm`]).
    gemm: std::collections::HashSet<NodeId>,
    gemm_min_macs: u64,
}

/// Leaves that read memory, as hashable keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Op2 {
    Input(u32),
    Target(u32),
    Param(u32),
    State(u32),
}

impl<'g> Lowerer<'g> {
    fn new(
        graph: &'g Graph,
        outputs: &[(String, NodeId)],
        _kind: KernelKind,
        max_batch: usize,
    ) -> Result<Self, String> {
        let mut live = vec![false; graph.nodes.len()];
        for (_, id) in outputs {
            live[id.index()] = true;
        }
        for i in (0..graph.nodes.len()).rev() {
            if live[i] {
                for a in &graph.nodes[i].args {
                    live[a.index()] = true;
                }
            }
        }
        let mut uses = vec![0u32; graph.nodes.len()];
        for (i, node) in graph.nodes.iter().enumerate() {
            if live[i] {
                if node.shape.cols == Dim::Batch {
                    return Err(format!("%{i} has a batch-wide column dimension {}", node.shape));
                }
                for a in &node.args {
                    uses[a.index()] += 1;
                }
            }
        }
        for (_, id) in outputs {
            uses[id.index()] += 1;
        }
        let mut lowerer = Lowerer {
            graph,
            live,
            uses,
            node_buffer: HashMap::new(),
            leaf_buffer: HashMap::new(),
            buffers: Vec::new(),
            body: Vec::new(),
            n_vars: 0,
            n_locals: 0,
            scratch_len: 0,
            max_batch,
            extents: HashMap::new(),
            epilogue_of: HashMap::new(),
            deferred: Default::default(),
            substitute: None,
            gemm: Default::default(),
            gemm_min_macs: GEMM_MIN_MACS,
        };
        // Leaf buffers in a stable order: parameters, optimizer state, inputs, targets.
        for (i, p) in graph.params.iter().enumerate() {
            let id = lowerer.new_buffer(p.name.clone(), BufferKind::Param(i as u32), p.shape);
            lowerer.leaf_buffer.insert(Op2::Param(i as u32), id);
        }
        for (i, s) in graph.states.iter().enumerate() {
            let id = lowerer.new_buffer(s.name.clone(), BufferKind::State(i as u32), s.shape);
            lowerer.leaf_buffer.insert(Op2::State(i as u32), id);
        }
        for (i, v) in graph.inputs.iter().enumerate() {
            let id = lowerer.new_buffer(v.name.clone(), BufferKind::Input(i as u32), Shape::batch(v.width));
            lowerer.leaf_buffer.insert(Op2::Input(i as u32), id);
        }
        for (i, v) in graph.targets.iter().enumerate() {
            let id = lowerer.new_buffer(v.name.clone(), BufferKind::Target(i as u32), Shape::batch(v.width));
            lowerer.leaf_buffer.insert(Op2::Target(i as u32), id);
        }
        Ok(lowerer)
    }

    fn new_buffer(&mut self, name: String, kind: BufferKind, shape: Shape) -> BufferId {
        self.buffers.push(Buffer { name, kind, shape });
        BufferId(self.buffers.len() as u32 - 1)
    }

    fn scratch(&mut self, node: NodeId) -> BufferId {
        let shape = self.graph.shape(node);
        let offset = self.scratch_len;
        // Keep every buffer 16-byte aligned for vector loads later.
        self.scratch_len += shape.len(self.max_batch).next_multiple_of(4);
        self.new_buffer(format!("{node}"), BufferKind::Scratch { offset }, shape)
    }

    fn var(&mut self, extent: Extent) -> LoopVar {
        let var = LoopVar(self.n_vars);
        self.n_vars += 1;
        self.extents.insert(var, extent);
        var
    }

    fn local(&mut self) -> Local {
        self.n_locals += 1;
        Local(self.n_locals - 1)
    }

    /// Whether a node's value is stored rather than recomputed where used.
    fn needs_buffer(&self, id: NodeId) -> bool {
        let node = self.graph.node(id);
        match node.op {
            Op::Input(_)
            | Op::Target(_)
            | Op::Param(_)
            | Op::State(_)
            | Op::Const(_)
            | Op::Hyper(_)
            | Op::BatchSize => false,
            Op::MatMul { .. } | Op::Sum { .. } | Op::Softmax | Op::LogSoftmax | Op::PadCols { .. } | Op::ConcatCols => {
                true
            }
            Op::Unary(_)
            | Op::Binary(_)
            | Op::Compare(_)
            | Op::Select
            | Op::Dropout { .. }
            | Op::Broadcast
            | Op::SliceCols { .. } => {
                // Shared values are computed once; so are operands that a
                // consumer reads many times (matmul, softmax) and scalars
                // broadcast into larger loops.
                self.uses[id.index()] > 1
                    || self.read_repeatedly(id)
                    || (node.shape.is_scalar() && self.read_in_loop(id))
            }
        }
    }

    /// A scalar used by a larger value would be recomputed for every element.
    fn read_in_loop(&self, id: NodeId) -> bool {
        self.graph
            .nodes
            .iter()
            .enumerate()
            .any(|(i, user)| self.live[i] && user.args.contains(&id) && !user.shape.is_scalar())
    }

    fn read_repeatedly(&self, id: NodeId) -> bool {
        self.graph.nodes.iter().enumerate().any(|(i, user)| {
            self.live[i]
                && user.args.contains(&id)
                && matches!(user.op, Op::MatMul { .. } | Op::Softmax | Op::LogSoftmax)
        })
    }

    fn emit_all(&mut self, outputs: &[(String, NodeId)]) -> Result<(), String> {
        let output_nodes: Vec<NodeId> = outputs.iter().map(|(_, id)| *id).collect();
        let predict = outputs.iter().find(|(n, _)| n == "predict").map(|(_, id)| *id);
        // Updates of parameters and of optimizer state, by the leaf they replace.
        let updates: Vec<(Op2, NodeId)> = outputs
            .iter()
            .filter_map(|(name, id)| {
                let name = name.strip_prefix("update.")?;
                let target = match self.graph.params.iter().position(|p| p.name == name) {
                    Some(index) => Op2::Param(index as u32),
                    None => Op2::State(self.graph.states.iter().position(|s| s.name == name)? as u32),
                };
                Some((target, *id))
            })
            .collect();
        // 0. Reductions whose single chain of consumers ends in a stored
        //    value are computed in that value's loop nest (no buffer).
        //    Large products go to the library GEMM instead, into a buffer of
        //    their own that the epilogue then reads.
        for i in 0..self.graph.nodes.len() {
            let id = NodeId(i as u32);
            if self.live[i] && self.use_gemm(id) {
                self.gemm.insert(id);
            }
        }
        let destinations: Vec<NodeId> = updates.iter().map(|(_, u)| *u).chain(predict).collect();
        for i in 0..self.graph.nodes.len() {
            let id = NodeId(i as u32);
            if self.live[i]
                && !self.gemm.contains(&id)
                && matches!(self.graph.node(id).op, Op::MatMul { .. } | Op::Sum { .. })
                && !destinations.contains(&id)
                && let Some(root) = self.epilogue_root(id, &destinations)
                && !self.epilogue_of.contains_key(&root)
            {
                self.epilogue_of.insert(root, id);
                self.deferred.insert(id);
            }
        }
        // 0b. Plain SGD of a weight from a library product, `w − s·(a·b)`,
        //    accumulates into the weight in the call itself (step 4), when
        //    no other update reads the weight (through nodes that will not
        //    be buffered in step 1).
        let mut fused: HashMap<NodeId, (NodeId, NodeId)> = HashMap::new();
        for (k, (param, update)) in updates.iter().enumerate() {
            if let Some((product, scale)) = self.sgd_on_gemm(*param, *update) {
                // Before step 1: nodes that step 1 will buffer stop the search.
                let read_elsewhere = updates
                    .iter()
                    .enumerate()
                    .any(|(j, (_, u))| j != k && self.inline_reads(*u, true).iter().any(|(p, _)| p == param));
                if !read_elsewhere {
                    fused.insert(*update, (product, scale));
                }
            }
        }
        // 1. Buffered nodes in topological order, except the update outputs
        //    that nothing else reads (an update that another one reads, such
        //    as Adam's new moment, is computed here from the old values and
        //    copied into place in step 4).
        for i in 0..self.graph.nodes.len() {
            let id = NodeId(i as u32);
            if !self.live[i]
                || !self.needs_buffer(id)
                || (self.uses[i] <= 1 && updates.iter().any(|(_, u)| *u == id))
                || self.deferred.contains(&id)
                || fused.values().any(|(product, _)| *product == id)
            {
                continue;
            }
            let buffer = if Some(id) == predict {
                self.new_buffer("predict".into(), BufferKind::Predict, self.graph.shape(id))
            } else if let Some(state) = self.in_place_state(id, &updates) {
                state
            } else {
                self.scratch(id)
            };
            let stmts = self.compute(id, buffer);
            self.body.extend(stmts);
            self.node_buffer.insert(id, buffer);
        }
        // 2. The loss, before any parameter changes.
        if let Some((_, loss)) = outputs.iter().find(|(n, _)| n == "loss") {
            let value = self.expr_at(*loss, Pos::ZERO, Pos::ZERO);
            self.body.push(Stmt::StoreLoss(value));
        }
        // 3. The prediction, if it was not computed into its buffer already.
        if let Some(predict) = predict
            && !self.node_buffer.contains_key(&predict)
        {
            let buffer = self.new_buffer("predict".into(), BufferKind::Predict, self.graph.shape(predict));
            let stmts = self.compute(predict, buffer);
            self.body.extend(stmts);
        }
        // 4. Updates of parameters and state: in place, unless another update
        //    still reads the old value. One computed in step 1 is a copy.
        let reads: Vec<Vec<(Op2, bool)>> = updates
            .iter()
            .map(|(_, u)| if self.node_buffer.contains_key(u) { Vec::new() } else { self.inline_reads(*u, false) })
            .collect();
        let mut deferred = Vec::new();
        for (k, (param, update)) in updates.iter().enumerate() {
            let read_later = reads.iter().enumerate().any(|(j, r)| j != k && r.iter().any(|(p, _)| p == param));
            let reindexed = reads[k].iter().any(|(p, shifted)| p == param && *shifted);
            let param_buffer = self.leaf_buffer[param];
            if let Some(&(product, scale)) = fused.get(update) {
                let stmts = self.compute(product, param_buffer);
                let scale = Expr::Unary(UnaryOp::Neg, Box::new(self.expr_at(scale, Pos::ZERO, Pos::ZERO)));
                self.body.extend(stmts.into_iter().map(|stmt| match stmt {
                    Stmt::Gemm(g) => Stmt::Gemm(super::Gemm { accumulate: Some(scale.clone()), ..g }),
                    other => other,
                }));
            } else if let Some(&computed) = self.node_buffer.get(update) {
                let shape = self.graph.shape(*update);
                if computed == param_buffer {
                    // Written in place in step 1.
                } else if read_later {
                    deferred.push((param_buffer, computed, shape));
                } else {
                    let stmts = self.for_each(shape, |lw, r, c| {
                        let index = lw.index(shape, r, c);
                        vec![Stmt::Store {
                            buffer: param_buffer,
                            index: index.clone(),
                            value: Expr::Load(computed, index),
                        }]
                    });
                    self.body.extend(stmts);
                }
            } else if read_later || reindexed {
                let temp = self.scratch(*update);
                let stmts = self.compute(*update, temp);
                self.body.extend(stmts);
                deferred.push((param_buffer, temp, self.graph.shape(*update)));
            } else {
                let stmts = self.compute(*update, param_buffer);
                self.body.extend(stmts);
            }
        }
        for (param_buffer, temp, shape) in deferred {
            let stmts = self.for_each(shape, |lw, r, c| {
                let index = lw.index(shape, r, c);
                vec![Stmt::Store { buffer: param_buffer, index: index.clone(), value: Expr::Load(temp, index) }]
            });
            self.body.extend(stmts);
        }
        let _ = output_nodes;
        Ok(())
    }

    /// Whether matmul `id` is large enough for the library GEMM, and both
    /// its operands will be whole buffers (leaves, or buffered nodes).
    fn use_gemm(&self, id: NodeId) -> bool {
        let node = self.graph.node(id);
        let Op::MatMul { trans_a, .. } = node.op else { return false };
        let in_buffer = |a: NodeId| {
            matches!(self.graph.node(a).op, Op::Input(_) | Op::Target(_) | Op::Param(_) | Op::State(_))
                || self.needs_buffer(a)
        };
        if !node.args.iter().all(|&a| in_buffer(a)) {
            return false;
        }
        let a_shape = self.graph.shape(node.args[0]);
        let inner = if trans_a { a_shape.rows } else { a_shape.cols };
        let size = |d: Dim| d.resolve(self.max_batch) as u64;
        let macs = size(node.shape.rows).saturating_mul(size(node.shape.cols)).saturating_mul(size(inner));
        macs >= self.gemm_min_macs
    }

    /// `(product, s)` when update `update` of `param` is `param − s·product`
    /// (or `− product·s`) with `s` a scalar and `product` a library GEMM
    /// used only there, whose operands are not `param` itself.
    fn sgd_on_gemm(&self, param: Op2, update: NodeId) -> Option<(NodeId, NodeId)> {
        let Op2::Param(index) = param else { return None };
        let node = self.graph.node(update);
        if node.op != Op::Binary(Binary::Sub) || self.graph.node(node.args[0]).op != Op::Param(index) {
            return None;
        }
        let step = self.graph.node(node.args[1]);
        if step.op != Op::Binary(Binary::Mul) || self.uses[node.args[1].index()] != 1 {
            return None;
        }
        let (x, y) = (step.args[0], step.args[1]);
        let (product, scale) = if self.graph.shape(x).is_scalar() { (y, x) } else { (x, y) };
        let reads_param = self.graph.node(product).args.iter().any(|a| self.graph.node(*a).op == Op::Param(index));
        (self.gemm.contains(&product)
            && self.uses[product.index()] == 1
            && self.graph.shape(scale).is_scalar()
            && self.graph.shape(product) == node.shape
            && !reads_param)
            .then_some((product, scale))
    }

    /// The buffer holding node `id`'s whole value: its own, or its leaf's.
    fn whole_buffer(&self, id: NodeId) -> BufferId {
        if let Some(&buffer) = self.node_buffer.get(&id) {
            return buffer;
        }
        let key = match self.graph.node(id).op {
            Op::Input(i) => Op2::Input(i),
            Op::Target(i) => Op2::Target(i),
            Op::Param(i) => Op2::Param(i),
            Op::State(i) => Op2::State(i),
            ref op => unreachable!("`use_gemm` admits only buffered operands, not {}", op.name()),
        };
        self.leaf_buffer[&key]
    }

    /// The stored node at the end of `reduction`'s chain of single-use,
    /// same-shape elementwise consumers, if there is one.
    fn epilogue_root(&self, reduction: NodeId, destinations: &[NodeId]) -> Option<NodeId> {
        let shape = self.graph.shape(reduction);
        let mut current = reduction;
        loop {
            if self.uses[current.index()] != 1 {
                return None;
            }
            let user = (current.index() + 1..self.graph.nodes.len())
                .find(|&i| self.live[i] && self.graph.nodes[i].args.contains(&current))
                .map(|i| NodeId(i as u32))?;
            let node = self.graph.node(user);
            if !node.op.is_elementwise() || node.shape != shape {
                return None;
            }
            if self.needs_buffer(user) || destinations.contains(&user) {
                return Some(user);
            }
            current = user;
        }
    }

    /// The state buffer that update `id` can be computed into in step 1,
    /// before the loss: when the state's old value is read only by `id`
    /// itself, or by one inlined elementwise node that only `id` uses (as in
    /// `m ← β·m + (1−β)·g`), so no one reads it after it is overwritten.
    fn in_place_state(&self, id: NodeId, updates: &[(Op2, NodeId)]) -> Option<BufferId> {
        let target = updates.iter().find(|(t, u)| *u == id && matches!(t, Op2::State(_)))?.0;
        let Op2::State(s) = target else { return None };
        let shape = self.graph.shape(id);
        let users = |n: usize| -> Vec<usize> {
            (n + 1..self.graph.nodes.len())
                .filter(|&i| self.live[i] && self.graph.nodes[i].args.contains(&NodeId(n as u32)))
                .collect()
        };
        let leaf = (0..self.graph.nodes.len()).find(|&i| self.live[i] && self.graph.nodes[i].op == Op::State(s))?;
        let same_position = |i: usize| self.graph.nodes[i].op.is_elementwise() && self.graph.nodes[i].shape == shape;
        let ok = match users(leaf)[..] {
            [user] if user == id.index() => same_position(user),
            [user] => {
                same_position(user)
                    && same_position(id.index())
                    && self.uses[user] == 1
                    && !self.needs_buffer(NodeId(user as u32))
                    && users(user)[..] == [id.index()]
            }
            _ => false,
        };
        ok.then(|| self.leaf_buffer[&target])
    }

    /// Parameters and state an expression reads through inlined nodes, and
    /// whether the read goes through a change of index (a slice or broadcast).
    /// With `ahead`, before step 1 has run: nodes that step 1 will buffer
    /// count as buffered.
    fn inline_reads(&self, id: NodeId, ahead: bool) -> Vec<(Op2, bool)> {
        let mut out = Vec::new();
        let mut stack = vec![(id, false)];
        while let Some((n, shifted)) = stack.pop() {
            let node = self.graph.node(n);
            match node.op {
                Op::Param(p) => out.push((Op2::Param(p), shifted)),
                Op::State(s) => out.push((Op2::State(s), shifted)),
                _ => {}
            }
            if matches!(node.op, Op::Param(_) | Op::State(_)) {
                continue;
            }
            let buffered_ahead = ahead && self.needs_buffer(n) && !self.deferred.contains(&n);
            if n != id && (self.node_buffer.contains_key(&n) || buffered_ahead) {
                continue;
            }
            // Anything but a same-position elementwise op reads other elements.
            let changes_index = !node.op.is_elementwise();
            for a in &node.args {
                stack.push((*a, shifted || changes_index));
            }
        }
        out
    }

    fn index(&self, shape: Shape, row: Pos, col: Pos) -> Index {
        let cols = match shape.cols {
            Dim::Fixed(n) => n,
            Dim::Batch => unreachable!("rejected in Lowerer::new"),
        };
        let mut terms = Vec::new();
        if let Some(v) = row.var {
            terms.push((v, cols));
        }
        if let Some(v) = col.var {
            terms.push((v, 1));
        }
        Index { terms, offset: row.offset * cols + col.offset }
    }

    fn extent(dim: Dim) -> Extent {
        match dim {
            Dim::Batch => Extent::Batch,
            Dim::Fixed(n) => Extent::Fixed(n),
        }
    }

    /// Loops over every element of `shape` (size-1 dimensions get no loop).
    fn for_each(&mut self, shape: Shape, body: impl FnOnce(&mut Self, Pos, Pos) -> Vec<Stmt>) -> Vec<Stmt> {
        let row_var = (!shape.rows.is_one()).then(|| self.var(Self::extent(shape.rows)));
        let col_var = (!shape.cols.is_one()).then(|| self.var(Self::extent(shape.cols)));
        let row = Pos { var: row_var, offset: 0 };
        let col = Pos { var: col_var, offset: 0 };
        let mut stmts = body(self, row, col);
        if let Some(var) = col_var {
            stmts = vec![Stmt::Loop { var, extent: Self::extent(shape.cols), body: stmts }];
        }
        if let Some(var) = row_var {
            stmts = vec![Stmt::Loop { var, extent: Self::extent(shape.rows), body: stmts }];
        }
        stmts
    }

    /// A matmul or sum into `buffer`; with an epilogue, the store holds the
    /// epilogue node's value computed from the accumulator instead.
    fn reduction(&mut self, id: NodeId, buffer: BufferId, epilogue: Option<NodeId>) -> Vec<Stmt> {
        let node = self.graph.node(id).clone();
        let shape = node.shape;
        match node.op {
            Op::MatMul { trans_a, trans_b } => {
                let (a, b) = (node.args[0], node.args[1]);
                let a_shape = self.graph.shape(a);
                let inner = if trans_a { a_shape.rows } else { a_shape.cols };
                // `a · bᵀ` reads b down its columns; with b of fixed size
                // (a weight), copy it transposed once so the product's inner
                // loop reads rows, which vector loops load contiguously.
                let mut stmts = Vec::new();
                let mut transposed = None;
                let b_shape = self.graph.shape(b);
                if trans_b && b_shape.rows != Dim::Batch && b_shape.cols != Dim::Batch && !b_shape.cols.is_one() {
                    let t_shape = Shape::new(b_shape.cols, b_shape.rows);
                    let offset = self.scratch_len;
                    self.scratch_len += t_shape.len(self.max_batch).next_multiple_of(4);
                    let t = self.new_buffer(format!("{b}ᵀ"), BufferKind::Scratch { offset }, t_shape);
                    stmts.extend(self.for_each(t_shape, |lw, r, c| {
                        let value = lw.expr_at(b, c, r);
                        vec![Stmt::Store { buffer: t, index: lw.index(t_shape, r, c), value }]
                    }));
                    transposed = Some((t, t_shape));
                }
                stmts.extend(self.for_each(shape, |lw, r, c| {
                    let acc = lw.local();
                    let k = lw.var(Self::extent(inner));
                    let kp = Pos { var: Some(k), offset: 0 };
                    let lhs = if trans_a { lw.expr_at(a, kp, r) } else { lw.expr_at(a, r, kp) };
                    let rhs = match transposed {
                        Some((t, t_shape)) => {
                            let c = if t_shape.cols.is_one() { Pos::ZERO } else { c };
                            Expr::Load(t, lw.index(t_shape, kp, c))
                        }
                        None if trans_b => lw.expr_at(b, c, kp),
                        None => lw.expr_at(b, kp, c),
                    };
                    let product = Expr::Binary(BinaryOp::Mul, Box::new(lhs), Box::new(rhs));
                    vec![
                        Stmt::Assign { local: acc, value: Expr::Const(0.0) },
                        Stmt::Loop {
                            var: k,
                            extent: Self::extent(inner),
                            body: vec![Stmt::Assign { local: acc, value: add(Expr::Local(acc), product) }],
                        },
                        Stmt::Store { buffer, index: lw.index(shape, r, c), value: lw.finish(id, acc, epilogue, r, c) },
                    ]
                }));
                stmts
            }
            Op::Sum { rows, cols } => {
                let a = node.args[0];
                let from = self.graph.shape(a);
                self.for_each(shape, |lw, r, c| {
                    let acc = lw.local();
                    let reduced_rows = (rows && !from.rows.is_one()).then(|| lw.var(Self::extent(from.rows)));
                    let reduced_cols = (cols && !from.cols.is_one()).then(|| lw.var(Self::extent(from.cols)));
                    let ar = reduced_rows.map_or(r, |v| Pos { var: Some(v), offset: 0 });
                    let ac = reduced_cols.map_or(c, |v| Pos { var: Some(v), offset: 0 });
                    let value = lw.expr_at(a, ar, ac);
                    let mut inner = vec![Stmt::Assign { local: acc, value: add(Expr::Local(acc), value) }];
                    if let Some(v) = reduced_cols {
                        inner = vec![Stmt::Loop { var: v, extent: Self::extent(from.cols), body: inner }];
                    }
                    if let Some(v) = reduced_rows {
                        inner = vec![Stmt::Loop { var: v, extent: Self::extent(from.rows), body: inner }];
                    }
                    let mut stmts = vec![Stmt::Assign { local: acc, value: Expr::Const(0.0) }];
                    stmts.extend(inner);
                    let value = lw.finish(id, acc, epilogue, r, c);
                    stmts.push(Stmt::Store { buffer, index: lw.index(shape, r, c), value });
                    stmts
                })
            }
            _ => unreachable!("only matmuls and sums are reductions"),
        }
    }

    /// The value stored at `[r, c]` from accumulator `acc` of reduction `id`.
    fn finish(&mut self, id: NodeId, acc: Local, epilogue: Option<NodeId>, r: Pos, c: Pos) -> Expr {
        match epilogue {
            None => Expr::Local(acc),
            Some(root) => {
                self.substitute = Some((id, acc));
                let value = self.inline(root, r, c);
                self.substitute = None;
                value
            }
        }
    }

    /// Statements that store node `id` into `buffer`.
    fn compute(&mut self, id: NodeId, buffer: BufferId) -> Vec<Stmt> {
        if let Some(&reduction) = self.epilogue_of.get(&id) {
            // A matmul or sum feeding only `id`: computed in one loop nest
            // whose store evaluates `id` from the accumulator.
            return self.reduction(reduction, buffer, Some(id));
        }
        let node = self.graph.node(id).clone();
        let shape = node.shape;
        match node.op {
            Op::MatMul { trans_a, trans_b } if self.gemm.contains(&id) => {
                let (a, b) = (node.args[0], node.args[1]);
                let a_shape = self.graph.shape(a);
                let inner = if trans_a { a_shape.rows } else { a_shape.cols };
                vec![Stmt::Gemm(super::Gemm {
                    out: buffer,
                    a: self.whole_buffer(a),
                    trans_a,
                    b: self.whole_buffer(b),
                    trans_b,
                    m: Self::extent(shape.rows),
                    n: shape.width().expect("fixed widths"),
                    k: Self::extent(inner),
                    accumulate: None,
                })]
            }
            Op::MatMul { .. } | Op::Sum { .. } => self.reduction(id, buffer, None),
            Op::Softmax | Op::LogSoftmax => {
                let a = node.args[0];
                let log = node.op == Op::LogSoftmax;
                let row_shape = Shape::new(shape.rows, Dim::Fixed(1));
                self.for_each(row_shape, |lw, r, _| {
                    let (max, sum) = (lw.local(), lw.local());
                    let width = Self::extent(shape.cols);
                    let (j1, j2, j3) = (lw.var(width), lw.var(width), lw.var(width));
                    let at = |lw: &mut Self, j: LoopVar| lw.expr_at(a, r, Pos { var: Some(j), offset: 0 });
                    let x1 = at(lw, j1);
                    let x2 = at(lw, j2);
                    let x3 = at(lw, j3);
                    let shifted = |x: Expr| Expr::Binary(BinaryOp::Sub, Box::new(x), Box::new(Expr::Local(max)));
                    let out = if log {
                        let log_sum = Expr::Unary(UnaryOp::Log, Box::new(Expr::Local(sum)));
                        Expr::Binary(BinaryOp::Sub, Box::new(shifted(x3)), Box::new(log_sum))
                    } else {
                        let e = Expr::Unary(UnaryOp::Exp, Box::new(shifted(x3)));
                        Expr::Binary(BinaryOp::Div, Box::new(e), Box::new(Expr::Local(sum)))
                    };
                    let store_index = lw.index(shape, r, Pos { var: Some(j3), offset: 0 });
                    vec![
                        Stmt::Assign { local: max, value: Expr::Const(f32::NEG_INFINITY) },
                        Stmt::Loop {
                            var: j1,
                            extent: width,
                            body: vec![Stmt::Assign {
                                local: max,
                                value: Expr::Binary(BinaryOp::Max, Box::new(Expr::Local(max)), Box::new(x1)),
                            }],
                        },
                        Stmt::Assign { local: sum, value: Expr::Const(0.0) },
                        Stmt::Loop {
                            var: j2,
                            extent: width,
                            body: vec![Stmt::Assign {
                                local: sum,
                                value: add(Expr::Local(sum), Expr::Unary(UnaryOp::Exp, Box::new(shifted(x2)))),
                            }],
                        },
                        Stmt::Loop {
                            var: j3,
                            extent: width,
                            body: vec![Stmt::Store { buffer, index: store_index, value: out }],
                        },
                    ]
                })
            }
            Op::PadCols { start } => {
                let a = node.args[0];
                let a_shape = self.graph.shape(a);
                let mut stmts = self.for_each(shape, |lw, r, c| {
                    vec![Stmt::Store { buffer, index: lw.index(shape, r, c), value: Expr::Const(0.0) }]
                });
                stmts.extend(self.for_each(a_shape, |lw, r, c| {
                    let value = lw.expr_at(a, r, c);
                    vec![Stmt::Store { buffer, index: lw.index(shape, r, c.shifted(start)), value }]
                }));
                stmts
            }
            Op::ConcatCols => {
                let mut stmts = Vec::new();
                let mut start = 0;
                for a in node.args.clone() {
                    let a_shape = self.graph.shape(a);
                    stmts.extend(self.for_each(a_shape, |lw, r, c| {
                        let value = lw.expr_at(a, r, c);
                        vec![Stmt::Store { buffer, index: lw.index(shape, r, c.shifted(start)), value }]
                    }));
                    start += a_shape.width().expect("fixed widths");
                }
                stmts
            }
            _ => self.for_each(shape, |lw, r, c| {
                let value = lw.inline(id, r, c);
                vec![Stmt::Store { buffer, index: lw.index(shape, r, c), value }]
            }),
        }
    }

    /// The value of node `id` at `[row, col]` as an expression: a load from
    /// its buffer, or its computation inlined.
    fn expr_at(&mut self, id: NodeId, row: Pos, col: Pos) -> Expr {
        if let Some((reduction, acc)) = self.substitute
            && reduction == id
        {
            return Expr::Local(acc);
        }
        let shape = self.graph.shape(id);
        // Size-1 dimensions broadcast: always index 0.
        let row = if shape.rows.is_one() { Pos::ZERO } else { row };
        let col = if shape.cols.is_one() { Pos::ZERO } else { col };
        if let Some(&buffer) = self.node_buffer.get(&id) {
            return Expr::Load(buffer, self.index(shape, row, col));
        }
        self.inline(id, row, col)
    }

    fn inline(&mut self, id: NodeId, row: Pos, col: Pos) -> Expr {
        let node = self.graph.node(id).clone();
        let leaf = |lw: &Self, key: Op2| Expr::Load(lw.leaf_buffer[&key], lw.index(node.shape, row, col));
        match node.op {
            Op::Input(i) => leaf(self, Op2::Input(i)),
            Op::Target(i) => leaf(self, Op2::Target(i)),
            Op::Param(i) => leaf(self, Op2::Param(i)),
            Op::State(i) => leaf(self, Op2::State(i)),
            Op::Const(c) => Expr::Const(c as f32),
            Op::Hyper(Hyper::LearningRate) => Expr::LearningRate,
            Op::Hyper(h) => Expr::Hyper(h),
            Op::BatchSize => Expr::BatchSize,
            Op::Unary(u) => {
                let x = self.expr_at(node.args[0], row, col);
                unary(u, x)
            }
            Op::Binary(b) => {
                let x = self.expr_at(node.args[0], row, col);
                let y = self.expr_at(node.args[1], row, col);
                let op = match b {
                    Binary::Add => BinaryOp::Add,
                    Binary::Sub => BinaryOp::Sub,
                    Binary::Mul => BinaryOp::Mul,
                    Binary::Div => BinaryOp::Div,
                };
                Expr::Binary(op, Box::new(x), Box::new(y))
            }
            Op::Compare(kind) => {
                let x = self.expr_at(node.args[0], row, col);
                let y = self.expr_at(node.args[1], row, col);
                Expr::Compare(kind, Box::new(x), Box::new(y))
            }
            Op::Dropout { rate, site } => {
                let x = self.expr_at(node.args[0], row, col);
                let step = self.expr_at(node.args[1], row, col);
                Expr::Dropout {
                    key: crate::ir::dropout_site_key(site),
                    threshold: crate::ir::dropout_threshold(rate),
                    scale: (1.0 / (1.0 - rate)) as f32,
                    index: self.index(node.shape, row, col),
                    x: Box::new(x),
                    step: Box::new(step),
                }
            }
            Op::Select => {
                let cond = self.expr_at(node.args[0], row, col);
                let a = self.expr_at(node.args[1], row, col);
                let b = self.expr_at(node.args[2], row, col);
                Expr::Select(Box::new(cond), Box::new(a), Box::new(b))
            }
            Op::Broadcast => self.expr_at(node.args[0], row, col),
            Op::SliceCols { start } => self.expr_at(node.args[0], row, col.shifted(start)),
            _ => unreachable!("{} always has a buffer", node.op.name()),
        }
    }
}

/// A copy of `graph` with every batch dimension replaced by 1.
fn with_unit_batch(graph: &Graph) -> Graph {
    let mut unit = graph.clone();
    let fix = |d: Dim| if d == Dim::Batch { Dim::Fixed(1) } else { d };
    for node in &mut unit.nodes {
        node.shape = Shape::new(fix(node.shape.rows), fix(node.shape.cols));
    }
    unit
}

fn add(x: Expr, y: Expr) -> Expr {
    Expr::Binary(BinaryOp::Add, Box::new(x), Box::new(y))
}

/// A graph unary op as kernel expressions; non-integer powers via exp and log.
fn unary(u: Unary, x: Expr) -> Expr {
    let op = match u {
        Unary::Neg => UnaryOp::Neg,
        Unary::Exp => UnaryOp::Exp,
        Unary::Log => UnaryOp::Log,
        Unary::Tanh => UnaryOp::Tanh,
        Unary::Sigmoid => UnaryOp::Sigmoid,
        Unary::Relu => UnaryOp::Relu,
        Unary::Abs => UnaryOp::Abs,
        Unary::Step => UnaryOp::Step,
        Unary::Sign => UnaryOp::Sign,
        // Whole exponents by repeated squaring (exact for negative bases too).
        Unary::Pow(c) if let Some(n) = crate::ir::whole_exponent(c) => UnaryOp::Powi(n),
        Unary::Pow(0.5) => UnaryOp::Sqrt,
        Unary::Pow(c) => {
            // x^c = exp(c · log x), as in libm for positive x.
            let log = Expr::Unary(UnaryOp::Log, Box::new(x));
            let scaled = Expr::Binary(BinaryOp::Mul, Box::new(Expr::Const(c as f32)), Box::new(log));
            return Expr::Unary(UnaryOp::Exp, Box::new(scaled));
        }
    };
    Expr::Unary(op, Box::new(x))
}
