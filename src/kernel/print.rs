//! The kernel IR as text: buffers, then the per-batch loop nest.
//!
//! ```text
//! kernel train(max_batch = 16, scratch = 416 f32) {
//!   b0: f32[4,8] param h.w
//!   b5: f32[B,8] scratch %7 @0
//!   for batch of B rows {
//!     for i0 in 0..B {
//!       for i1 in 0..8 {
//!         l0 = 0
//!         for i2 in 0..4 {
//!           l0 = l0 + b3[i0*4 + i2] * b0[i2*8 + i1]
//!         }
//!         b5[i0*8 + i1] = l0
//! ```

use super::{BinaryOp, BufferKind, Expr, Extent, Index, Kernel, KernelKind, Stmt, UnaryOp};
use std::fmt::Write;

pub fn print(kernel: &Kernel) -> String {
    let kind = match kernel.kind {
        KernelKind::Train => "train",
        KernelKind::Eval => "eval",
        KernelKind::Predict => "predict",
    };
    let mut out = format!("kernel {kind}(max_batch = {}, scratch = {} f32) {{\n", kernel.max_batch, kernel.scratch_len);
    for (i, buffer) in kernel.buffers.iter().enumerate() {
        let kind = match &buffer.kind {
            BufferKind::Param(_) => format!("param {}", buffer.name),
            BufferKind::State(_) => format!("state {}", buffer.name),
            BufferKind::Input(_) => format!("input {}", buffer.name),
            BufferKind::Target(_) => format!("target {}", buffer.name),
            BufferKind::Scratch { offset } => format!("scratch {} @{offset}", buffer.name),
            BufferKind::Predict => "predict".to_string(),
        };
        writeln!(out, "  b{i}: f32{} {kind}", buffer.shape).unwrap();
    }
    out.push_str("  for each batch of B rows {\n");
    stmts(&mut out, &kernel.body, 2, kernel);
    out.push_str("  }\n}\n");
    out
}

fn stmts(out: &mut String, body: &[super::Stmt], depth: usize, kernel: &Kernel) {
    let pad = "  ".repeat(depth);
    for stmt in body {
        match stmt {
            Stmt::Loop { var, extent, body } => {
                let range = match extent {
                    // The rows of one chunk run from its first row.
                    Extent::Rows { chunk } => format!("rows of chunk {chunk} of 0..B"),
                    _ => format!("0..{extent}"),
                };
                let lanes =
                    if kernel.vector_loops.contains(var) { " step 4 (f32x4)".to_string() } else { String::new() };
                let rows = match kernel.blocked_rows.iter().find(|(v, _)| v == var) {
                    Some((_, u)) => format!(" ({u} at a time)"),
                    None => String::new(),
                };
                writeln!(out, "{pad}for i{} in {range}{lanes}{rows} {{", var.0).unwrap();
                stmts(out, body, depth + 1, kernel);
                writeln!(out, "{pad}}}").unwrap();
            }
            Stmt::Assign { local, value } => writeln!(out, "{pad}l{} = {}", local.0, expr(value)).unwrap(),
            Stmt::Store { buffer, index, value } => {
                writeln!(out, "{pad}b{}[{}] = {}", buffer.0, index_text(index), expr(value)).unwrap()
            }
            Stmt::StoreLoss(value) => writeln!(out, "{pad}loss = {}", expr(value)).unwrap(),
            Stmt::Gemm(g) => {
                let t = |yes: bool| if yes { "ᵀ" } else { "" };
                let (assign, scale) = match &g.accumulate {
                    Some(scale) => ("+=", format!(" * ({})", expr(scale))),
                    None => ("=", String::new()),
                };
                writeln!(
                    out,
                    "{pad}b{} {assign} gemm(b{}{}, b{}{}){scale} [{}x{}x{}]",
                    g.out.0,
                    g.a.0,
                    t(g.trans_a),
                    g.b.0,
                    t(g.trans_b),
                    g.m,
                    g.n,
                    g.k
                )
                .unwrap()
            }
        }
    }
}

fn index_text(index: &Index) -> String {
    let mut parts: Vec<String> = index
        .terms
        .iter()
        .map(|(v, stride)| if *stride == 1 { format!("i{}", v.0) } else { format!("i{}*{stride}", v.0) })
        .collect();
    if index.offset != 0 || parts.is_empty() {
        parts.push(index.offset.to_string());
    }
    parts.join(" + ")
}

fn precedence(e: &Expr) -> u8 {
    match e {
        Expr::Binary(BinaryOp::Add | BinaryOp::Sub, ..) => 1,
        Expr::Binary(BinaryOp::Mul | BinaryOp::Div, ..) => 2,
        Expr::Unary(UnaryOp::Neg, _) => 3,
        _ => 4,
    }
}

fn expr(e: &Expr) -> String {
    let wrap = |inner: &Expr, min: u8| {
        let text = expr(inner);
        if precedence(inner) < min { format!("({text})") } else { text }
    };
    match e {
        Expr::Const(c) => format!("{c:?}").trim_end_matches(".0").to_string(),
        Expr::Load(b, index) => format!("b{}[{}]", b.0, index_text(index)),
        Expr::Local(l) => format!("l{}", l.0),
        Expr::BatchSize => "B".to_string(),
        Expr::LearningRate => "lr".to_string(),
        Expr::Hyper(h) => h.name(),
        Expr::Unary(UnaryOp::Neg, x) => format!("-{}", wrap(x, 3)),
        Expr::Unary(UnaryOp::Powi(n), x) => format!("{}^{n}", wrap(x, 4)),
        Expr::Unary(op, x) => {
            let name = match op {
                UnaryOp::Exp => "exp",
                UnaryOp::Log => "log",
                UnaryOp::Tanh => "tanh",
                UnaryOp::Sigmoid => "sigmoid",
                UnaryOp::Relu => "relu",
                UnaryOp::Abs => "abs",
                UnaryOp::Step => "step",
                UnaryOp::Sign => "sign",
                UnaryOp::Sqrt => "sqrt",
                UnaryOp::Neg | UnaryOp::Powi(_) => unreachable!(),
            };
            format!("{name}({})", expr(x))
        }
        Expr::Binary(BinaryOp::Max, x, y) => format!("max({}, {})", expr(x), expr(y)),
        Expr::Compare(kind, x, y) => format!("({} {} {})", expr(x), kind.symbol(), expr(y)),
        Expr::Select(c, x, y) => format!("select({}, {}, {})", expr(c), expr(x), expr(y)),
        Expr::Dropout { key, threshold, scale, index, x, step } => {
            format!(
                "dropout[key={key:#x},keep>={threshold:#x},scale={scale:?}]({}, {}, {})",
                expr(x),
                expr(step),
                index_text(index)
            )
        }
        Expr::Binary(op, x, y) => {
            let (symbol, p) = match op {
                BinaryOp::Add => ("+", 1),
                BinaryOp::Sub => ("-", 1),
                BinaryOp::Mul => ("*", 2),
                BinaryOp::Div => ("/", 2),
                BinaryOp::Max => unreachable!(),
            };
            // Left-associative: the right side needs brackets at equal precedence.
            format!("{} {symbol} {}", wrap(x, p), wrap(y, p + 1))
        }
    }
}
