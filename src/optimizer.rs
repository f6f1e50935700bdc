//! The optimizer as IR: each parameter's new value after one step.
//!
//! Plain SGD is `update.<p> = p − lr · grad.<p>`, with the learning rate a
//! run-time scalar. Writing the update as graph nodes lets the lowering fuse
//! it with the backward pass like any other elementwise op.

use crate::ir::program::Optimizer;
use crate::ir::{Binary, Graph, Hyper, Op, Origin};

/// Add an `update.<param>` output for every parameter (needs `grad.<param>`).
pub fn step(graph: &mut Graph, optimizer: Optimizer) {
    match optimizer {
        Optimizer::Sgd => sgd(graph),
    }
}

fn sgd(graph: &mut Graph) {
    let origin = Origin { span: None, layer: Some("sgd".into()) };
    let lr = graph.add(Op::Hyper(Hyper::LearningRate), &[], origin.clone()).expect("scalar");
    for (index, param) in graph.params.clone().iter().enumerate() {
        let gradient = graph.output(&format!("grad.{}", param.name)).expect("autodiff ran first");
        let shape = param.shape;
        let current = graph.add_declared(Op::Param(index as u32), &[], shape, origin.clone()).expect("param leaf");
        let scaled = graph.add(Op::Binary(Binary::Mul), &[lr, gradient], origin.clone()).expect("lr is a scalar");
        let next = graph.add(Op::Binary(Binary::Sub), &[current, scaled], origin.clone()).expect("same shape");
        graph.set_output(&format!("update.{}", param.name), next);
    }
}
