//! nnc: a compiler for small neural networks.
pub mod diag;
pub mod span;
pub mod syntax;
pub mod check;
pub mod ir;
pub mod autodiff;
pub mod optimizer;
pub mod opt;
pub mod kernel;
pub mod codegen;
pub mod pipeline;
pub mod runtime;
