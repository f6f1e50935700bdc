//! The evaluation graph: training-only ops removed.
//!
//! [`inference`] replaces every `dropout` by its input, so evaluation and
//! prediction see the whole network (dropout already scales what it keeps by
//! `1/(1 − rate)` during training, so nothing is rescaled here).

use crate::ir::{Graph, NodeId, Op};

/// A copy of `graph` without dropout; outputs keep their names.
pub fn inference(graph: &Graph) -> Graph {
    if !graph.nodes.iter().any(|node| matches!(node.op, Op::Dropout { .. })) {
        return graph.clone();
    }
    let mut out = graph.empty_like();
    let mut map: Vec<NodeId> = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let args: Vec<NodeId> = node.args.iter().map(|a| map[a.index()]).collect();
        let id = match node.op {
            Op::Dropout { .. } => args[0],
            _ => out.add_declared(node.op.clone(), &args, node.shape, node.origin.clone()).expect("same shapes"),
        };
        map.push(id);
    }
    for (name, id) in &graph.outputs {
        out.set_output(name, map[id.index()]);
    }
    out
}
