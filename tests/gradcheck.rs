//! Gradient check: the symbolic gradients built by `nnc::autodiff::grad`
//! against central finite differences, in f64 on the reference interpreter.
//!
//! The finite differences only ever evaluate the *forward* graph, so they are
//! an oracle independent of the derivative rules. Tolerances are PyTorch
//! gradcheck's: ε = 1e-6, and an element passes when
//! `|analytic − numeric| ≤ 1e-5 + 1e-3·|numeric|`.
//!
//! - One line per op through [`gradcheck`]: the op's operands are parameters
//!   (random values where the op is smooth), its output is reduced to the
//!   scalar `loss = Σ out ⊙ R` with a fixed random `R` (a target leaf, every
//!   element away from zero) so every output element matters, and every
//!   element of every `grad.<p>` is compared. Operands with a batch
//!   dimension are checked at batch 1 and 3 (the interpreter's batch comes
//!   from the env's first input). Both the raw autodiff graph and the graph
//!   after `opt::simplify` are checked, so the simplifier's rewrites are
//!   checked too.
//! - 300 random compositions (`common::random`) whose constants 0, ±1, 2…
//!   make the simplifier's identities and canonical forms fire.
//! - Whole models (the examples and a few more) along one random direction
//!   `v`: `(L(p+εv) − L(p−εv)) / 2ε ≈ Σ grad·v` (JAX check_grads), on both
//!   `graphs.grad` and `graphs.train`.
//! - One interpreter training step on `graphs.train` equals `p − lr·grad`.

mod common;

use common::{Rng, assert_all_close, close, random};
use nnc::ir::interp::{self, Env, Tensor};
use nnc::ir::program::{Encoding, Program};
use nnc::ir::{Binary, Compare, DataVar, Dim, Graph, Hyper, Init, NodeId, Op, Origin, ParamInfo, Shape, Unary};
use nnc::{autodiff, opt, pipeline};

const EPS: f64 = 1e-6;
const ATOL: f64 = 1e-5;
const RTOL: f64 = 1e-3;

// ---- the helper ---------------------------------------------------------------------

/// Where an operand's random values come from, so the op is smooth around them.
#[derive(Clone, Copy, Debug)]
enum Domain {
    /// Uniform in [-1, 1].
    Any,
    /// Uniform in [0.5, 2]: for log, sqrt, negative powers.
    Positive,
    /// ±[0.2, 1.5]: for relu, abs, step, sign (kinks at 0) and divisors.
    NonZero,
    /// Exactly 0.
    Zero,
}

#[derive(Clone, Copy, Debug)]
struct Operand {
    shape: Shape,
    domain: Domain,
}

fn any(shape: Shape) -> Operand {
    Operand { shape, domain: Domain::Any }
}

fn positive(shape: Shape) -> Operand {
    Operand { shape, domain: Domain::Positive }
}

fn nonzero(shape: Shape) -> Operand {
    Operand { shape, domain: Domain::NonZero }
}

/// `[B, cols]`
fn b(cols: u32) -> Shape {
    Shape::batch(cols)
}

/// `[rows, cols]`
fn f(rows: u32, cols: u32) -> Shape {
    Shape::fixed(rows, cols)
}

fn sample(operand: Operand, batch: usize, rng: &mut Rng) -> Tensor {
    let (rows, cols) = (operand.shape.rows.resolve(batch), operand.shape.cols.resolve(batch));
    let data = (0..rows * cols)
        .map(|_| match operand.domain {
            Domain::Any => rng.uniform(-1.0, 1.0),
            Domain::Positive => rng.uniform(0.5, 2.0),
            Domain::NonZero => rng.sign() * rng.uniform(0.2, 1.5),
            Domain::Zero => 0.0,
        })
        .collect();
    Tensor::new(rows, cols, data)
}

fn add(graph: &mut Graph, op: Op, args: &[NodeId]) -> NodeId {
    let what = format!("{op:?}");
    graph.add(op, args, Origin::default()).unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

fn declared(graph: &mut Graph, op: Op, args: &[NodeId], shape: Shape) -> NodeId {
    let what = format!("{op:?} to {shape}");
    graph.add_declared(op, args, shape, Origin::default()).unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

fn verified(graph: &Graph, stage: &str) {
    if let Err(err) = nnc::ir::verify::verify(graph) {
        panic!("{stage}: IR verification failed:\n{err}");
    }
}

fn seed_of(name: &str) -> u64 {
    // FNV-1a: a fixed seed per check, so failures reproduce.
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

fn loss(graph: &Graph, env: &Env) -> f64 {
    interp::output(graph, env, "loss").expect("a loss output").data[0]
}

/// ∂loss/∂p for every element of every parameter, by central differences.
fn finite_differences(graph: &Graph, env: &Env) -> Vec<Vec<f64>> {
    let mut env = env.clone();
    let mut all = Vec::new();
    for i in 0..env.params.len() {
        let mut grad = Vec::new();
        for j in 0..env.params[i].data.len() {
            let x = env.params[i].data[j];
            env.params[i].data[j] = x + EPS;
            let plus = loss(graph, &env);
            env.params[i].data[j] = x - EPS;
            let minus = loss(graph, &env);
            env.params[i].data[j] = x;
            grad.push((plus - minus) / (2.0 * EPS));
        }
        all.push(grad);
    }
    all
}

/// Build `out = build(graph, operands)`, take `loss = Σ out ⊙ R`, and compare
/// every `grad.p<i>` of the raw and the simplified autodiff graph with
/// central differences of the forward graph.
fn gradcheck(name: &str, operands: &[Operand], build: impl Fn(&mut Graph, &[NodeId]) -> NodeId) {
    let mut graph = Graph::default();
    // The interpreter's batch is the row count of the first input.
    graph.inputs.push(DataVar { name: "rows".into(), width: 1 });
    let leaves: Vec<NodeId> = operands
        .iter()
        .enumerate()
        .map(|(i, o)| {
            graph.params.push(ParamInfo { name: format!("p{i}"), shape: o.shape, init: Init::Value(0.0), layer: None });
            declared(&mut graph, Op::Param(i as u32), &[], o.shape)
        })
        .collect();
    let out = build(&mut graph, &leaves);
    let out_shape = graph.shape(out);
    let width = out_shape.width().expect("the checked op's output has a fixed width");
    graph.targets.push(DataVar { name: "weights".into(), width });
    let weights = declared(&mut graph, Op::Target(0), &[], out_shape);
    let weighted = add(&mut graph, Op::Binary(Binary::Mul), &[out, weights]);
    let total = add(&mut graph, Op::Sum { rows: true, cols: true }, &[weighted]);
    graph.set_output("loss", total);
    verified(&graph, name);

    let mut raw = graph.clone();
    autodiff::grad(&mut raw);
    verified(&raw, &format!("{name}: autodiff"));
    let simplified = opt::simplify(&raw);
    verified(&simplified, &format!("{name}: simplified"));

    let batched =
        operands.iter().map(|o| o.shape).chain([out_shape]).any(|s| s.rows == Dim::Batch || s.cols == Dim::Batch);
    let batches: &[usize] = if batched { &[1, 3] } else { &[1] };
    let mut rng = Rng::new(seed_of(name));
    for &batch in batches {
        let (rows, cols) = (out_shape.rows.resolve(batch), out_shape.cols.resolve(batch));
        let r = (0..rows * cols).map(|_| rng.sign() * rng.uniform(0.5, 1.5)).collect();
        let env = Env {
            inputs: vec![Tensor::filled(batch, 1, 0.0)],
            targets: vec![Tensor::new(rows, cols, r)],
            params: operands.iter().map(|&o| sample(o, batch, &mut rng)).collect(),
            learning_rate: 0.0,
            ..Env::default()
        };
        let forward = loss(&graph, &env);
        assert!(forward.is_finite(), "{name}: loss {forward} at batch {batch}");
        let numeric = finite_differences(&graph, &env);
        for (stage, g) in [("autodiff", &raw), ("simplified", &simplified)] {
            let values = interp::eval(g, &env);
            let stage_loss = values[g.output("loss").expect("loss kept").index()].data[0];
            assert!(close(stage_loss, forward, 1e-12, 1e-12), "{name}: {stage} loss {stage_loss} != forward {forward}");
            for (i, param) in env.params.iter().enumerate() {
                let id = g.output(&format!("grad.p{i}")).unwrap_or_else(|| panic!("{name}: {stage} has no grad.p{i}"));
                let grad = &values[id.index()];
                assert_eq!(
                    (grad.rows, grad.cols),
                    (param.rows, param.cols),
                    "{name}: {stage} grad.p{i} has the wrong shape at batch {batch}"
                );
                let what = format!("{name}: {stage} grad.p{i} at batch {batch}");
                assert_all_close(&what, &grad.data, &numeric[i], RTOL, ATOL);
            }
        }
    }
}

fn unary(u: Unary) -> impl Fn(&mut Graph, &[NodeId]) -> NodeId {
    move |g, x| add(g, Op::Unary(u), &[x[0]])
}

fn binary(op: Binary) -> impl Fn(&mut Graph, &[NodeId]) -> NodeId {
    move |g, x| add(g, Op::Binary(op), &[x[0], x[1]])
}

fn matmul(trans_a: bool, trans_b: bool) -> impl Fn(&mut Graph, &[NodeId]) -> NodeId {
    move |g, x| add(g, Op::MatMul { trans_a, trans_b }, &[x[0], x[1]])
}

fn sum(rows: bool, cols: bool) -> impl Fn(&mut Graph, &[NodeId]) -> NodeId {
    move |g, x| add(g, Op::Sum { rows, cols }, &[x[0]])
}

fn broadcast_to(shape: Shape) -> impl Fn(&mut Graph, &[NodeId]) -> NodeId {
    move |g, x| declared(g, Op::Broadcast, &[x[0]], shape)
}

/// A unary op on a batch of rows and on a fixed matrix.
fn check_unary(u: Unary, domain: fn(Shape) -> Operand) {
    let name = format!("{u:?}");
    gradcheck(&format!("{name} [B,3]"), &[domain(b(3))], unary(u));
    gradcheck(&format!("{name} [2,3]"), &[domain(f(2, 3))], unary(u));
}

/// Operand shape pairs: equal, and every way one side broadcasts.
fn broadcast_pairs() -> Vec<(Shape, Shape)> {
    vec![
        (b(3), b(3)),
        (b(3), f(1, 3)),
        (f(1, 3), b(3)),
        (b(3), f(1, 1)),
        (f(1, 1), b(3)),
        (b(3), b(1)),
        (b(1), b(3)),
        (b(1), f(1, 3)),
        (f(2, 3), f(2, 3)),
        (f(2, 3), f(1, 3)),
        (f(2, 3), f(2, 1)),
        (f(1, 1), f(2, 3)),
        (f(2, 1), f(1, 3)),
        (f(1, 1), f(1, 1)),
    ]
}

fn check_binary(op: Binary, rhs: fn(Shape) -> Operand) {
    for (x, y) in broadcast_pairs() {
        gradcheck(&format!("{op:?} {x} {y}"), &[any(x), rhs(y)], binary(op));
    }
}

// ---- one line per op ----------------------------------------------------------------

#[test]
fn unary_neg() {
    check_unary(Unary::Neg, any);
}

#[test]
fn unary_exp() {
    check_unary(Unary::Exp, any);
}

#[test]
fn unary_log() {
    check_unary(Unary::Log, positive);
}

#[test]
fn unary_tanh() {
    check_unary(Unary::Tanh, any);
}

#[test]
fn unary_sigmoid() {
    check_unary(Unary::Sigmoid, any);
}

#[test]
fn unary_relu() {
    check_unary(Unary::Relu, nonzero);
}

#[test]
fn unary_abs() {
    check_unary(Unary::Abs, nonzero);
}

#[test]
fn unary_step_has_zero_gradient() {
    check_unary(Unary::Step, nonzero);
}

#[test]
fn unary_sign_has_zero_gradient() {
    check_unary(Unary::Sign, nonzero);
}

#[test]
fn unary_pow_2() {
    check_unary(Unary::Pow(2.0), any);
}

#[test]
fn unary_pow_3() {
    check_unary(Unary::Pow(3.0), any);
}

#[test]
fn unary_pow_minus_1() {
    check_unary(Unary::Pow(-1.0), nonzero);
}

#[test]
fn unary_pow_minus_2() {
    check_unary(Unary::Pow(-2.0), nonzero);
}

#[test]
fn unary_pow_half() {
    check_unary(Unary::Pow(0.5), positive);
}

#[test]
fn unary_pow_one_and_a_half() {
    check_unary(Unary::Pow(1.5), positive);
}

#[test]
fn unary_pow_1() {
    check_unary(Unary::Pow(1.0), any);
}

#[test]
fn unary_pow_0() {
    check_unary(Unary::Pow(0.0), nonzero);
}

#[test]
fn pow_0_at_zero() {
    // x^0 = 1 everywhere, so its derivative is 0 everywhere, 0 included.
    // (The simplified graph passes: simplify folds 0·y to 0.)
    let zero = |shape| Operand { shape, domain: Domain::Zero };
    gradcheck("x^0 at 0", &[zero(b(3))], unary(Unary::Pow(0.0)));
}

#[test]
fn unary_pow_66_negative_base() {
    // Beyond the kernel's repeated-multiplication range; the interpreter uses powf.
    check_unary(Unary::Pow(66.0), any);
    check_unary(Unary::Pow(67.0), any);
}

#[test]
fn binary_add() {
    check_binary(Binary::Add, any);
}

#[test]
fn binary_sub() {
    check_binary(Binary::Sub, any);
}

#[test]
fn binary_mul() {
    check_binary(Binary::Mul, any);
}

#[test]
fn binary_div() {
    check_binary(Binary::Div, nonzero);
}

#[test]
fn matmul_plain() {
    gradcheck("P·Q [B,3]·[3,4]", &[any(b(3)), any(f(3, 4))], matmul(false, false));
    gradcheck("P·Q [2,3]·[3,4]", &[any(f(2, 3)), any(f(3, 4))], matmul(false, false));
}

#[test]
fn matmul_transpose_a() {
    gradcheck("Pᵀ·Q [B,3]ᵀ·[B,4]", &[any(b(3)), any(b(4))], matmul(true, false));
    gradcheck("Pᵀ·Q [3,2]ᵀ·[3,4]", &[any(f(3, 2)), any(f(3, 4))], matmul(true, false));
}

#[test]
fn matmul_transpose_b() {
    gradcheck("P·Qᵀ [B,3]·[4,3]ᵀ", &[any(b(3)), any(f(4, 3))], matmul(false, true));
    gradcheck("P·Qᵀ [2,3]·[4,3]ᵀ", &[any(f(2, 3)), any(f(4, 3))], matmul(false, true));
}

#[test]
fn matmul_transpose_both() {
    gradcheck("Pᵀ·Qᵀ [3,2]ᵀ·[4,3]ᵀ", &[any(f(3, 2)), any(f(4, 3))], matmul(true, true));
    let batch_cols = Shape::new(Dim::Fixed(3), Dim::Batch);
    gradcheck("Pᵀ·Qᵀ [3,B]ᵀ·[4,3]ᵀ", &[any(batch_cols), any(f(4, 3))], matmul(true, true));
}

#[test]
fn sum_rows() {
    gradcheck("Σrows [B,4]", &[any(b(4))], sum(true, false));
    gradcheck("Σrows [2,3]", &[any(f(2, 3))], sum(true, false));
}

#[test]
fn sum_cols() {
    gradcheck("Σcols [B,4]", &[any(b(4))], sum(false, true));
    gradcheck("Σcols [2,3]", &[any(f(2, 3))], sum(false, true));
}

#[test]
fn sum_all() {
    gradcheck("Σ [B,4]", &[any(b(4))], sum(true, true));
    gradcheck("Σ [2,3]", &[any(f(2, 3))], sum(true, true));
}

#[test]
fn broadcast() {
    gradcheck("broadcast [1,3] to [B,3]", &[any(f(1, 3))], broadcast_to(b(3)));
    gradcheck("broadcast [B,1] to [B,3]", &[any(b(1))], broadcast_to(b(3)));
    gradcheck("broadcast [1,1] to [B,3]", &[any(f(1, 1))], broadcast_to(b(3)));
    gradcheck("broadcast [1,1] to [2,3]", &[any(f(1, 1))], broadcast_to(f(2, 3)));
    gradcheck("broadcast [2,1] to [2,3]", &[any(f(2, 1))], broadcast_to(f(2, 3)));
    gradcheck("broadcast [1,3] to [2,3]", &[any(f(1, 3))], broadcast_to(f(2, 3)));
}

#[test]
fn softmax() {
    gradcheck("softmax [B,4]", &[any(b(4))], |g, x| add(g, Op::Softmax, &[x[0]]));
    gradcheck("softmax [2,5]", &[any(f(2, 5))], |g, x| add(g, Op::Softmax, &[x[0]]));
    gradcheck("softmax [B,1]", &[any(b(1))], |g, x| add(g, Op::Softmax, &[x[0]]));
}

#[test]
fn log_softmax() {
    gradcheck("log_softmax [B,4]", &[any(b(4))], |g, x| add(g, Op::LogSoftmax, &[x[0]]));
    gradcheck("log_softmax [2,5]", &[any(f(2, 5))], |g, x| add(g, Op::LogSoftmax, &[x[0]]));
    gradcheck("log_softmax [B,1]", &[any(b(1))], |g, x| add(g, Op::LogSoftmax, &[x[0]]));
}

#[test]
fn slice_cols() {
    let slice =
        |start: u32, to: Shape| move |g: &mut Graph, x: &[NodeId]| declared(g, Op::SliceCols { start }, &[x[0]], to);
    gradcheck("slice 1..4 of [B,5]", &[any(b(5))], slice(1, b(3)));
    gradcheck("slice 0..2 of [2,4]", &[any(f(2, 4))], slice(0, f(2, 2)));
    gradcheck("slice 2..4 of [2,4]", &[any(f(2, 4))], slice(2, f(2, 2)));
}

#[test]
fn pad_cols() {
    let pad =
        |start: u32, to: Shape| move |g: &mut Graph, x: &[NodeId]| declared(g, Op::PadCols { start }, &[x[0]], to);
    gradcheck("pad [B,3] at 1 to [B,6]", &[any(b(3))], pad(1, b(6)));
    gradcheck("pad [2,2] at 0 to [2,4]", &[any(f(2, 2))], pad(0, f(2, 4)));
    gradcheck("pad [2,2] at 2 to [2,4]", &[any(f(2, 2))], pad(2, f(2, 4)));
}

#[test]
fn concat_cols() {
    let concat = |g: &mut Graph, x: &[NodeId]| add(g, Op::ConcatCols, x);
    gradcheck("concat [B,2] [B,3] [B,1]", &[any(b(2)), any(b(3)), any(b(1))], concat);
    gradcheck("concat [2,1] [2,2]", &[any(f(2, 1)), any(f(2, 2))], concat);
    gradcheck("concat [B,3]", &[any(b(3))], concat);
}

const COMPARISONS: [Compare; 6] = [Compare::Lt, Compare::Le, Compare::Gt, Compare::Ge, Compare::Eq, Compare::Ne];

#[test]
fn compare_has_zero_gradient() {
    for kind in COMPARISONS {
        for (x, y) in broadcast_pairs() {
            gradcheck(&format!("{kind:?} {x} {y}"), &[nonzero(x), nonzero(y)], move |g, p| {
                add(g, Op::Compare(kind), &[p[0], p[1]])
            });
        }
    }
}

/// `select(c > 0, a, b)`: the sign of the condition picks each element's branch.
fn select_on_sign(g: &mut Graph, p: &[NodeId]) -> NodeId {
    let zero = declared(g, Op::Const(0.0), &[], Shape::SCALAR);
    let cond = add(g, Op::Compare(Compare::Gt), &[p[0], zero]);
    add(g, Op::Select, &[cond, p[1], p[2]])
}

#[test]
fn select() {
    // (condition, then, else): equal shapes, and each one broadcast.
    let triples = [
        (b(3), b(3), b(3)),
        (b(3), f(1, 3), f(1, 1)),
        (b(1), b(3), f(1, 3)),
        (f(1, 3), b(1), b(3)),
        (f(1, 1), b(3), b(3)),
        (f(2, 3), f(2, 1), f(1, 3)),
        (f(2, 1), f(1, 3), f(2, 3)),
    ];
    for (c, a, e) in triples {
        gradcheck(&format!("select {c} {a} {e}"), &[nonzero(c), any(a), any(e)], select_on_sign);
    }
    // A condition that is a value, not a comparison: nonzero picks `a`.
    gradcheck("select on values", &[nonzero(b(3)), any(b(3)), any(b(3))], |g, p| {
        let zero = declared(g, Op::Const(0.0), &[], Shape::SCALAR);
        let half = add(g, Op::Compare(Compare::Lt), &[p[0], zero]);
        add(g, Op::Select, &[half, p[1], p[2]])
    });
}

#[test]
fn dropout() {
    // The mask is fixed by the step and the places: dropout is linear in x.
    for (rate, site) in [(0.5, 0), (0.2, 3), (0.9, 1)] {
        let build = move |g: &mut Graph, p: &[NodeId]| {
            let step = add(g, Op::Hyper(Hyper::Step), &[]);
            add(g, Op::Dropout { rate, site }, &[p[0], step])
        };
        gradcheck(&format!("dropout {rate} [B,6]"), &[any(b(6))], build);
        gradcheck(&format!("dropout {rate} [3,4]"), &[any(f(3, 4))], build);
    }
    // Dropout twice at one site is the same mask: scale² where kept.
    gradcheck("dropout of dropout", &[any(b(5))], |g, p| {
        let step = add(g, Op::Hyper(Hyper::Step), &[]);
        let once = add(g, Op::Dropout { rate: 0.5, site: 7 }, &[p[0], step]);
        let tanh = add(g, Op::Unary(Unary::Tanh), &[once]);
        add(g, Op::Dropout { rate: 0.5, site: 7 }, &[tanh, step])
    });
}

#[test]
fn select_compositions() {
    // The shapes autodiff gives conditionals, which the simplifier rewrites:
    // z·select(c, a, 0) into select(c, z·a, 0), and select(c, a, 0) +
    // select(c, 0, b) into select(c, a, b).
    gradcheck("leaky: select(x > 0, x, x/10)", &[nonzero(b(4))], |g, p| {
        let tenth = declared(g, Op::Const(0.1), &[], Shape::SCALAR);
        let scaled = add(g, Op::Binary(Binary::Mul), &[tenth, p[0]]);
        select_on_sign(g, &[p[0], p[0], scaled])
    });
    gradcheck("select(x > 0, x², exp(x))·y", &[nonzero(b(3)), any(f(1, 3))], |g, p| {
        let square = add(g, Op::Unary(Unary::Pow(2.0)), &[p[0]]);
        let exp = add(g, Op::Unary(Unary::Exp), &[p[0]]);
        let chosen = select_on_sign(g, &[p[0], square, exp]);
        add(g, Op::Binary(Binary::Mul), &[chosen, p[1]])
    });
    gradcheck("select of selects", &[nonzero(b(3)), nonzero(b(3)), any(b(3))], |g, p| {
        let inner = select_on_sign(g, &[p[1], p[0], p[2]]);
        select_on_sign(g, &[p[0], inner, p[1]])
    });
    gradcheck("same branch twice", &[nonzero(b(3)), any(b(3))], |g, p| select_on_sign(g, &[p[0], p[1], p[1]]));
}

// ---- compositions: fan-out, constants, the checker's idioms ------------------------------

#[test]
fn same_operand_twice() {
    // Both arguments' contributions must be summed into one adjoint.
    gradcheck("x·x", &[any(b(3))], |g, x| add(g, Op::Binary(Binary::Mul), &[x[0], x[0]]));
    gradcheck("x/x", &[nonzero(b(3))], |g, x| add(g, Op::Binary(Binary::Div), &[x[0], x[0]]));
    gradcheck("x−x+x", &[any(b(3))], |g, x| {
        let zero = add(g, Op::Binary(Binary::Sub), &[x[0], x[0]]);
        add(g, Op::Binary(Binary::Add), &[zero, x[0]])
    });
    gradcheck("tanh(x)·x", &[any(b(3))], |g, x| {
        let t = add(g, Op::Unary(Unary::Tanh), &[x[0]]);
        add(g, Op::Binary(Binary::Mul), &[t, x[0]])
    });
    gradcheck("xᵀ·x", &[any(b(3))], |g, x| add(g, Op::MatMul { trans_a: true, trans_b: false }, &[x[0], x[0]]));
}

#[test]
fn unused_operand_has_zero_gradient() {
    gradcheck("p0 used, p1 not", &[any(b(3)), any(f(2, 2))], unary(Unary::Tanh));
}

#[test]
fn constants_and_batch_size() {
    let constant = |g: &mut Graph, c: f64| declared(g, Op::Const(c), &[], Shape::SCALAR);
    gradcheck("x/3 − 1", &[any(b(2))], move |g, x| {
        let three = constant(g, 3.0);
        let one = constant(g, 1.0);
        let q = add(g, Op::Binary(Binary::Div), &[x[0], three]);
        add(g, Op::Binary(Binary::Sub), &[q, one])
    });
    gradcheck("2·(3·x)·1 + 0", &[any(b(2))], move |g, x| {
        let (two, three, one, zero) = (constant(g, 2.0), constant(g, 3.0), constant(g, 1.0), constant(g, 0.0));
        let inner = add(g, Op::Binary(Binary::Mul), &[three, x[0]]);
        let outer = add(g, Op::Binary(Binary::Mul), &[two, inner]);
        let times_one = add(g, Op::Binary(Binary::Mul), &[outer, one]);
        add(g, Op::Binary(Binary::Add), &[times_one, zero])
    });
    gradcheck("−(−x)·(−y)", &[any(b(2)), any(f(1, 2))], |g, x| {
        let nx = add(g, Op::Unary(Unary::Neg), &[x[0]]);
        let nnx = add(g, Op::Unary(Unary::Neg), &[nx]);
        let ny = add(g, Op::Unary(Unary::Neg), &[x[1]]);
        add(g, Op::Binary(Binary::Mul), &[nnx, ny])
    });
    gradcheck("(x²)³ and (x²)^0.5", &[positive(b(2))], |g, x| {
        let square = add(g, Op::Unary(Unary::Pow(2.0)), &[x[0]]);
        let sixth = add(g, Op::Unary(Unary::Pow(3.0)), &[square]);
        let abs = add(g, Op::Unary(Unary::Pow(0.5)), &[square]);
        add(g, Op::Binary(Binary::Add), &[sixth, abs])
    });
    // mean over the batch, as the checker spells it: Σx / B.
    gradcheck("Σx / B", &[any(b(3))], |g, x| {
        let total = add(g, Op::Sum { rows: true, cols: true }, &[x[0]]);
        let rows = add(g, Op::BatchSize, &[]);
        add(g, Op::Binary(Binary::Div), &[total, rows])
    });
    gradcheck("Σ(c·x) with c [1,1] param", &[any(f(1, 1)), any(b(3))], |g, x| {
        let product = add(g, Op::Binary(Binary::Mul), &[x[1], x[0]]);
        add(g, Op::Sum { rows: true, cols: false }, &[product])
    });
}

#[test]
fn dense_layer_with_per_neuron_activations() {
    // x·W + b, then columns 0..1 relu, 1..3 tanh, 3..4 sigmoid, concatenated:
    // what the checker builds for `dense(x, 4, [relu, tanh, tanh, sigmoid])`.
    // Gradients of the slices are pads, which the simplifier merges.
    gradcheck("dense [relu, tanh, tanh, sigmoid]", &[any(b(3)), any(f(3, 4)), any(f(1, 4))], |g, x| {
        let z = add(g, Op::MatMul { trans_a: false, trans_b: false }, &[x[0], x[1]]);
        let z = add(g, Op::Binary(Binary::Add), &[z, x[2]]);
        let a = declared(g, Op::SliceCols { start: 0 }, &[z], b(1));
        let c = declared(g, Op::SliceCols { start: 1 }, &[z], b(2));
        let d = declared(g, Op::SliceCols { start: 3 }, &[z], b(1));
        let a = add(g, Op::Unary(Unary::Relu), &[a]);
        let c = add(g, Op::Unary(Unary::Tanh), &[c]);
        let d = add(g, Op::Unary(Unary::Sigmoid), &[d]);
        add(g, Op::ConcatCols, &[a, c, d])
    });
}

#[test]
fn softmax_cross_entropy() {
    // −Σ y·log_softmax(z) / B with softmax(z) also used (as a prediction would be).
    gradcheck("cross entropy", &[any(b(3)), any(f(3, 3)), positive(b(3))], |g, x| {
        let z = add(g, Op::MatMul { trans_a: false, trans_b: false }, &[x[0], x[1]]);
        let p = add(g, Op::Softmax, &[z]);
        let log_p = add(g, Op::LogSoftmax, &[z]);
        let product = add(g, Op::Binary(Binary::Mul), &[x[2], log_p]);
        let total = add(g, Op::Sum { rows: true, cols: true }, &[product]);
        let rows = add(g, Op::BatchSize, &[]);
        let mean = add(g, Op::Binary(Binary::Div), &[total, rows]);
        let loss = add(g, Op::Unary(Unary::Neg), &[mean]);
        let p_total = add(g, Op::Sum { rows: true, cols: true }, &[p]);
        add(g, Op::Binary(Binary::Add), &[loss, p_total])
    });
}

// ---- whole models -------------------------------------------------------------------

/// Random data for a program: inputs uniform in [-1, 1], one-hot targets as
/// one-hot rows, other targets uniform in [-1, 1].
fn synthetic_env(program: &Program, rows: usize, rng: &mut Rng) -> Env {
    let graph = &program.graph;
    let inputs = graph
        .inputs
        .iter()
        .map(|v| Tensor::new(rows, v.width as usize, rng.vec(rows * v.width as usize, -1.0, 1.0)))
        .collect();
    let targets = (0..graph.targets.len())
        .map(|i| {
            let width = graph.targets[i].width as usize;
            let binding = program.data.iter().find(|b| b.is_target && b.index == i as u32).expect("a target binding");
            match binding.encoding {
                Encoding::OneHot { classes } => {
                    let mut data = vec![0.0; rows * width];
                    for r in 0..rows {
                        data[r * width + rng.below(classes as usize)] = 1.0;
                    }
                    Tensor::new(rows, width, data)
                }
                Encoding::Raw { .. } => Tensor::new(rows, width, rng.vec(rows * width, -1.0, 1.0)),
            }
        })
        .collect();
    let params = graph
        .params
        .iter()
        .map(|p| {
            let (r, c) = (p.shape.rows.resolve(1), p.shape.cols.resolve(1));
            Tensor::new(r, c, rng.vec(r * c, -1.0, 1.0))
        })
        .collect();
    Env { inputs, targets, params, learning_rate: 0.0, ..Env::default() }
}

/// `(L(p+εv) − L(p−εv)) / 2ε` against `Σ grad·v`, for a random direction `v`
/// over all parameters and for one along each parameter alone.
fn check_model(name: &str, source: &str, rows: usize) {
    check_model_with(name, source, rows, |_| {});
}

/// [`check_model`] with the synthetic data changed by `adjust` first.
fn check_model_with(name: &str, source: &str, rows: usize, adjust: impl Fn(&mut Env)) {
    let program = common::program(source);
    let graphs = pipeline::graphs(&program);
    for (stage, g) in [("grad", &graphs.grad), ("train", &graphs.train)] {
        verified(g, &format!("{name}: graphs.{stage}"));
    }
    let mut rng = Rng::new(seed_of(name));
    let mut env = synthetic_env(&program, rows, &mut rng);
    adjust(&mut env);
    let env = env;
    let full: Vec<Vec<f64>> = env.params.iter().map(|p| rng.vec(p.data.len(), -1.0, 1.0)).collect();
    let mut directions = vec![("all parameters".to_string(), full.clone())];
    for (i, p) in program.graph.params.iter().enumerate() {
        let only: Vec<Vec<f64>> =
            full.iter().enumerate().map(|(k, v)| if k == i { v.clone() } else { vec![0.0; v.len()] }).collect();
        directions.push((format!("`{}` alone", p.name), only));
    }
    let forward = loss(&program.graph, &env);
    assert!(forward.is_finite(), "{name}: loss {forward}");
    for (what, v) in &directions {
        let moved = |sign: f64| {
            let mut moved = env.clone();
            for (p, d) in moved.params.iter_mut().zip(v) {
                for (x, dx) in p.data.iter_mut().zip(d) {
                    *x += sign * EPS * dx;
                }
            }
            loss(&program.graph, &moved)
        };
        let numeric = (moved(1.0) - moved(-1.0)) / (2.0 * EPS);
        for (stage, g) in [("grad", &graphs.grad), ("train", &graphs.train)] {
            let values = interp::eval(g, &env);
            let stage_loss = values[g.output("loss").expect("loss").index()].data[0];
            assert!(
                close(stage_loss, forward, 1e-12, 1e-12),
                "{name}: graphs.{stage} loss {stage_loss} != forward {forward}"
            );
            let mut analytic = 0.0;
            for (param, d) in program.graph.params.iter().zip(v) {
                let id = g.output(&format!("grad.{}", param.name)).expect("a gradient per parameter");
                let grad = &values[id.index()];
                assert_eq!(grad.data.len(), d.len(), "{name}: grad.{} has the wrong size", param.name);
                analytic += grad.data.iter().zip(d).map(|(a, b)| a * b).sum::<f64>();
            }
            assert!(
                close(analytic, numeric, RTOL, ATOL),
                "{name}: graphs.{stage}, direction {what}: Σ grad·v = {analytic:.9e}, finite differences {numeric:.9e}"
            );
        }
    }
}

#[test]
fn model_minimize() {
    check_model("minimize.nn", &common::example("minimize.nn"), 1);
}

#[test]
fn model_seed() {
    check_model("seed.nn", &common::example("seed.nn"), 5);
}

#[test]
fn model_iris() {
    check_model("iris.nn", &common::example("iris.nn"), 5);
}

#[test]
fn model_iris_one_row() {
    check_model("iris.nn, 1 row", &common::example("iris.nn"), 1);
}

/// Extra models: each language feature whose gradient the examples miss.
const EXTRA_MODELS: &[(&str, &str)] = &[
    (
        "relu, per-neuron list, mae",
        "data { input x[3] target y[2] }
         model {
           h = dense(x, 4, [relu, tanh, sigmoid, tanh])
           g = dense(h, 5, relu, bias = false)
           out = dense(g, 2)
         }
         loss mean(abs(out - y))",
    ),
    (
        "custom squared loss",
        "data { input x[2] target y[1] }
         model { h = dense(x, 3, sigmoid)  out = dense(h, 1, identity) }
         loss sum((out - y)^2) / 2",
    ),
    (
        "params without data",
        "param a = 0.5
         param b = 1.5
         loss (a - 1)^2 + exp(a) * b^0.5 + 1 / b - log(b) * a^3",
    ),
    (
        "softmax classification, 3 layers",
        "data { input x[4] target y = one_hot(3) }
         model {
           h1 = dense(x, 5, tanh)
           h2 = dense(h1, 4, sigmoid)
           out = dense(h2, 3, softmax)
         }
         loss cross_entropy(out, y)",
    ),
];

#[test]
fn extra_models() {
    for (name, source) in EXTRA_MODELS {
        check_model(name, source, 4);
    }
}

/// The built-ins spelled with primitives, user functions, conditionals and
/// deeper models (issue 6): each through a whole model.
const LANGUAGE_MODELS: &[(&str, &str)] = &[
    (
        "activations",
        "data { input x[3] target y[2] }
         model {
           h = dense(x, 8, [leaky_relu, elu, softplus, gelu, silu, swish, softsign, leaky_relu(0.2)])
           g = dense(h, 3, elu(0.5))
           out = dense(g, 2, softplus)
         }
         loss mae(out, y) + mean(leaky_relu(out - y, 0.3)^2) + mean(gelu(y * out))",
    ),
    (
        "huber and regularisation",
        "data { input x[3] target y[2] }
         param k = 0.7
         model { h = dense(x, 4, tanh)  out = dense(h, 2) }
         loss huber(out, y, 0.5) + huber(out * k, y) + 0.01 * l2(weights) + 0.001 * l1(h.w) + l2(out.b) + l1(k)",
    ),
    (
        "binary cross-entropy",
        "data { input x[3] target y[1] }
         model { h = dense(x, 4, relu)  out = dense(h, 1, sigmoid) }
         loss binary_cross_entropy(out, y) + binary_cross_entropy(sigmoid(h), h)",
    ),
    (
        "user functions and conditionals",
        "fn act(z) = z * sigmoid(z)
         fn leaky(z, a) = if z > 0 then z else a * z
         fn hub(d, k) = if abs(d) <= k then 0.5 * d^2 else k * (abs(d) - 0.5 * k)
         fn twice(z) = act(act(z))
         data { input x[3] target y[2] }
         model {
           h = dense(x, 5, [act, leaky(0.1), twice, leaky(0.3), tanh])
           out = dense(h, 2, leaky(0.05))
         }
         loss mean(hub(out - y, 0.5)) + mean(where(y < 0, out^2, abs(out))) * 0.1",
    ),
    (
        "skip connections: sum and concat",
        "data { input x[3] target y[2] }
         model {
           h1 = dense(x, 4, tanh)
           h2 = dense(h1, 4, relu)
           h3 = h1 + h2
           c = concat(x, h3, h1 * h2)
           out = dense(c, 2)
         }
         loss mse(out, y)",
    ),
    (
        "dropout",
        "data { input x[3] target y[2] }
         model { h = dense(x, 6, relu)  d = dropout(h, 0.5)  g = dense(d, 4, tanh)  out = dense(g + dropout(g, 0.2), 2) }
         loss mse(out, y)",
    ),
    (
        "comparisons in the loss",
        "data { input x[2] target y[1] }
         param p = 0.5
         model { out = dense(x, 1) }
         loss mean((out - y)^2 * (y > 0) + abs(out - y) * (y <= 0)) + (if p >= 1 then p else p^2)",
    ),
];

#[test]
fn language_models() {
    for (name, source) in LANGUAGE_MODELS {
        check_model(name, source, 4);
        check_model(&format!("{name}, 1 row"), source, 1);
        check_train_step(name, source, 3);
    }
}

#[test]
fn cross_entropy_of_class_indices() {
    // A [B,1] column of classes 0..2 against a 3-way softmax.
    let source = "data { input x[4] target y[1] }
        model { h = dense(x, 5, tanh)  out = dense(h, 3, softmax) }
        loss cross_entropy(out, y)";
    let classes = |env: &mut Env| {
        for (i, t) in env.targets[0].data.iter_mut().enumerate() {
            *t = (i % 3) as f64;
        }
    };
    check_model_with("cross_entropy of class indices", source, 6, classes);
}

// ---- one training step --------------------------------------------------------------

/// `interp::train_step` on the training graph against `p − lr·grad`, with
/// `grad` evaluated on the raw autodiff graph.
fn check_train_step(name: &str, source: &str, rows: usize) {
    let program = common::program(source);
    let graphs = pipeline::graphs(&program);
    let mut rng = Rng::new(seed_of(name));
    let mut env = synthetic_env(&program, rows, &mut rng);
    env.learning_rate = 0.05;
    let values = interp::eval(&graphs.grad, &env);
    let forward = loss(&program.graph, &env);
    for (stage, g) in [("train", &graphs.train), ("grad", &graphs.grad)] {
        let mut stepped = env.clone();
        let reported = interp::train_step(g, &mut stepped);
        assert!(
            close(reported, forward, 1e-12, 1e-12),
            "{name}: graphs.{stage} step reports loss {reported}, forward {forward}"
        );
        for (i, param) in program.graph.params.iter().enumerate() {
            let grad = &values[graphs.grad.output(&format!("grad.{}", param.name)).expect("gradient").index()];
            let expected: Vec<f64> =
                env.params[i].data.iter().zip(&grad.data).map(|(p, g)| p - env.learning_rate * g).collect();
            let what = format!("{name}: `{}` after one step of graphs.{stage}", param.name);
            assert_all_close(&what, &stepped.params[i].data, &expected, 1e-12, 1e-12);
        }
    }
}

#[test]
fn train_step_is_p_minus_lr_grad() {
    check_train_step("minimize.nn", &common::example("minimize.nn"), 1);
    check_train_step("seed.nn", &common::example("seed.nn"), 4);
    check_train_step("iris.nn", &common::example("iris.nn"), 6);
    for (name, source) in EXTRA_MODELS {
        check_train_step(name, source, 3);
    }
}

// ---- random compositions ----------------------------------------------------------------

#[test]
fn random_compositions() {
    // Random elementwise/broadcast/reduction graphs with constants 0, ±1, 2…
    // so that the simplifier's identities and canonical forms fire.
    for seed in 0..300u64 {
        let mut rng = Rng::new(seed);
        let operands: Vec<Shape> = (0..3).map(|_| random::shape(&mut rng)).collect();
        let n = 4 + rng.below(10);
        let steps = random::steps(&mut rng, &operands, n);
        let name = format!("random graph {seed}: {operands:?} {steps:?}");
        let operands: Vec<Operand> = operands.into_iter().map(any).collect();
        gradcheck(&name, &operands, |g, leaves| random::build(g, leaves, &steps));
    }
}
