//! Graph values printed as mathematics, for `nnc grad`.
//!
//! A value is unfolded into an expression tree (stopping at named values:
//! parameters, data and layer outputs) and brought to a canonical
//! sum-of-products: like terms combined, constant coefficients folded,
//! powers of the same factor merged. That is enough to turn the raw reverse
//! mode result for `x^3/3 - x`, `(1/3)·(3·x^2) + (-1)`, into `x^2 - 1`.
//!
//! Notation: `*` and `/` are elementwise (with broadcasting), `·` is the
//! matrix product, `ᵀ` a transpose, `Σ` a sum over all elements (`Σrows`,
//! `Σcols` over one axis), `B` the number of rows in the batch. A
//! comparison `(a > b)` is 1 where it holds and 0 elsewhere, and
//! `(if c then a else b)` is elementwise.

use super::{Binary, Graph, Hyper, NodeId, Op, Unary};
use std::collections::{BTreeMap, HashMap};

/// The value of `root` as a formula, with `names` printed as atoms.
pub fn formula(graph: &Graph, root: NodeId, names: &HashMap<NodeId, String>) -> String {
    let poly = to_poly(graph, root, names, true);
    let text = print_poly(&poly);
    // A conditional alone needs no brackets.
    match graph.node(root).op {
        Op::Select if poly.len() == 1 && text.starts_with("(if ") => text[1..text.len() - 1].to_string(),
        _ => text,
    }
}

/// A product of factors with a coefficient: `coeff · Π factor^exp`.
#[derive(Clone, Debug)]
struct Term {
    coeff: f64,
    /// Printed factor → exponent (sorted, so equal monomials compare equal).
    factors: BTreeMap<String, f64>,
}

type Poly = Vec<Term>;

/// Above this many terms a product is not expanded but kept as a factor.
const MAX_TERMS: usize = 12;

fn constant(c: f64) -> Poly {
    vec![Term { coeff: c, factors: BTreeMap::new() }]
}

fn atom(text: String) -> Poly {
    vec![Term { coeff: 1.0, factors: BTreeMap::from([(text, 1.0)]) }]
}

fn combine(terms: Poly) -> Poly {
    let mut out: Vec<Term> = Vec::new();
    for term in terms {
        if let Some(same) = out.iter_mut().find(|t| t.factors == term.factors) {
            same.coeff += term.coeff;
        } else {
            out.push(term);
        }
    }
    out.retain(|t| t.coeff != 0.0);
    out
}

fn scale(poly: Poly, c: f64) -> Poly {
    combine(poly.into_iter().map(|t| Term { coeff: t.coeff * c, ..t }).collect())
}

fn add(a: Poly, b: Poly) -> Poly {
    combine(a.into_iter().chain(b).collect())
}

fn as_constant(poly: &Poly) -> Option<f64> {
    match poly.as_slice() {
        [] => Some(0.0),
        [t] if t.factors.is_empty() => Some(t.coeff),
        _ => None,
    }
}

fn mul(a: Poly, b: Poly) -> Poly {
    // Distribute only monomials and constants: (1/3)·(3x²) becomes x², while
    // s·(1 − s) stays factored, as a person would write it.
    if (a.len() > 1 && b.len() > 1) || a.len() * b.len() > MAX_TERMS {
        return mul(atom(group(&a)), atom(group(&b)));
    }
    let mut out = Vec::new();
    for x in &a {
        for y in &b {
            let mut factors = x.factors.clone();
            for (f, e) in &y.factors {
                *factors.entry(f.clone()).or_insert(0.0) += e;
            }
            factors.retain(|_, e| *e != 0.0);
            out.push(Term { coeff: x.coeff * y.coeff, factors });
        }
    }
    combine(out)
}

fn power(a: Poly, c: f64) -> Poly {
    if let Some(k) = as_constant(&a) {
        return constant(super::pow(k, c));
    }
    match a.as_slice() {
        // A single monomial: distribute the exponent.
        [t] if t.coeff > 0.0 || c.fract() == 0.0 => vec![Term {
            coeff: super::pow(t.coeff, c),
            factors: t.factors.iter().map(|(f, e)| (f.clone(), e * c)).collect(),
        }],
        _ => vec![Term { coeff: 1.0, factors: BTreeMap::from([(group(&a), c)]) }],
    }
}

/// A polynomial as one factor: bracketed unless it is a single atom.
fn group(poly: &Poly) -> String {
    let text = print_poly(poly);
    match poly.as_slice() {
        [t] if t.coeff == 1.0 && t.factors.len() == 1 && t.factors.values().all(|e| *e == 1.0) => text,
        _ => format!("({text})"),
    }
}

fn to_poly(graph: &Graph, id: NodeId, names: &HashMap<NodeId, String>, top: bool) -> Poly {
    if !top && let Some(name) = names.get(&id) {
        return atom(name.clone());
    }
    let node = graph.node(id);
    let arg = |i: usize| to_poly(graph, node.args[i], names, false);
    let text = |i: usize| print_poly(&to_poly(graph, node.args[i], names, false));
    let grouped = |i: usize| group(&to_poly(graph, node.args[i], names, false));
    // An argument inside a call's own brackets: `Σ(if c then a else b)`.
    let inner = |i: usize| unbracketed(text(i));
    match &node.op {
        Op::Input(i) => atom(graph.inputs[*i as usize].name.clone()),
        Op::Target(i) => atom(graph.targets[*i as usize].name.clone()),
        Op::Param(i) => atom(graph.params[*i as usize].name.clone()),
        Op::State(i) => atom(graph.states[*i as usize].name.clone()),
        Op::Hyper(Hyper::LearningRate) => atom("lr".into()),
        Op::Hyper(Hyper::Step) => atom("t".into()),
        Op::Hyper(Hyper::Schedule) => atom("schedule(t)".into()),
        Op::Hyper(Hyper::BiasCorrection(beta)) => atom(format!("(1 - {beta}^t)")),
        Op::BatchSize => atom("B".into()),
        Op::Const(c) => constant(*c),
        Op::Unary(Unary::Neg) => scale(arg(0), -1.0),
        Op::Unary(Unary::Pow(c)) => power(arg(0), *c),
        Op::Unary(u) => atom(format!("{}({})", u.name(), inner(0))),
        Op::Binary(Binary::Add) => add(arg(0), arg(1)),
        Op::Binary(Binary::Sub) => add(arg(0), scale(arg(1), -1.0)),
        Op::Binary(Binary::Mul) => mul(arg(0), arg(1)),
        Op::Binary(Binary::Div) => {
            let denominator = arg(1);
            match as_constant(&denominator) {
                Some(c) if c != 0.0 => scale(arg(0), 1.0 / c),
                _ => mul(arg(0), power(denominator, -1.0)),
            }
        }
        Op::MatMul { trans_a, trans_b } => {
            let t = |on: bool| if on { "ᵀ" } else { "" };
            atom(format!("{}{} · {}{}", grouped(0), t(*trans_a), grouped(1), t(*trans_b)))
        }
        Op::Sum { rows, cols } => {
            let name = match (rows, cols) {
                (true, true) => "Σ",
                (true, false) => "Σrows",
                (false, true) => "Σcols",
                (false, false) => "",
            };
            atom(format!("{name}({})", inner(0)))
        }
        // Broadcasting is implicit in the notation.
        Op::Broadcast => arg(0),
        Op::Softmax => atom(format!("softmax({})", inner(0))),
        Op::LogSoftmax => atom(format!("log_softmax({})", inner(0))),
        Op::SliceCols { start } => {
            let width = node.shape.width().unwrap_or(0);
            let end = start + width;
            // Columns of a named value by index, as neurons: `δh[1]`, `h.z[0:2]`.
            if let Some(name) = names.get(&node.args[0]) {
                let columns = if width == 1 { format!("{start}") } else { format!("{start}:{end}") };
                return atom(format!("{name}[{columns}]"));
            }
            let inner = text(0);
            let inner = if top_level_space(&inner) { format!("({inner})") } else { inner };
            atom(format!("{inner}[:, {start}:{end}]"))
        }
        Op::PadCols { start } => {
            let width = node.shape.width().unwrap_or(0);
            atom(format!("pad({}, {start}, {width})", inner(0)))
        }
        Op::ConcatCols => {
            let parts: Vec<String> = (0..node.args.len()).map(text).collect();
            atom(format!("[{}]", parts.join(" | ")))
        }
        // The step is implicit, like the batch position.
        Op::Dropout { rate, .. } => atom(format!("dropout({}, {rate})", inner(0))),
        // Bracketed, as they may become factors: `(z > 0) * y`.
        Op::Compare(kind) => atom(format!("({} {} {})", text(0), kind.symbol(), text(1))),
        Op::Select => {
            // A comparison's own brackets are redundant after `if`, and
            // `else if` chains read without brackets, as in the language.
            let cond = text(0);
            let cond = match &graph.node(node.args[0]).op {
                // Printed as `(a > b)` just above.
                Op::Compare(_) if !names.contains_key(&node.args[0]) => cond[1..cond.len() - 1].to_string(),
                _ => cond,
            };
            atom(format!("(if {cond} then {} else {})", text(1), inner(2)))
        }
    }
}

/// A lone conditional `(if c then a else b)` without its brackets, where
/// something else delimits it; any other text as it is.
fn unbracketed(text: String) -> String {
    if !text.starts_with("(if ") {
        return text;
    }
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            return if i + 1 == text.len() { text[1..i].to_string() } else { text };
        }
    }
    text
}

/// Shortest readable form of a coefficient: small fractions as `p/q`.
fn number(c: f64) -> String {
    if c.fract() == 0.0 && c.abs() < 1e15 {
        return format!("{}", c as i64);
    }
    for q in 2..=12i64 {
        let p = c * q as f64;
        if (p - p.round()).abs() < 1e-9 && p.abs() < 1e6 {
            return format!("{}/{q}", p.round() as i64);
        }
    }
    let text = format!("{c:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn factor_text(name: &str, exp: f64) -> String {
    if exp == 1.0 {
        return name.to_string();
    }
    // A factor with a power must be one token, a call or bracketed.
    let base = if top_level_space(name) { format!("({name})") } else { name.to_string() };
    format!("{base}^{}", number(exp))
}

/// Whether `text` has a space outside all brackets (so `^` would bind wrongly).
fn top_level_space(text: &str) -> bool {
    let mut depth = 0i32;
    for c in text.chars() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ' ' if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

fn print_term(term: &Term) -> (bool, String) {
    let negative = term.coeff < 0.0;
    let coeff = term.coeff.abs();
    let mut numerator: Vec<String> = Vec::new();
    let mut denominator: Vec<String> = Vec::new();
    for (f, e) in &term.factors {
        if *e > 0.0 {
            numerator.push(factor_text(f, *e));
        } else {
            denominator.push(factor_text(f, -e));
        }
    }
    let coeff_text = number(coeff);
    let (c_num, c_den) = match coeff_text.split_once('/') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (coeff_text, None),
    };
    if c_num != "1" || numerator.is_empty() {
        numerator.insert(0, c_num);
    }
    if let Some(q) = c_den {
        denominator.insert(0, q);
    }
    let mut text = numerator.join(" * ");
    if !denominator.is_empty() {
        let den =
            if denominator.len() == 1 { denominator[0].clone() } else { format!("({})", denominator.join(" * ")) };
        text = format!("{text} / {den}");
    }
    (negative, text)
}

fn print_poly(poly: &Poly) -> String {
    if poly.is_empty() {
        return "0".into();
    }
    if let Some((common, rest)) = common_factor(poly) {
        // c·f·(a + b) rather than c·f·a + c·f·b.
        let mut outer = common;
        outer.factors.insert(format!("({})", print_sum(&rest)), 1.0);
        return print_sum(&[outer]);
    }
    print_sum(poly)
}

/// The largest monomial dividing every term of a sum of two or more terms
/// (shared factors, and the coefficient when all have the same magnitude).
fn common_factor(poly: &Poly) -> Option<(Term, Poly)> {
    if poly.len() < 2 {
        return None;
    }
    // Only factors with the same power in every term: x^3/3 - x stays a
    // polynomial in x, while 2y_hat/B - 2y/B becomes 2(y_hat - y)/B.
    let mut factors: BTreeMap<String, f64> = poly[0].factors.clone();
    for term in &poly[1..] {
        factors.retain(|f, e| term.factors.get(f) == Some(e));
    }
    let magnitude = poly[0].coeff.abs();
    let coeff = if poly.iter().all(|t| t.coeff.abs() == magnitude) { magnitude } else { 1.0 };
    if factors.is_empty() && coeff == 1.0 {
        return None;
    }
    let rest = poly
        .iter()
        .map(|t| {
            let mut rest = t.factors.clone();
            for (f, e) in &factors {
                let left = rest[f] - e;
                if left == 0.0 {
                    rest.remove(f);
                } else {
                    rest.insert(f.clone(), left);
                }
            }
            Term { coeff: t.coeff / coeff, factors: rest }
        })
        .collect();
    Some((Term { coeff, factors }, rest))
}

/// Longer (more structured) terms first among equals: `x · w + b`.
fn key_length(term: &Term) -> usize {
    term.factors.keys().map(String::len).sum()
}

fn print_sum(poly: &[Term]) -> String {
    // Positive terms first, then by falling degree: x^2 - 1, y_hat - y, 1 - h^2.
    let mut terms: Vec<&Term> = poly.iter().collect();
    let degree = |t: &Term| t.factors.values().filter(|e| **e > 0.0).sum::<f64>();
    terms.sort_by(|a, b| {
        (a.coeff < 0.0)
            .cmp(&(b.coeff < 0.0))
            .then_with(|| degree(b).total_cmp(&degree(a)))
            .then_with(|| key_length(b).cmp(&key_length(a)))
            .then_with(|| a.factors.keys().cmp(b.factors.keys()))
    });
    let mut out = String::new();
    for (i, term) in terms.iter().enumerate() {
        let (negative, text) = print_term(term);
        match (i, negative) {
            (0, false) => out.push_str(&text),
            (0, true) => out.push_str(&format!("-{text}")),
            (_, false) => out.push_str(&format!(" + {text}")),
            (_, true) => out.push_str(&format!(" - {text}")),
        }
    }
    out
}
