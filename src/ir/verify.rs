//! The IR verifier: checks the invariants every pass must keep.
//!
//! A failure here is a compiler bug, not a user error, so it returns the
//! printed graph with the offending node marked. It runs after every pass in
//! tests and debug builds.

use super::{Graph, Op, infer_shape, print};

/// Check topological order, shapes and outputs.
pub fn verify(graph: &Graph) -> Result<(), String> {
    for (i, node) in graph.nodes.iter().enumerate() {
        let fail = |msg: String| Err(format!("{}\n; ^~~~ error at %{i}: {msg}", print::graph(graph)));
        if let Some(bad) = node.args.iter().find(|a| a.index() >= i) {
            return fail(format!("argument {bad} does not precede its use"));
        }
        let shapes: Vec<_> = node.args.iter().map(|&a| graph.shape(a)).collect();
        match infer_shape(&node.op, &shapes, Some(node.shape)) {
            Ok(shape) if shape == node.shape => {}
            Ok(shape) => return fail(format!("shape {} but arguments give {shape}", node.shape)),
            Err(err) => return fail(err.0),
        }
        let index_ok = match node.op {
            Op::Input(k) => (k as usize) < graph.inputs.len(),
            Op::Target(k) => (k as usize) < graph.targets.len(),
            Op::Param(k) => (k as usize) < graph.params.len(),
            Op::State(k) => (k as usize) < graph.states.len(),
            _ => true,
        };
        if !index_ok {
            return fail("refers to an undeclared input, target or parameter".into());
        }
    }
    for (name, id) in &graph.outputs {
        if id.index() >= graph.nodes.len() {
            return Err(format!("output `{name}` refers to missing node {id}"));
        }
    }
    Ok(())
}
