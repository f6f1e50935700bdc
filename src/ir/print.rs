//! The graph IR as text, one typed binder per line, like a jaxpr:
//!
//! ```text
//! graph {
//!   %0: f32[B,4] = input x
//!   %1: f32[4,8] = param h.w
//!   %2: f32[B,8] = matmul %0, %1                  ; h
//!   return loss = %9, predict = %7
//! }
//! ```
//!
//! Attributes go in brackets after the op name (`sum[rows]`,
//! `pow[3]`), constants print their shortest exact decimal, and the trailing
//! comment names the layer the node came from. Dead nodes (not reachable from
//! an output) are not printed, so the text shows what the program computes.

use super::{Graph, Node, Op, Unary};
use std::fmt::Write;

/// The op with its attributes and arguments: `matmul[trans_a] %0, %4`.
pub fn op_text(graph: &Graph, node: &Node) -> String {
    let mut text = match &node.op {
        Op::Input(i) => format!("input {}", graph.inputs[*i as usize].name),
        Op::Target(i) => format!("target {}", graph.targets[*i as usize].name),
        Op::Param(i) => format!("param {}", graph.params[*i as usize].name),
        Op::State(i) => format!("state {}", graph.states[*i as usize].name),
        Op::Hyper(h) => format!("hyper {}", h.name()),
        Op::Const(c) => format!("const {c}"),
        Op::Unary(Unary::Pow(c)) => format!("pow[{c}]"),
        Op::MatMul { trans_a, trans_b } => {
            let flags: Vec<&str> =
                [(*trans_a, "trans_a"), (*trans_b, "trans_b")].iter().filter(|(on, _)| *on).map(|(_, n)| *n).collect();
            if flags.is_empty() { "matmul".to_string() } else { format!("matmul[{}]", flags.join(",")) }
        }
        Op::Sum { rows, cols } => match (rows, cols) {
            (true, true) => "sum[rows,cols]".to_string(),
            (true, false) => "sum[rows]".to_string(),
            (false, true) => "sum[cols]".to_string(),
            (false, false) => "sum[]".to_string(),
        },
        Op::SliceCols { start } => format!("slice_cols[start={start}]"),
        Op::Dropout { rate, site } => format!("dropout[rate={rate},site={site}]"),
        Op::PadCols { start } => format!("pad_cols[start={start}]"),
        op => op.name().to_string(),
    };
    for (i, arg) in node.args.iter().enumerate() {
        text.push_str(if i == 0 { " " } else { ", " });
        write!(text, "{arg}").unwrap();
    }
    text
}

/// The whole graph as text.
pub fn graph(graph: &Graph) -> String {
    let live = graph.live();
    let mut out = String::from("graph {\n");
    for (i, node) in graph.nodes.iter().enumerate() {
        if !live[i] {
            continue;
        }
        let mut line = format!("  %{i}: f32{} = {}", node.shape, op_text(graph, node));
        if let Some(layer) = &node.origin.layer {
            let pad = 48usize.saturating_sub(line.chars().count()).max(1);
            line.push_str(&" ".repeat(pad));
            write!(line, "; {layer}").unwrap();
        }
        out.push_str(&line);
        out.push('\n');
    }
    let outputs: Vec<String> = graph.outputs.iter().map(|(name, id)| format!("{name} = {id}")).collect();
    writeln!(out, "  return {}", outputs.join(", ")).unwrap();
    out.push_str("}\n");
    out
}
