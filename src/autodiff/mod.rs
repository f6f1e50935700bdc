//! Autodiff: reverse mode as an IR → IR transformation.
//!
//! [`grad`] walks the graph backwards from `loss`, asking the rule table
//! ([`rules::backward`]) for each node's contribution to its arguments'
//! adjoints, and summing contributions that meet. The result is more IR in
//! the same graph, with an output `grad.<param>` per parameter: nothing is
//! recorded at run time, and the backward pass is compiled like the forward
//! one. Only nodes that depend on a parameter get adjoints.

pub mod rules;

use crate::ir::{Binary, Graph, NodeId, Op};
use rules::Builder;

/// Add `grad.<param>` outputs (∂loss/∂param) for every parameter.
pub fn grad(graph: &mut Graph) {
    // Each parameter's leaf, found in one pass over the nodes.
    let mut leaves: Vec<Option<NodeId>> = vec![None; graph.params.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        if let Op::Param(index) = node.op
            && leaves[index as usize].is_none()
        {
            leaves[index as usize] = Some(NodeId(i as u32));
        }
    }
    let wanted: Vec<NodeId> = leaves.iter().flatten().copied().collect();
    let adjoints = adjoints(graph, &wanted);
    let mut found = adjoints.into_iter();
    for (param, leaf) in graph.params.clone().iter().zip(leaves) {
        let gradient = match leaf.and_then(|_| found.next().flatten()) {
            Some(g) => g,
            // Unused parameter: its gradient is zero.
            None => graph
                .add_declared(Op::Const(0.0), &[], param.shape, Default::default())
                .expect("a zero of the parameter's shape"),
        };
        graph.set_output(&format!("grad.{}", param.name), gradient);
    }
}

/// The adjoint ∂loss/∂v of each wanted node `v`, built into the graph
/// (`None` where the loss does not depend on `v`).
pub fn adjoints(graph: &mut Graph, wanted: &[NodeId]) -> Vec<Option<NodeId>> {
    let loss = graph.output("loss").expect("a checked graph has a loss");
    let n = graph.nodes.len();
    // Which nodes depend on a wanted node (so their adjoint matters).
    let mut is_wanted = vec![false; n];
    for w in wanted {
        is_wanted[w.index()] = true;
    }
    let mut needs = vec![false; n];
    for i in 0..n {
        let node = &graph.nodes[i];
        needs[i] = is_wanted[i] || node.args.iter().any(|a| needs[a.index()]);
    }
    let mut adjoint: Vec<Option<NodeId>> = vec![None; n];
    let origin = graph.node(loss).origin.clone();
    adjoint[loss.index()] = Some(Builder { graph, origin }.constant(1.0));
    for i in (0..=loss.index()).rev() {
        let Some(g) = adjoint[i] else { continue };
        let y = NodeId(i as u32);
        let origin = graph.node(y).origin.clone();
        let args = graph.node(y).args.clone();
        if !args.iter().any(|a| needs[a.index()]) {
            continue;
        }
        let mut builder = Builder { graph, origin };
        let contributions = rules::backward(&mut builder, y, g);
        for (arg, contribution) in args.iter().zip(contributions) {
            let Some(contribution) = contribution else { continue };
            if !needs[arg.index()] {
                continue;
            }
            adjoint[arg.index()] = Some(match adjoint[arg.index()] {
                Some(sum) => builder.add(Op::Binary(Binary::Add), &[sum, contribution]),
                None => contribution,
            });
        }
    }
    wanted.iter().map(|w| adjoint[w.index()]).collect()
}
