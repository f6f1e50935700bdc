//! Exports: a trained model handed to the tools people already run.
//!
//! - [`onnx`]: the inference graph as an ONNX model (opset 17), with the
//!   preprocessing inside, for serving with onnxruntime and friends;
//! - [`torch`]: a PyTorch training script that reproduces nnc's training
//!   exactly (layout, loss, optimizer, schedule, batches) and runs under
//!   `torchrun` with DistributedDataParallel, for data beyond one machine.
//!
//! Exports read the checked [`Program`](crate::ir::program::Program), the
//! trained parameters and the saved preprocessing; they are the last stage
//! and nothing depends on them. A construct an export cannot express is a
//! diagnostic (E0401) pointing at it in the model file.

pub mod onnx;
pub mod onnx_proto;
pub mod torch;

use crate::diag::Diagnostic;
use crate::ir::Node;
use std::collections::HashSet;

/// `base` if it is not taken yet, else `base` with the first free
/// `{separator}1`, `{separator}2`, ...; the name returned is taken.
pub(crate) fn unique_name(taken: &mut HashSet<String>, base: &str, separator: &str) -> String {
    let mut name = base.to_string();
    let mut n = 0;
    while taken.contains(&name) {
        n += 1;
        name = format!("{base}{separator}{n}");
    }
    taken.insert(name.clone());
    name
}

/// E0401: `node` has no form in the export; `why` says what is missing.
pub fn unexportable(node: &Node, why: &str) -> Diagnostic {
    let what = match &node.origin.layer {
        Some(layer) => format!("`{}` in `{layer}` cannot be exported: {why}", node.op.name()),
        None => format!("`{}` cannot be exported: {why}", node.op.name()),
    };
    let diag = Diagnostic::new("E0401", what);
    match node.origin.span {
        Some(span) => diag.with_label(span, "this has no form in the export"),
        None => diag,
    }
}
