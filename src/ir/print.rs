//! The graph IR as text, one typed binder per line, like a jaxpr:
//!
//! ```text
//! graph {
//!   input x: f32[B,4]
//!   param h.w: f32[4,8] = xavier                  ; h
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
//!
//! The declarations come first, one a line, in the graph's order: every
//! input, target, parameter (with its initialisation and layer) and
//! optimizer state (with its parameter), used or not. With them the text
//! holds everything [`super::parse`] needs to rebuild the graph: node ids,
//! shapes, declarations and outputs (only the `.nn` spans are lost).

use super::{Graph, Init, Node, Op, Unary};
use std::fmt::Write;

/// The op with its attributes and arguments: `matmul[trans_a] %0, %4`.
pub fn op_text(graph: &Graph, node: &Node) -> String {
    let mut text = match &node.op {
        // An undeclared leaf (in a graph the verifier is reporting) prints its index.
        Op::Input(i) => format!("input {}", name_or_index(graph.inputs.get(*i as usize).map(|v| &v.name), *i)),
        Op::Target(i) => format!("target {}", name_or_index(graph.targets.get(*i as usize).map(|v| &v.name), *i)),
        Op::Param(i) => format!("param {}", name_or_index(graph.params.get(*i as usize).map(|p| &p.name), *i)),
        Op::State(i) => format!("state {}", name_or_index(graph.states.get(*i as usize).map(|s| &s.name), *i)),
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

fn name_or_index(name: Option<&String>, index: u32) -> String {
    name.cloned().unwrap_or_else(|| format!("#{index}"))
}

/// The whole graph as text.
pub fn graph(graph: &Graph) -> String {
    lines(graph).concat()
}

/// The graph as text, one string a line (each ending in `\n`): the
/// verifier marks a node in place.
pub fn lines(graph: &Graph) -> Vec<String> {
    let mut out = vec!["graph {\n".to_string()];
    for input in &graph.inputs {
        out.push(format!("  input {}: f32[B,{}]\n", input.name, input.width));
    }
    for target in &graph.targets {
        out.push(format!("  target {}: f32[B,{}]\n", target.name, target.width));
    }
    for param in &graph.params {
        let init = match param.init {
            Init::XavierUniform => "xavier".to_string(),
            Init::Value(value) => value.to_string(),
        };
        out.push(with_layer(format!("  param {}: f32{} = {init}", param.name, param.shape), param.layer.as_deref()));
    }
    for state in &graph.states {
        let param = graph.params.get(state.param as usize).map_or("?", |p| p.name.as_str());
        out.push(format!("  state {}: f32{} for {param}\n", state.name, state.shape));
    }
    // Outputs that name no node (in a graph the verifier is reporting) reach nothing.
    let roots: Vec<_> = graph.outputs.iter().map(|(_, id)| *id).filter(|id| id.index() < graph.nodes.len()).collect();
    let live = graph.live_from(&roots);
    for (i, _) in live.iter().enumerate().filter(|(_, live)| **live) {
        out.push(node_line(graph, i));
    }
    let outputs: Vec<String> = graph.outputs.iter().map(|(name, id)| format!("{name} = {id}")).collect();
    out.push(format!("  return {}\n", outputs.join(", ")));
    out.push("}\n".to_string());
    out
}

/// One node's line: `  %3: f32[B,8] = matmul %0, %2                  ; h`.
pub fn node_line(graph: &Graph, index: usize) -> String {
    let node = &graph.nodes[index];
    with_layer(format!("  %{index}: f32{} = {}", node.shape, op_text(graph, node)), node.origin.layer.as_deref())
}

/// `line`, then the layer as a comment at column 49 (or one space on), and `\n`.
fn with_layer(mut line: String, layer: Option<&str>) -> String {
    if let Some(layer) = layer {
        let pad = 48usize.saturating_sub(line.chars().count()).max(1);
        line.push_str(&" ".repeat(pad));
        write!(line, "; {layer}").unwrap();
    }
    line.push('\n');
    line
}
