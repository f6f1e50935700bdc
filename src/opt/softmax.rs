//! Sharing one row pass between `softmax(z)` and `log_softmax(z)`.
//!
//! Cross-entropy on a softmax output needs both: `log_softmax(z)` for the
//! loss (the stable form the checker chose) and `softmax(z)` for its
//! gradient and the prediction. Each is a pass over the row that finds the
//! maximum and sums exponentials. When both are taken of the same `z`, this
//! pass rewrites `softmax(z)` as `exp(log_softmax(z))` (equal to within an
//! ulp or two), and the hash-consing builder makes the two `log_softmax`s one
//! node, so the kernel makes the pass once.
//!
//! It runs after [`super::simplify`] on the graphs that are lowered, not on
//! the ones `nnc grad` prints, where `softmax` reads better.

use crate::ir::{Graph, NodeId, Op, Unary};
use std::collections::HashSet;

/// `graph` with `softmax(z)` as `exp(log_softmax(z))` wherever
/// `log_softmax(z)` is also computed; unchanged otherwise.
pub fn share_softmax(graph: &Graph) -> Graph {
    let log_softmax_of: HashSet<NodeId> =
        graph.nodes.iter().filter(|n| n.op == Op::LogSoftmax).map(|n| n.args[0]).collect();
    if !graph.nodes.iter().any(|n| n.op == Op::Softmax && log_softmax_of.contains(&n.args[0])) {
        return graph.clone();
    }
    let mut out = graph.empty_like();
    let mut map: Vec<NodeId> = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let args: Vec<NodeId> = node.args.iter().map(|a| map[a.index()]).collect();
        let id = if node.op == Op::Softmax && log_softmax_of.contains(&node.args[0]) {
            let log = out.add(Op::LogSoftmax, &args, node.origin.clone()).expect("same shape");
            out.add(Op::Unary(Unary::Exp), &[log], node.origin.clone()).expect("same shape")
        } else {
            out.add_declared(node.op.clone(), &args, node.shape, node.origin.clone()).expect("same shapes")
        };
        map.push(id);
    }
    for (name, id) in &graph.outputs {
        out.set_output(name, map[id.index()]);
    }
    super::compact(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval_graph(loss: &str) -> Graph {
        let source = format!(
            "data {{ input x[4] target y = one_hot(3) }}\nmodel {{ out = dense(x, 3, softmax) }}\nloss {loss}\n"
        );
        let program = crate::pipeline::frontend(&source).expect("checks").program;
        super::super::simplify(&super::super::inference(&program.graph))
    }

    fn count(graph: &Graph, op: Op) -> usize {
        graph.nodes.iter().filter(|n| n.op == op).count()
    }

    #[test]
    fn softmax_next_to_log_softmax_becomes_one_row_pass() {
        let graph = eval_graph("cross_entropy(out, y)");
        assert_eq!((count(&graph, Op::Softmax), count(&graph, Op::LogSoftmax)), (1, 1));
        let shared = share_softmax(&graph);
        assert_eq!((count(&shared, Op::Softmax), count(&shared, Op::LogSoftmax)), (0, 1));
        let predict = shared.output("predict").expect("an eval graph predicts");
        assert_eq!(shared.node(predict).op, Op::Unary(Unary::Exp));
        assert_eq!(shared.shape(predict), graph.shape(graph.output("predict").unwrap()));
    }

    #[test]
    fn softmax_alone_is_left_alone() {
        let graph = eval_graph("mse(out, y)");
        let shared = share_softmax(&graph);
        assert_eq!(count(&shared, Op::Softmax), 1);
        assert_eq!(shared.nodes.len(), graph.nodes.len());
    }
}
