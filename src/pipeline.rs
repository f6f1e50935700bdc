//! The pipeline: every stage in order, each returning what it produced.
//!
//! The CLI, the tests and the benches all go through these functions, so no
//! stage is wired twice:
//!
//! ```text
//! text ─parse─▶ AST ─check─▶ Program (graph) ─grad─▶ + gradients + update
//!      ─simplify─▶ graph ─lower─▶ kernel IR ─compile─▶ native code ─run─▶ outcome
//! ```

use crate::codegen::{self, Compiled, Options};
use crate::diag::Diagnostic;
use crate::ir::program::{Categories, Program};
use crate::ir::{Graph, NodeId, Op};
use crate::kernel::{self, Kernel, KernelKind};
use crate::runtime::data::Dataset;
use crate::runtime::train::{Evaluator, Params};
use crate::runtime::{gradcheck, trace};
use crate::syntax::{self, ast};
use crate::{autodiff, check, opt, optimizer};
use std::time::Instant;

/// Parse and check a model file.
pub struct Frontend {
    pub ast: ast::File,
    pub program: Program,
    pub parse_ms: f64,
    pub check_ms: f64,
}

/// Parse and check `text`; all diagnostics of the first failing stage.
pub fn frontend(text: &str) -> Result<Frontend, Vec<Diagnostic>> {
    frontend_with(text, &Categories::new())
}

/// [`frontend`], with the categories of `one_hot(column)` bindings counted
/// in the data (see [`check::check_with`]).
pub fn frontend_with(text: &str, categories: &Categories) -> Result<Frontend, Vec<Diagnostic>> {
    frontend_weighted(text, categories, None)
}

/// [`frontend_with`], with the class weights `weights = balanced` stands
/// for (see [`check::check_weighted`]).
pub fn frontend_weighted(
    text: &str,
    categories: &Categories,
    class_weights: Option<&[f64]>,
) -> Result<Frontend, Vec<Diagnostic>> {
    let start = Instant::now();
    let ast = syntax::parse(text)?;
    let parse_ms = ms(start);
    let start = Instant::now();
    let program = check::check_weighted(&ast, categories, class_weights)?;
    let check_ms = ms(start);
    Ok(Frontend { ast, program, parse_ms, check_ms })
}

/// Whether every diagnostic only says that the data must count a binding's
/// categories (E0308): then reading the data and checking again will do.
pub fn needs_categories(diags: &[Diagnostic]) -> bool {
    !diags.is_empty() && diags.iter().all(|d| d.code == "E0308")
}

/// Why [`frontend_counting`] failed: the model's diagnostics, or the
/// counting's own error (reading the data).
pub enum FrontendError<E> {
    Model(Vec<Diagnostic>),
    Counting(E),
}

/// Parse and check `text`; when the only errors are that `one_hot(column)`
/// bindings leave their number of categories to the data (E0308), `count`
/// gives the categories — counted in the data for training, saved with the
/// weights for prediction — from the data block's bindings, and the model
/// is checked again with them. The one path every command with data takes.
pub fn frontend_counting<E>(
    text: &str,
    count: impl FnOnce(&[crate::ir::program::Binding]) -> Result<Categories, E>,
) -> Result<Frontend, FrontendError<E>> {
    match frontend(text) {
        Ok(front) => Ok(front),
        Err(diags) if needs_categories(&diags) => {
            let ast = syntax::parse(text).map_err(FrontendError::Model)?;
            let (bindings, _) = check::data_bindings(&ast);
            let categories = count(&bindings).map_err(FrontendError::Counting)?;
            frontend_with(text, &categories).map_err(FrontendError::Model)
        }
        Err(diags) => Err(FrontendError::Model(diags)),
    }
}

/// The graphs derived from a program.
pub struct Graphs {
    /// Forward graph, gradients and updates as autodiff built them.
    pub grad: Graph,
    /// The same after simplification: what the training kernel computes.
    pub train: Graph,
    /// The simplified forward graph without dropout: what the evaluation
    /// kernel computes.
    pub eval: Graph,
    pub grad_ms: f64,
}

/// Make the training graph's dropout masks depend on the run's seed: each
/// dropout site is rehashed with it (seed 0 leaves them as they are), so a
/// different `--seed` draws different masks and the same seed the same ones.
fn seed_dropout(graphs: &mut Graphs, seed: u64) {
    if seed == 0 {
        return;
    }
    let salt = crate::ir::mix32(seed as u32 ^ crate::ir::mix32((seed >> 32) as u32 ^ 0x9e37_79b9));
    for node in &mut graphs.train.nodes {
        if let crate::ir::Op::Dropout { site, .. } = &mut node.op {
            *site = crate::ir::mix32(*site ^ salt);
        }
    }
}

/// Differentiate, add the optimizer step, and simplify.
pub fn graphs(program: &Program) -> Graphs {
    let start = Instant::now();
    debug_verified("check", &program.graph);
    let mut grad = program.graph.clone();
    autodiff::grad(&mut grad);
    debug_verified("autodiff", &grad);
    optimizer::step(&mut grad, program.train.optimizer.value, program.train.schedule.value);
    debug_verified("optimizer", &grad);
    let train = debug_verified("softmax", opt::share_softmax(debug_verified("simplify", &opt::simplify(&grad))));
    let eval = debug_verified("inference", opt::inference(&program.graph));
    let eval = debug_verified("softmax", opt::share_softmax(debug_verified("simplify", &opt::simplify(&eval))));
    let grad_ms = ms(start);
    Graphs { grad, train, eval, grad_ms }
}

/// In tests and debug builds, verify the graph `pass` produced, and panic
/// with [`verify_after`]'s message if it is broken (a compiler bug).
/// Release builds verify once, before lowering ([`kernels_with`]).
fn debug_verified<G: std::borrow::Borrow<Graph>>(pass: &str, graph: G) -> G {
    if cfg!(debug_assertions)
        && let Err(err) = verify_after(pass, graph.borrow())
    {
        panic!("{err}");
    }
    graph
}

/// Verify the graph `pass` produced: the error names the pass and shows the
/// graph with each broken node marked.
pub fn verify_after(pass: &str, graph: &Graph) -> Result<(), String> {
    crate::ir::verify::verify(graph)
        .map_err(|err| format!("IR verification failed after `{pass}` (a compiler bug):\n{err}"))
}

/// The training and evaluation kernels for batches of `batch` rows and an
/// evaluation over `rows` rows.
pub fn kernels(graphs: &Graphs, batch: usize, rows: usize) -> Result<(Kernel, Kernel), String> {
    kernels_with(graphs, batch, rows, kernel::LowerOptions::default())
}

/// [`kernels`] with explicit lowering options (the GEMM cut-over).
pub fn kernels_with(
    graphs: &Graphs,
    batch: usize,
    rows: usize,
    options: kernel::LowerOptions,
) -> Result<(Kernel, Kernel), String> {
    let train = lower(&graphs.train, KernelKind::Train, batch, options)?;
    let eval = lower(&graphs.eval, KernelKind::Eval, eval_batch(&graphs.eval, rows), options)?;
    Ok((train, eval))
}

/// Verify `graph`, then lower it: every kernel is lowered here. The
/// verification is the lowering's precondition, checked in every build:
/// the train and eval graphs of digits, iris or diabetes verify in 8–30 µs
/// together even in a debug build, against a compile budget of 20 ms (debug
/// builds have verified after every pass already).
fn lower(graph: &Graph, kind: KernelKind, batch: usize, options: kernel::LowerOptions) -> Result<Kernel, String> {
    crate::ir::verify::verify(graph).map_err(|err| format!("internal error: the graph IR is broken:\n{err}"))?;
    kernel::lower_with(graph, kind, batch, options)
}

/// Rows per call of an evaluation (or prediction) kernel over `rows` rows.
pub const EVAL_CHUNK: usize = 4096;

/// The batch an evaluation kernel over `rows` rows is lowered for: chunks of
/// [`EVAL_CHUNK`] rows, so its scratch memory (every layer's values for the
/// rows of one call) stays the same however many rows there are, when the
/// loss over all rows is the row-weighted mean of the chunks' losses — a
/// mean over rows plus terms that do not depend on the rows, as every
/// built-in loss is (with `l2` terms too). A loss that is not (a `sum` over
/// rows, or the square of a mean) is evaluated over all rows in one batch.
/// Without a loss (prediction kernels) rows are always independent.
pub fn eval_batch(graph: &Graph, rows: usize) -> usize {
    let rows = rows.max(1);
    if rows <= EVAL_CHUNK || graph.output("loss").is_none() || loss_is_a_row_mean(graph) {
        rows.min(EVAL_CHUNK)
    } else {
        rows
    }
}

/// Whether the loss of 5 random rows equals the row-weighted mean of the
/// losses of its first 2 and last 3 rows (checked in f64 on the reference
/// interpreter, with random weights, inputs in [-1, 1] and small whole
/// numbers as targets, so class-index targets select classes).
fn loss_is_a_row_mean(graph: &Graph) -> bool {
    use crate::ir::interp::{self, Env, Tensor};
    let Some(loss) = graph.output("loss") else { return true };
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let matrix = |rows: usize, cols: usize, f: &mut dyn FnMut() -> f64| {
        Tensor::new(rows, cols, (0..rows * cols).map(|_| f()).collect())
    };
    let inputs: Vec<Tensor> =
        graph.inputs.iter().map(|v| matrix(5, v.width as usize, &mut || 2.0 * next() - 1.0)).collect();
    let targets: Vec<Tensor> =
        graph.targets.iter().map(|v| matrix(5, v.width as usize, &mut || (3.0 * next()).floor())).collect();
    let params: Vec<Tensor> = graph
        .params
        .iter()
        .map(|p| {
            let (r, c) = (interp::resolve(p.shape.rows, 1), interp::resolve(p.shape.cols, 1));
            matrix(r, c, &mut || next() - 0.5)
        })
        .collect();
    let rows = |t: &Tensor, range: std::ops::Range<usize>| {
        Tensor::new(range.len(), t.cols, t.data[range.start * t.cols..range.end * t.cols].to_vec())
    };
    let loss_of = |range: std::ops::Range<usize>| {
        let env = Env {
            inputs: inputs.iter().map(|t| rows(t, range.clone())).collect(),
            targets: targets.iter().map(|t| rows(t, range.clone())).collect(),
            params: params.clone(),
            ..Env::default()
        };
        interp::eval(graph, &env)[loss.index()].data[0]
    };
    let (all, first, last) = (loss_of(0..5), loss_of(0..2), loss_of(2..5));
    let mean = (2.0 * first + 3.0 * last) / 5.0;
    all.is_finite() && (all - mean).abs() <= 1e-9 * all.abs().max(1.0)
}

/// The training kernel, compiled, and what runs evaluations.
pub struct Native {
    pub train: Compiled,
    pub eval: Evaluator,
    pub compile_ms: f64,
}

impl Native {
    /// Run the kernels' library GEMM calls on `threads` threads. The
    /// results are bitwise the same for any number (see `codegen::gemm`);
    /// no thread is started when there is one, or no kernel calls the GEMM.
    pub fn use_threads(&mut self, threads: usize) -> Result<(), String> {
        let eval_gemm = matches!(&self.eval, Evaluator::Compiled(k) if k.calls_gemm());
        if threads <= 1 || !(self.train.calls_gemm() || eval_gemm) {
            return Ok(());
        }
        let pool = std::sync::Arc::new(crate::threads::Pool::new(threads)?);
        self.train.set_threads(pool.clone());
        if let Evaluator::Compiled(kernel) = &mut self.eval {
            kernel.set_threads(pool);
        }
        Ok(())
    }
}

pub fn compile(program: &Program, kernels: &(Kernel, Kernel), options: Options) -> Result<Native, String> {
    let start = Instant::now();
    let shapes: Vec<_> = program.graph.params.iter().map(|p| p.shape).collect();
    // The two kernels are independent: compile the evaluation kernel on a
    // second thread while this one compiles the training kernel.
    let (train, eval) = std::thread::scope(|scope| {
        let eval = scope.spawn(|| codegen::compile(&kernels.1, &shapes, options));
        let train = codegen::compile(&kernels.0, &shapes, options);
        let eval = eval.join().unwrap_or_else(|_| Err("the compiler thread panicked".to_string()));
        (train, eval)
    });
    Ok(Native { train: train?, eval: Evaluator::Compiled(Box::new(eval?)), compile_ms: ms(start) })
}

/// The training kernel only; evaluations run on the interpreter over
/// `eval_graph` (the graph the evaluation kernel would be lowered from).
pub fn compile_interpreted_eval(
    program: &Program,
    train_kernel: &Kernel,
    eval_graph: &Graph,
    options: Options,
) -> Result<Native, String> {
    let start = Instant::now();
    let train = compile_kernel(program, train_kernel, options)?;
    Ok(Native { train, eval: Evaluator::Interpreted(Box::new(eval_graph.clone())), compile_ms: ms(start) })
}

/// What a training run (or a cross-validation) will do, for [`training`].
#[derive(Clone, Copy, Debug)]
pub struct TrainingPlan {
    /// The run's seed, which draws the dropout masks.
    pub seed: u64,
    /// Rows per training step.
    pub batch: usize,
    /// The most rows one evaluation covers (the evaluation kernel's size).
    pub eval_rows: usize,
    /// The rows of all evaluations together, and how many evaluations:
    /// what decides between compiling the evaluation kernel and the interpreter.
    pub evaluated_rows: usize,
    pub evaluations: u64,
    /// Threads for the kernels' library GEMM calls.
    pub threads: usize,
}

/// The graphs, with the training graph's dropout masks drawn from the
/// run's seed, and the compiled kernels: the training kernel, and the
/// evaluation kernel unless the plan's evaluations cost less on the
/// reference interpreter than compiling it ([`interpret_evaluations`]).
pub fn training(program: &Program, plan: TrainingPlan, options: Options) -> Result<(Graphs, Native), String> {
    let mut graphs = graphs(program);
    seed_dropout(&mut graphs, plan.seed);
    let kernels = kernels(&graphs, plan.batch, plan.eval_rows)?;
    let options = Options { threads: plan.threads, ..options };
    let mut native = if interpret_evaluations(&graphs.eval, plan.evaluated_rows, plan.evaluations) {
        compile_interpreted_eval(program, &kernels.0, &graphs.eval, options)?
    } else {
        compile(program, &kernels, options)?
    };
    native.use_threads(plan.threads)?;
    Ok((graphs, native))
}

/// The compiled evaluation kernel over `rows` rows of saved weights: it
/// scores (`with_targets`) or only predicts, for `nnc predict` and `nnc eval`.
pub fn evaluation(program: &Program, rows: usize, with_targets: bool) -> Result<Evaluator, String> {
    let graphs = graphs(program);
    let kind = if with_targets { KernelKind::Eval } else { KernelKind::Predict };
    let kernel = lower(&graphs.eval, kind, eval_batch(&graphs.eval, rows), kernel::LowerOptions::default())?;
    // On every core, as the data was read: a team version when the kernel
    // has the work for one (the results are the same).
    let options = Options { threads: crate::threads::available(), ..Options::default() };
    Ok(Evaluator::Compiled(Box::new(compile_kernel(program, &kernel, options)?)))
}

/// One kernel of `program` compiled (for `nnc ir --stage clif|asm` with
/// `Options::listings`).
pub fn compile_kernel(program: &Program, kernel: &Kernel, options: Options) -> Result<Compiled, String> {
    let shapes: Vec<_> = program.graph.params.iter().map(|p| p.shape).collect();
    codegen::compile(kernel, &shapes, options)
}

/// Whether `evaluations` evaluations of `graph` over `rows` rows each cost
/// less on the reference interpreter than compiling the evaluation kernel
/// (about 2–3 ms, the first compile in a process). The interpreter takes
/// about 2–4 ns per multiply-add here (measured: iris, 150 rows, 0.04 ms;
/// digits, 1797 rows, 8.6 ms); 5 ns is assumed, against a 1 ms budget.
pub fn interpret_evaluations(graph: &Graph, rows: usize, evaluations: u64) -> bool {
    let per_row: u64 = graph
        .nodes
        .iter()
        .filter_map(|node| match node.op {
            crate::ir::Op::MatMul { trans_a, .. } => {
                let a = graph.shape(node.args[0]);
                let inner = if trans_a { a.rows } else { a.cols };
                let width = |d: crate::ir::Dim| d.resolve(1) as u64;
                Some(width(inner) * width(node.shape.cols))
            }
            _ => None,
        })
        .sum::<u64>()
        + graph.nodes.len() as u64;
    let nanoseconds = per_row.saturating_mul(rows as u64).saturating_mul(evaluations).saturating_mul(5);
    nanoseconds < 1_000_000
}

pub fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// A training kernel for batches of `rows` rows whose update of each
/// parameter is its gradient: lowered and compiled as `nnc run`'s is (for
/// `nnc check --gradcheck` and `nnc run --trace-grads`).
pub fn gradient_kernel(program: &Program, rows: usize) -> Result<Compiled, String> {
    let mut graph = program.graph.clone();
    autodiff::grad(&mut graph);
    debug_verified("autodiff", &graph);
    for param in program.graph.params.clone() {
        let gradient = graph.output(&format!("grad.{}", param.name)).ok_or("autodiff adds every gradient")?;
        graph.set_output(&format!("update.{}", param.name), gradient);
    }
    let graph = debug_verified("softmax", opt::share_softmax(debug_verified("simplify", &opt::simplify(&graph))));
    let lowered = lower(&graph, KernelKind::Train, rows, kernel::LowerOptions::default())?;
    let shapes: Vec<_> = program.graph.params.iter().map(|p| p.shape).collect();
    codegen::compile(&lowered, &shapes, Options::default())
}

/// The kernel's gradient of the mean loss over `batch` (one step, `t = 1`),
/// packed like `params`.
pub fn kernel_gradient(program: &Program, params: &Params, batch: Option<&Dataset>) -> Result<Vec<f32>, String> {
    let compiled = gradient_kernel(program, batch.map_or(1, |d| d.rows))?;
    Ok(gradcheck::call_gradient(program, &compiled, params, batch))
}

/// The tracer of `nnc run --trace-grads`: a [`gradient_kernel`] for the
/// first [`trace::SAMPLE_ROWS`] rows of `data`.
pub fn tracer(program: &Program, data: &Dataset, initial: &Params) -> Result<trace::Tracer, String> {
    let sample = gradcheck::first_rows(program, data, trace::SAMPLE_ROWS);
    let kernel = gradient_kernel(program, sample.rows)?;
    Ok(trace::Tracer::new(program, sample, kernel, initial))
}

/// The model and its derivatives as mathematics, for `nnc grad`: each user
/// function with its partial derivatives, each layer and the loss, then
/// `δv = ∂loss/∂v` for each layer from the output back, then the gradient of
/// every parameter in terms of those.
pub fn derivatives(program: &Program) -> String {
    let mut out = function_derivatives(program);
    out.push_str(&model_derivatives(program));
    out
}

/// `f(x) = ..` and `d f/d x = ..` for each user function, simplified; then
/// a blank line.
fn function_derivatives(program: &Program) -> String {
    let mut out = String::new();
    for function in &program.functions {
        let mut graph = function.graph.clone();
        autodiff::grad(&mut graph);
        let graph = opt::simplify(&graph);
        let names = std::collections::HashMap::new();
        let formula = |id| crate::ir::math::formula(&graph, id, &names);
        let params: Vec<&str> = graph.params.iter().map(|p| p.name.as_str()).collect();
        let body = graph.output("loss").expect("a function graph has its body as `loss`");
        out.push_str(&format!("{}({}) = {}\n", function.name, params.join(", "), formula(body)));
        for param in &params {
            let id = graph.output(&format!("grad.{param}")).expect("autodiff adds every gradient");
            out.push_str(&format!("d {}/d {param} = {}\n", function.name, formula(id)));
        }
        out.push('\n');
    }
    out
}

/// A layer with one activation per neuron, as `nnc grad` reads it: its
/// pre-activation `z` (the value the neurons' slices are cut from) and the
/// layer's name.
struct PerNeuron {
    name: String,
    z: NodeId,
}

/// The per-neuron layers of `program`, with their pre-activations.
fn per_neuron_layers(program: &Program) -> Vec<PerNeuron> {
    let graph = &program.graph;
    let mut out = Vec::new();
    for layer in &program.layers {
        let distinct = layer.activations.iter().any(|a| *a != layer.activations[0]);
        let Some((_, id)) = program.named.iter().find(|(n, _)| *n == layer.name) else { continue };
        if !distinct || graph.node(*id).op != Op::ConcatCols {
            continue;
        }
        // The first slice under the concatenation cuts from `z`.
        let mut stack = vec![*id];
        while let Some(node) = stack.pop() {
            if let Op::SliceCols { .. } = graph.node(node).op {
                out.push(PerNeuron { name: layer.name.clone(), z: graph.node(node).args[0] });
                break;
            }
            stack.extend(graph.node(node).args.iter().copied());
        }
    }
    out
}

/// The columns of a value built side by side, as `(start, width, part)`:
/// a concatenation, or a sum of zero-padded parts (how reverse mode
/// gathers a per-neuron layer's gradients); sorted by column.
fn column_parts(graph: &Graph, id: NodeId) -> Option<Vec<(u32, u32, NodeId)>> {
    let node = graph.node(id);
    let width = |n: NodeId| graph.shape(n).width().unwrap_or(0);
    let mut parts = match &node.op {
        Op::ConcatCols => {
            let mut start = 0;
            let mut parts = Vec::new();
            for &arg in &node.args {
                parts.push((start, width(arg), arg));
                start += width(arg);
            }
            parts
        }
        Op::PadCols { start } => vec![(*start, width(node.args[0]), node.args[0])],
        Op::Binary(crate::ir::Binary::Add) => {
            let mut parts = column_parts(graph, node.args[0])?;
            parts.extend(column_parts(graph, node.args[1])?);
            parts
        }
        _ => return None,
    };
    parts.sort_by_key(|p| p.0);
    Some(parts)
}

/// `x[2]` for one column of `x`, `x[2:4]` for several.
fn columns_name(name: &str, start: u32, width: u32) -> String {
    if width == 1 { format!("{name}[{start}]") } else { format!("{name}[{start}:{}]", start + width) }
}

fn model_derivatives(program: &Program) -> String {
    let mut graph = program.graph.clone();
    autodiff::grad(&mut graph);
    let per_neuron = per_neuron_layers(program);
    let mut wanted: Vec<_> = program.named.iter().map(|(_, id)| *id).collect();
    wanted.extend(per_neuron.iter().map(|p| p.z));
    let deltas = autodiff::adjoints(&mut graph, &wanted);
    for ((name, _), delta) in program.named.iter().zip(&deltas) {
        if let Some(delta) = delta {
            graph.set_output(&format!("delta.{name}"), *delta);
        }
    }
    for (layer, delta) in per_neuron.iter().zip(&deltas[program.named.len()..]) {
        graph.set_output(&format!("z.{}", layer.name), layer.z);
        if let Some(delta) = delta {
            graph.set_output(&format!("delta.{}.z", layer.name), *delta);
        }
    }
    for (name, id) in &program.named {
        graph.set_output(&format!("layer.{name}"), *id);
    }
    let (mut graph, mut map) = opt::simplify_mapped(&graph);
    if assume_one_hot_rows(program, &mut graph) {
        let (again, second) = opt::simplify_mapped(&graph);
        graph = again;
        map = map.iter().map(|id| id.and_then(|id| second[id.index()])).collect();
    }
    let mut names = std::collections::HashMap::new();
    for (name, id) in &program.named {
        if let Some(new) = map[id.index()] {
            names.insert(new, name.clone());
        }
        if let Some(delta) = graph.output(&format!("delta.{name}")) {
            names.entry(delta).or_insert(format!("δ{name}"));
        }
    }
    // A per-neuron layer reads neuron by neuron: `h.z` is its
    // pre-activation, `h[1]` its second neuron, `δh.z` the gradient of `h.z`.
    for layer in &per_neuron {
        let name = &layer.name;
        if let Some(z) = graph.output(&format!("z.{name}")) {
            names.entry(z).or_insert(format!("{name}.z"));
        }
        if let Some(delta) = graph.output(&format!("delta.{name}.z")) {
            names.entry(delta).or_insert(format!("δ{name}.z"));
        }
        let id = graph.output(&format!("layer.{name}")).expect("kept as an output");
        for (start, width, part) in column_parts(&graph, id).unwrap_or_default() {
            names.entry(part).or_insert(columns_name(name, start, width));
        }
    }
    let formula = |id| crate::ir::math::formula(&graph, id, &names);
    let by_columns = |out: &mut String, label: &str, id: NodeId| match column_parts(&graph, id) {
        Some(parts) => {
            for (start, width, part) in parts {
                out.push_str(&format!("{} = {}\n", columns_name(label, start, width), formula(part)));
            }
        }
        None => out.push_str(&format!("{label} = {}\n", formula(id))),
    };
    let mut out = String::new();
    for (name, _) in &program.named {
        let id = graph.output(&format!("layer.{name}")).expect("kept as an output");
        match graph.output(&format!("z.{name}")) {
            Some(z) => {
                out.push_str(&format!("{name}.z = {}\n", formula(z)));
                by_columns(&mut out, name, id);
            }
            None => out.push_str(&format!("{name} = {}\n", formula(id))),
        }
    }
    out.push_str(&format!("loss = {}\n", formula(graph.output("loss").expect("a loss"))));
    if !program.named.is_empty() {
        out.push_str("\nwhere δv = d loss/d v:\n");
        for (name, _) in program.named.iter().rev() {
            if let Some(delta) = graph.output(&format!("delta.{name}")) {
                out.push_str(&format!("δ{name} = {}\n", formula(delta)));
            }
            if let Some(delta) = graph.output(&format!("delta.{name}.z")) {
                by_columns(&mut out, &format!("δ{name}.z"), delta);
            }
        }
    }
    out.push('\n');
    for param in &program.graph.params {
        let id = graph.output(&format!("grad.{}", param.name)).expect("autodiff adds every gradient");
        out.push_str(&format!("d loss/d {} = {}\n", param.name, formula(id)));
    }
    out
}

/// For the printed maths only: a one-hot target's rows each sum to 1 (every
/// row nnc reads has exactly one 1), and so do a class-index target's
/// comparisons with the class numbers (indices are range-checked when read),
/// so `Σcols(y)` is 1 and softmax with cross-entropy reads `(out - y) / B`,
/// as in the textbook. The kernels compute the sum as written, which is
/// exactly 1 on such rows. Returns whether anything was replaced.
fn assume_one_hot_rows(program: &Program, graph: &mut Graph) -> bool {
    let mut replaced = false;
    for i in 0..graph.nodes.len() {
        let node = &graph.nodes[i];
        if node.op != (Op::Sum { rows: false, cols: true }) {
            continue;
        }
        let summed = graph.node(node.args[0]);
        let rows_of_one = match &summed.op {
            Op::Target(t) => matches!(program.binding(true, *t).map(|b| b.encoding), Some(crate::ir::program::Encoding::OneHot { .. })),
            Op::Compare(crate::ir::Compare::Eq) => summed.args.iter().any(|a| {
                matches!(graph.node(*a).op, Op::Target(t) if program.binding(true, t).is_some_and(|b| b.class_indices.is_some()))
            }),
            _ => false,
        };
        if rows_of_one {
            let node = &mut graph.nodes[i];
            node.op = Op::Const(1.0);
            node.args.clear();
            replaced = true;
        }
    }
    replaced
}
