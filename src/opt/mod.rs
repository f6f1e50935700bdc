//! Optimisation of the graph IR before lowering.
//!
//! Today one pass, [`simplify`], run after autodiff and the optimizer step:
//! it folds constants, applies algebraic identities and removes dead nodes;
//! common subexpressions were already merged by the hash-consing builder.
//! Before it, the evaluation graph loses its training-only ops ([`inference`]).
//! After it, the graphs that are lowered compute `softmax` from
//! `log_softmax` when both are needed ([`share_softmax`]).

mod inference;
mod simplify;
mod softmax;

pub use inference::inference;
pub use simplify::{compact, simplify, simplify_mapped};
pub use softmax::share_softmax;
