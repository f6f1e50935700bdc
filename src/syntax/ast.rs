//! The abstract syntax tree of a `.nn` file.
//!
//! The AST mirrors the text: it knows nothing of shapes or of which names
//! exist. Every node carries the [`Span`] it was parsed from, so the checker
//! can point at it. Calls are uniform — `dense(x, 8, tanh)`, `sgd(lr = 0.1)`,
//! `one_hot(3)` and `mse(a, b)` are all [`ExprKind::Call`] — and the checker
//! decides what each callee means. A dotted name such as `h.w` is one
//! [`ExprKind::Name`] with the dot in its text.

use crate::span::Span;

/// A whole `.nn` file: its top-level items in source order.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Data(DataBlock),
    Model(ModelBlock),
    Param(ParamDecl),
    Fn(FnDecl),
    Loss(LossDecl),
    Train(TrainBlock),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Data(b) => b.span,
            Item::Model(b) => b.span,
            Item::Param(p) => p.span,
            Item::Fn(f) => f.span,
            Item::Loss(l) => l.span,
            Item::Train(t) => t.span,
        }
    }
}

/// A name as written, with its place.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// `data { input x[4]  target y = one_hot(3) }`
#[derive(Clone, Debug, PartialEq)]
pub struct DataBlock {
    pub decls: Vec<DataDecl>,
    /// `missing = drop`: settings about the data as a whole.
    pub settings: Vec<Setting>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataKind {
    Input,
    Target,
}

/// `input x[4]`, `target y = one_hot(3)`, `input x[4] standardize`.
#[derive(Clone, Debug, PartialEq)]
pub struct DataDecl {
    pub kind: DataKind,
    pub name: Ident,
    /// `[4]`: the number of columns (an expression so that `[-1]` parses and
    /// the checker can say what is wrong with it).
    pub width: Option<Expr>,
    /// `= one_hot(3)`: where the values come from.
    pub source: Option<Expr>,
    /// Trailing words such as `standardize`, or calls such as `fill(mean)`
    /// (a [`ExprKind::Name`] or an [`ExprKind::Call`]).
    pub modifiers: Vec<Expr>,
    pub span: Span,
}

/// `model { h = dense(x, 8, tanh)  out = dense(h, 3, softmax) }`
#[derive(Clone, Debug, PartialEq)]
pub struct ModelBlock {
    pub layers: Vec<Binding>,
    pub span: Span,
}

/// `name = expr`, a layer definition inside `model`.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// `param x = 0`: a trainable scalar with its initial value.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamDecl {
    pub name: Ident,
    pub init: Expr,
    pub span: Span,
}

/// `fn swish(x) = x * sigmoid(x)`: a user function, inlined where it is called.
#[derive(Clone, Debug, PartialEq)]
pub struct FnDecl {
    pub name: Ident,
    pub params: Vec<Ident>,
    pub body: Expr,
    pub span: Span,
}

/// `loss mse(out, y)` or `loss x^3 / 3 - x`.
#[derive(Clone, Debug, PartialEq)]
pub struct LossDecl {
    pub expr: Expr,
    pub span: Span,
}

/// `train { optimizer = sgd(lr = 0.1)  epochs = 100 }`
#[derive(Clone, Debug, PartialEq)]
pub struct TrainBlock {
    pub settings: Vec<Setting>,
    pub span: Span,
}

/// `epochs = 100` inside `train`.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// `0.05`, `3`, `1e-4`
    Number(f64),
    /// `x`, `tanh`, `false`
    Name(String),
    /// `f(a, b, key = c)`
    Call { callee: Ident, args: Vec<Arg> },
    /// `-a`
    Neg(Box<Expr>),
    /// `a + b`, `a ^ b`, ...
    Binary { op: BinOp, lhs: Box<Expr>, rhs: Box<Expr> },
    /// `[tanh, sigmoid]`
    List(Vec<Expr>),
    /// `if cond then a else b`
    If { cond: Box<Expr>, then: Box<Expr>, otherwise: Box<Expr> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    /// Comparisons: 1 where true, 0 where false.
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Pow => "^",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
        }
    }
}

/// One call argument, positional (`8`) or named (`lr = 0.1`).
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

impl Arg {
    pub fn span(&self) -> Span {
        match &self.name {
            Some(name) => name.span.to(self.value.span),
            None => self.value.span,
        }
    }
}
