//! Helpers shared by the tests: a deterministic random generator, loading
//! the shipped examples, element-wise tolerance checks that say which element
//! failed and by how much, and [`nnc`], which runs the binary.
#![allow(dead_code)] // each test binary uses its own subset

use nnc::diag::{self, Style};
use nnc::ir::Shape;
use nnc::ir::interp::Tensor;
use nnc::ir::program::Program;
use std::path::PathBuf;

/// xorshift64*: deterministic, no dependency on `rand` versions.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// `-1.0` or `1.0`.
    pub fn sign(&mut self) -> f64 {
        if self.next_u64() & 1 == 0 { -1.0 } else { 1.0 }
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }

    pub fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

pub fn example_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples").join(name)
}

/// The text of `examples/<name>`.
pub fn example(name: &str) -> String {
    let path = example_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parse and check a model, panicking with the rendered diagnostics.
pub fn program(source: &str) -> Program {
    match nnc::pipeline::frontend(source) {
        Ok(frontend) => frontend.program,
        Err(diags) => panic!("model does not check:\n{}", diag::render(&diags, "test.nn", source, Style::Plain)),
    }
}

/// `|got - want| <= atol + rtol·|want|` (false for NaN).
pub fn close(got: f64, want: f64, rtol: f64, atol: f64) -> bool {
    (got - want).abs() <= atol + rtol * want.abs()
}

/// Element-wise [`close`], panicking with every mismatch (up to 10).
#[track_caller]
pub fn assert_all_close(what: &str, got: &[f64], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: {} values, expected {}", got.len(), want.len());
    let bad: Vec<String> = got
        .iter()
        .zip(want)
        .enumerate()
        .filter(|(_, (g, w))| !close(**g, **w, rtol, atol))
        .map(|(i, (g, w))| format!("  [{i}] got {g:.9e}, want {w:.9e} (diff {:.3e})", (g - w).abs()))
        .collect();
    if !bad.is_empty() {
        let shown = bad.iter().take(10).cloned().collect::<Vec<_>>().join("\n");
        panic!("{what}: {} of {} values differ beyond rtol {rtol:e} / atol {atol:e}:\n{shown}", bad.len(), got.len());
    }
}

/// One f64 tensor from row-major f32s, with the shape resolved at batch 1
/// (parameters have fixed shapes).
pub fn tensor_f32(shape: Shape, values: &[f32]) -> Tensor {
    let (rows, cols) = (shape.rows.resolve(1), shape.cols.resolve(1));
    Tensor::new(rows, cols, values.iter().map(|&x| x as f64).collect())
}

pub fn to_f64(values: &[f32]) -> Vec<f64> {
    values.iter().map(|&x| x as f64).collect()
}

/// Random expression graphs over operands whose shapes all broadcast with
/// each other (`[B,3]`, `[1,3]`, `[B,1]`, `[1,1]`): elementwise ops, explicit
/// broadcasts, reductions, softmax, slices, pads, concatenations and matmuls
/// that stay within those shapes, and constants 0, ±1, 2… so that the simplifier's
/// identities fire. Values stay bounded: divisors and the arguments of log and
/// negative powers are kept in [2, 3].
pub mod random {
    use super::Rng;
    use nnc::ir::{Binary, Dim, Graph, NodeId, Op, Origin, Shape, Unary};

    fn b(cols: u32) -> Shape {
        Shape::batch(cols)
    }

    fn f(rows: u32, cols: u32) -> Shape {
        Shape::fixed(rows, cols)
    }

    fn add(graph: &mut Graph, op: Op, args: &[NodeId]) -> NodeId {
        graph.add(op, args, Origin::default()).expect("well-shaped")
    }

    fn declared(graph: &mut Graph, op: Op, args: &[NodeId], shape: Shape) -> NodeId {
        graph.add_declared(op, args, shape, Origin::default()).expect("well-shaped")
    }

    /// One step of a random expression graph; indices refer to earlier values.
    #[derive(Clone, Copy, Debug)]
    pub enum Step {
        Const(f64, Shape),
        Unary(Unary, usize),
        Binary(Binary, usize, usize),
        /// `x / (2 + sigmoid y)`: a division whose divisor stays in [2, 3].
        SafeDiv(usize, usize),
        /// `u(2 + sigmoid x)` for ops that need positive arguments (log, x^-1, x^0.5).
        Positive(Unary, usize),
        Sum(bool, bool, usize),
        BroadcastFull(usize),
        Softmax(usize),
        LogSoftmax(usize),
        /// Columns `[1, 2, 0]` of a 3-wide value: two slices concatenated.
        Rotate(usize),
        /// A 1-wide value padded to 3 columns at `start`.
        Pad(usize, u32),
        /// `x · yᵀ` for 3-wide `x` and `y: [1,3]`: `[rows, 1]`.
        Dot(usize, usize),
        /// `x · y` for 1-wide `x` and 1-high `y`: the outer product.
        Outer(usize, usize),
    }

    /// Shapes that all broadcast with each other.
    pub fn shape(rng: &mut Rng) -> Shape {
        [b(3), f(1, 3), b(1), f(1, 1)][rng.below(4)]
    }

    pub fn steps(rng: &mut Rng, operands: &[Shape], n: usize) -> Vec<Step> {
        let mut shapes = operands.to_vec();
        let mut steps = Vec::new();
        // Not x^0: its derivative is NaN at 0 (see `pow_0_at_zero`), and x − x makes zeros.
        let bounded = [Unary::Neg, Unary::Tanh, Unary::Sigmoid, Unary::Pow(2.0), Unary::Pow(1.0), Unary::Pow(3.0)];
        let positive = [Unary::Log, Unary::Pow(-1.0), Unary::Pow(0.5), Unary::Pow(-2.0), Unary::Exp];
        let binaries = [Binary::Add, Binary::Sub, Binary::Mul, Binary::Div];
        for _ in 0..n {
            // Prefer recent values, so the graph gets deep rather than wide.
            let pick = |rng: &mut Rng| shapes.len() - 1 - rng.below(shapes.len().min(4));
            let three = |s: Shape| s.cols == Dim::Fixed(3);
            let recent = |want: &dyn Fn(Shape) -> bool| {
                (0..shapes.len()).rev().take(6).filter(|&i| want(shapes[i])).collect::<Vec<usize>>()
            };
            let (wide, narrow, row) = (recent(&three), recent(&|s| s.cols.is_one()), recent(&|s| s == f(1, 3)));
            let high = recent(&|s| s.rows.is_one());
            let step = match rng.below(14) {
                9 if !wide.is_empty() => Step::Softmax(wide[rng.below(wide.len())]),
                10 if !wide.is_empty() => match rng.below(2) {
                    0 => Step::LogSoftmax(wide[rng.below(wide.len())]),
                    _ => Step::Rotate(wide[rng.below(wide.len())]),
                },
                11 if !narrow.is_empty() => Step::Pad(narrow[rng.below(narrow.len())], rng.below(3) as u32),
                12 if !wide.is_empty() && !row.is_empty() => {
                    Step::Dot(wide[rng.below(wide.len())], row[rng.below(row.len())])
                }
                13 if !narrow.is_empty() && !high.is_empty() => {
                    Step::Outer(narrow[rng.below(narrow.len())], high[rng.below(high.len())])
                }
                0 => Step::Const([0.0, 1.0, -1.0, 2.0, 0.5, 3.0][rng.below(6)], [f(1, 1), f(1, 3)][rng.below(2)]),
                1 | 2 => Step::Unary(bounded[rng.below(bounded.len())], pick(rng)),
                3 => Step::Positive(positive[rng.below(positive.len())], pick(rng)),
                4 | 5 => {
                    let (x, y) = (pick(rng), pick(rng));
                    match binaries[rng.below(4)] {
                        // Divide only by constants (never 0) or through SafeDiv.
                        Binary::Div if matches!(steps.get(y.wrapping_sub(operands.len())), Some(Step::Const(c, _)) if *c != 0.0) => {
                            Step::Binary(Binary::Div, x, y)
                        }
                        Binary::Div => Step::SafeDiv(x, y),
                        op => Step::Binary(op, x, y),
                    }
                }
                6 => Step::Sum(rng.below(2) == 0, rng.below(2) == 0, pick(rng)),
                7 => Step::BroadcastFull(pick(rng)),
                _ => Step::Unary(Unary::Tanh, pick(rng)),
            };
            let shape = match step {
                Step::Const(_, s) => s,
                Step::Unary(_, x) | Step::Positive(_, x) => shapes[x],
                Step::Binary(_, x, y) | Step::SafeDiv(x, y) => {
                    Shape::broadcast(shapes[x], shapes[y]).expect("compatible")
                }
                Step::Sum(rows, cols, x) => Shape::new(
                    if rows { Dim::Fixed(1) } else { shapes[x].rows },
                    if cols { Dim::Fixed(1) } else { shapes[x].cols },
                ),
                Step::BroadcastFull(_) => b(3),
                Step::Softmax(x) | Step::LogSoftmax(x) | Step::Rotate(x) => shapes[x],
                Step::Pad(x, _) => Shape::new(shapes[x].rows, Dim::Fixed(3)),
                Step::Dot(x, _) => Shape::new(shapes[x].rows, Dim::Fixed(1)),
                Step::Outer(x, y) => Shape::new(shapes[x].rows, shapes[y].cols),
            };
            shapes.push(shape);
            steps.push(step);
        }
        steps
    }

    pub fn build(g: &mut Graph, leaves: &[NodeId], steps: &[Step]) -> NodeId {
        let mut values = leaves.to_vec();
        for step in steps {
            let id = match *step {
                Step::Const(c, shape) => declared(g, Op::Const(c), &[], shape),
                Step::Unary(u, x) => add(g, Op::Unary(u), &[values[x]]),
                Step::Binary(op, x, y) => add(g, Op::Binary(op), &[values[x], values[y]]),
                Step::SafeDiv(x, y) => {
                    let two = declared(g, Op::Const(2.0), &[], Shape::SCALAR);
                    let s = add(g, Op::Unary(Unary::Sigmoid), &[values[y]]);
                    let divisor = add(g, Op::Binary(Binary::Add), &[two, s]);
                    add(g, Op::Binary(Binary::Div), &[values[x], divisor])
                }
                Step::Positive(u, x) => {
                    let two = declared(g, Op::Const(2.0), &[], Shape::SCALAR);
                    let s = add(g, Op::Unary(Unary::Sigmoid), &[values[x]]);
                    let positive = add(g, Op::Binary(Binary::Add), &[two, s]);
                    add(g, Op::Unary(u), &[positive])
                }
                Step::Sum(rows, cols, x) => add(g, Op::Sum { rows, cols }, &[values[x]]),
                Step::BroadcastFull(x) => {
                    let shape = g.shape(values[x]);
                    if shape == b(3) { values[x] } else { declared(g, Op::Broadcast, &[values[x]], b(3)) }
                }
                Step::Softmax(x) => add(g, Op::Softmax, &[values[x]]),
                Step::LogSoftmax(x) => add(g, Op::LogSoftmax, &[values[x]]),
                Step::Rotate(x) => {
                    let rows = g.shape(values[x]).rows;
                    let tail = declared(g, Op::SliceCols { start: 1 }, &[values[x]], Shape::new(rows, Dim::Fixed(2)));
                    let head = declared(g, Op::SliceCols { start: 0 }, &[values[x]], Shape::new(rows, Dim::Fixed(1)));
                    add(g, Op::ConcatCols, &[tail, head])
                }
                Step::Pad(x, start) => {
                    let rows = g.shape(values[x]).rows;
                    declared(g, Op::PadCols { start }, &[values[x]], Shape::new(rows, Dim::Fixed(3)))
                }
                Step::Dot(x, y) => add(g, Op::MatMul { trans_a: false, trans_b: true }, &[values[x], values[y]]),
                Step::Outer(x, y) => add(g, Op::MatMul { trans_a: false, trans_b: false }, &[values[x], values[y]]),
            };
            values.push(id);
        }
        *values.last().expect("at least one value")
    }
}

/// Run the `nnc` binary from the repository root, without colour.
pub fn nnc(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("the nnc binary runs")
}

/// Start `nnc` with its output piped and read its stderr until `marker`
/// appears (for a test that then interrupts it): the child, its stderr,
/// and what was read of it.
pub fn spawn_until(args: &[&str], marker: &str) -> (std::process::Child, std::process::ChildStderr, Vec<u8>) {
    use std::io::Read;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("nnc starts");
    let mut stderr = child.stderr.take().expect("stderr");
    let (mut seen, mut buffer) = (Vec::new(), [0u8; 256]);
    while !String::from_utf8_lossy(&seen).contains(marker) {
        let n = stderr.read(&mut buffer).expect("read stderr");
        assert!(n > 0, "nnc ended early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buffer[..n]);
    }
    (child, stderr, seen)
}

/// Send SIGINT (Ctrl-C) to a child.
pub fn sigint(child: &std::process::Child) {
    // SAFETY: sends a signal to a process this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
}

/// Run `nnc` and require success (stderr in the failure message).
pub fn ok(args: &[&str]) -> std::process::Output {
    let output = nnc(args);
    assert!(output.status.success(), "nnc {args:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// Run `nnc` (with `--json`) and parse its stdout.
pub fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_slice(&ok(args).stdout).expect("one JSON object")
}

/// An empty scratch directory `group/name` under the target's tmp dir.
pub fn scratch(group: &str, name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(group).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Write `text` to `dir/name`; the path as text, for arguments.
pub fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// A path as an argument.
pub fn s(path: &std::path::Path) -> &str {
    path.to_str().unwrap()
}
