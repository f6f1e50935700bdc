//! Optimisation of the graph IR before lowering.
//!
//! Today one pass, [`simplify`], run after autodiff and the optimizer step:
//! it folds constants, applies algebraic identities and removes dead nodes;
//! common subexpressions were already merged by the hash-consing builder.
//! Before it, the evaluation graph loses its training-only ops ([`inference`]).

mod inference;
mod simplify;

pub use inference::inference;
pub use simplify::{compact, simplify, simplify_mapped};
