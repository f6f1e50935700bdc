//! Syntax: `.nn` text → AST.
//!
//! The grammar lives in `grammar/nn.pest`; [`parse`] runs it and builds the
//! [`ast`] with byte spans, [`print`](mod@print) turns an AST back into text (a tree dump
//! for `nnc ir --stage ast`, and `.nn` source). The language, in brief:
//!
//! ```text
//! # comments run to the end of the line; whitespace and newlines are insignificant
//! data  { input x[3]  target y = one_hot(3) standardize }
//! model { h = dense(x, 8, tanh)  out = dense(h, 3, softmax) }
//! param w = 0
//! loss  cross_entropy(out, y)
//! train { optimizer = sgd(lr = 0.05)  epochs = 200 }
//! ```
//!
//! Items come in any order and number (the checker counts them); besides the
//! blocks there are user functions, `fn swish(x) = x * sigmoid(x)`. The item
//! keywords `data`, `model`, `param`, `fn`, `loss` and `train`, and `if`,
//! `then`, `else`, are reserved; `input` and `target` are keywords only where
//! a data declaration starts.
//! Expressions, loosest first: `if c then a else b` (a run of `else if`s
//! needs no brackets; a condition or `then` branch that is itself a
//! conditional does), one comparison `< <= > >= == !=` (they do not chain),
//! `+ -`, `* /` (both left-associative), prefix `-`, `^` (right-associative,
//! and its exponent may be negated: `x^-1`), then numbers, names (`h`, or
//! `h.w` with no spaces around the dot), calls `f(a, key = b)`, lists
//! `[a, b]` and `( … )`. `-x^2` is `-(x^2)` and `2^3^2` is `2^(3^2)`.
//!
//! Spans are byte ranges that cover a node's text exactly (no surrounding
//! whitespace). A parenthesised expression is its inner node, with the span
//! widened to include the parentheses.
//!
//! [`parse`] never panics. Diagnostics it returns:
//! - `E0001` a syntax error (one per file: parsing stops at the first),
//! - `E0002` a number literal too large for an `f64`,
//! - `E0003` brackets or expressions nested more than [`MAX_DEPTH`] deep, or an
//!   input too large to parse.

pub mod ast;
mod parser;
pub mod print;

pub use parser::MAX_DEPTH;

use crate::diag::Diagnostic;

/// Parse a whole `.nn` file.
///
/// On error, returns the diagnostics (at least one); see the module docs for
/// their codes.
pub fn parse(source: &str) -> Result<ast::File, Vec<Diagnostic>> {
    parser::parse(source)
}
