//! nnc: a compiler for small neural networks.
pub mod autodiff;
pub mod check;
pub mod codegen;
pub mod diag;
pub mod export;
pub mod ir;
pub mod kernel;
pub mod opt;
pub mod optimizer;
pub mod picture;
pub mod pipeline;
pub mod runtime;
pub mod span;
pub mod syntax;
pub mod threads;
