//! The IR verifier: checks the invariants every pass must keep.
//!
//! A failure here is a compiler bug, not a user error, so it is reported the
//! way Cranelift's verifier reports one: the printed graph, with each
//! offending node's line marked in place and the error under it.
//!
//! ```text
//!   %1: f32[B,5] = relu %0                        ; h
//! ; ^~~~~~~~~~~~~~~~~~~~~~
//! ; error: %1: shape [B,5] but its arguments give [B,2]
//! ```
//!
//! The pipeline runs it after every graph pass in tests and debug builds,
//! naming the pass whose result failed, and once before lowering in release
//! builds (see `pipeline`).

use super::{Dim, Graph, NodeId, Op, Shape, infer_shape, print};

/// Check every node (arguments precede it, its shape is what its op gives
/// its arguments' shapes, a leaf names a declaration and has its shape, or
/// for data, its width) and
/// every output; on failure, the printed graph with every error marked.
pub fn verify(graph: &Graph) -> Result<(), String> {
    let errors: Vec<(usize, String)> =
        (0..graph.nodes.len()).filter_map(|i| Some((i, node_error(graph, i)?))).collect();
    let missing: Vec<String> = graph
        .outputs
        .iter()
        .filter(|(_, id)| id.index() >= graph.nodes.len())
        .map(|(name, id)| format!("output `{name}` is {id}, which does not exist"))
        .collect();
    if errors.is_empty() && missing.is_empty() {
        return Ok(());
    }
    Err(marked(graph, &errors, &missing))
}

/// What is wrong with node `i`, if anything.
fn node_error(graph: &Graph, i: usize) -> Option<String> {
    let node = &graph.nodes[i];
    if let Some(bad) = node.args.iter().find(|a| a.index() >= i) {
        return Some(format!("argument {bad} does not precede its use"));
    }
    let shapes: Vec<Shape> = node.args.iter().map(|&a| graph.shape(a)).collect();
    match infer_shape(&node.op, &shapes, Some(node.shape)) {
        Ok(shape) if shape == node.shape => {}
        Ok(shape) => return Some(format!("shape {} but its arguments give {shape}", node.shape)),
        Err(err) => return Some(err.0),
    }
    // Data leaves declare their width only: their rows are the batch in a
    // model, and any number in a test graph evaluated on the interpreter.
    let declared = match node.op {
        Op::Input(k) => graph.inputs.get(k as usize).map(|v| Shape::new(node.shape.rows, Dim::Fixed(v.width))),
        Op::Target(k) => graph.targets.get(k as usize).map(|v| Shape::new(node.shape.rows, Dim::Fixed(v.width))),
        Op::Param(k) => graph.params.get(k as usize).map(|p| p.shape),
        Op::State(k) => graph.states.get(k as usize).map(|s| s.shape),
        _ => return None,
    };
    match declared {
        None => Some(format!("{} #{} is not declared", node.op.name(), leaf_index(&node.op))),
        Some(shape) if shape != node.shape => Some(format!("shape {} but the declaration gives {shape}", node.shape)),
        Some(_) => None,
    }
}

fn leaf_index(op: &Op) -> u32 {
    match *op {
        Op::Input(k) | Op::Target(k) | Op::Param(k) | Op::State(k) => k,
        _ => 0,
    }
}

/// The printed graph with a marker and the error under each offending node
/// (printed even when dead) and under `return` for missing outputs.
fn marked(graph: &Graph, errors: &[(usize, String)], missing: &[String]) -> String {
    let roots: Vec<NodeId> =
        graph.outputs.iter().map(|(_, id)| *id).filter(|id| id.index() < graph.nodes.len()).collect();
    let live = graph.live_from(&roots);
    let text = print::lines(graph);
    let mut out = String::new();
    // The declarations and `graph {`: every line before the first node's.
    let first_node = text.iter().position(|l| l.starts_with("  %") || l.starts_with("  return")).unwrap_or(0);
    text[..first_node].iter().for_each(|l| out.push_str(l));
    let mut errors = errors.iter().peekable();
    for (i, &is_live) in live.iter().enumerate() {
        let error = errors.next_if(|(at, _)| *at == i);
        if !is_live && error.is_none() {
            continue;
        }
        let line = print::node_line(graph, i);
        out.push_str(&line);
        if let Some((_, message)) = error {
            let dead = if is_live { "" } else { " (a dead node)" };
            out.push_str(&marker(&line));
            out.push_str(&format!("; error: %{i}{dead}: {message}\n"));
        }
    }
    let return_line = &text[text.len() - 2];
    out.push_str(return_line);
    for message in missing {
        out.push_str(&marker(return_line));
        out.push_str(&format!("; error: {message}\n"));
    }
    out.push_str(&text[text.len() - 1]);
    out
}

/// `;   ^~~~` under the code of `line` (up to its layer comment).
fn marker(line: &str) -> String {
    let code = line.split(" ;").next().unwrap_or(line).trim_end();
    let indent = code.chars().take_while(|c| *c == ' ').count();
    let width = code.chars().count() - indent;
    format!(";{}^{}\n", " ".repeat(indent.saturating_sub(1)), "~".repeat(width.saturating_sub(1)))
}
