//! One constructor per kind of check error, each with its stable code.
//!
//! Codes: E00xx syntax, E01xx names and items, E02xx shapes and types,
//! E03xx settings and values. The README lists them.

use crate::diag::{Diagnostic, suggest};
use crate::ir::Shape;
use crate::span::Span;

pub fn unknown_name<'a>(name: &str, span: Span, known: impl IntoIterator<Item = &'a str>) -> Diagnostic {
    let diag = Diagnostic::new("E0101", format!("unknown name `{name}`"))
        .with_label(span, "not a data input, target, param or earlier layer");
    match suggest(name, known) {
        Some(s) => diag.with_help(format!("did you mean `{s}`?")),
        None => diag,
    }
}

/// A layer used before (or in) its own definition: layers see only earlier ones.
pub fn used_before_definition(name: &str, span: Span, definition: Span) -> Diagnostic {
    if definition.start > span.start {
        Diagnostic::new("E0101", format!("`{name}` is used before it is defined"))
            .with_label(span, "used here")
            .with_label(definition, "defined here, later")
            .with_help("a layer can use only the data, params and layers defined before it; move this line down")
    } else {
        Diagnostic::new("E0101", format!("`{name}` is used in its own definition"))
            .with_label(span, "used here")
            .with_help("a layer can use only the data, params and layers defined before it")
    }
}

pub fn unknown_function<'a>(
    what: &str,
    name: &str,
    span: Span,
    known: impl IntoIterator<Item = &'a str> + Clone,
) -> Diagnostic {
    let diag = Diagnostic::new("E0102", format!("unknown {what} `{name}`")).with_label(span, format!("no such {what}"));
    let list: Vec<&str> = known.clone().into_iter().collect();
    match (suggest(name, known), list.as_slice()) {
        (Some(s), [_, _, ..]) if list.len() <= 8 => {
            diag.with_help(format!("did you mean `{s}`? (expected one of: {})", list.join(", ")))
        }
        (Some(s), _) => diag.with_help(format!("did you mean `{s}`?")),
        (None, [only]) => diag.with_help(format!("the only {what} is `{only}`")),
        (None, _) => diag.with_help(format!("expected one of: {}", list.join(", "))),
    }
}

pub fn duplicate(what: &str, name: &str, span: Span, first: Span) -> Diagnostic {
    Diagnostic::new("E0103", format!("duplicate {what} `{name}`"))
        .with_label(span, "defined again here")
        .with_label(first, "first defined here")
}

pub fn duplicate_item(what: &str, span: Span, first: Span) -> Diagnostic {
    Diagnostic::new("E0104", format!("more than one `{what}`"))
        .with_label(span, "second one here")
        .with_label(first, "first one here")
        .with_help(format!("a model has at most one `{what}`"))
}

pub fn arity(name: &str, expected: &str, got: usize, span: Span) -> Diagnostic {
    Diagnostic::new("E0105", format!("`{name}` takes {expected}, got {got}"))
        .with_label(span, format!("{got} argument(s) here"))
}

pub fn unknown_argument(func: &str, name: &str, span: Span, known: &[&str]) -> Diagnostic {
    let diag =
        Diagnostic::new("E0106", format!("`{func}` has no argument `{name}`")).with_label(span, "unknown argument");
    if known.is_empty() {
        diag.with_help(format!("`{func}` takes no named arguments"))
    } else {
        diag.with_help(format!("its named arguments are: {}", known.join(", ")))
    }
}

pub fn missing_loss(span: Span) -> Diagnostic {
    Diagnostic::new("E0107", "the model has no `loss`")
        .with_label(span, "nothing to minimise")
        .with_help("add a line such as `loss mse(out, y)` or `loss x^2`")
}

pub fn empty_file() -> Diagnostic {
    Diagnostic::new("E0107", "the model file is empty (or only comments)")
        .with_label(Span::new(0, 0), "nothing to minimise")
        .with_help("a model needs at least a `loss`: the smallest is `param x = 0` and `loss (x - 3)^2`")
}

pub fn misplaced(what: &str, span: Span, help: &str) -> Diagnostic {
    Diagnostic::new("E0108", format!("{what} is not allowed here")).with_label(span, "here").with_help(help)
}

pub fn nothing_to_train(span: Span) -> Diagnostic {
    Diagnostic::new("E0109", "the loss depends on no trainable parameter")
        .with_label(span, "this loss is a constant")
        .with_help("declare a `param`, or a `dense` layer in a `model` block, and use it in the loss")
}

pub fn shape_mismatch(what: &str, lhs: (Span, Shape), rhs: (Span, Shape)) -> Diagnostic {
    Diagnostic::new("E0201", format!("shape mismatch in {what}: {} vs {}", lhs.1, rhs.1))
        .with_label(rhs.0, format!("this has shape {}", rhs.1))
        .with_label(lhs.0, format!("this has shape {}", lhs.1))
}

pub fn width_mismatch(layer: &str, span: Span, expected: usize, got: usize) -> Diagnostic {
    Diagnostic::new("E0202", format!("`{layer}` lists {got} activation(s) for {expected} neuron(s)"))
        .with_label(span, format!("{got} activation(s)"))
        .with_help(format!("give one activation for the whole layer, or exactly {expected}, one per neuron"))
}

pub fn wrong_weight_count(argument: &str, got: usize, expected: usize, each: &str, span: Span) -> Diagnostic {
    Diagnostic::new("E0202", format!("`{argument}` lists {got} weight(s) for {expected} {each}(s)"))
        .with_label(span, format!("{got} weight(s)"))
        .with_help(format!("give exactly {expected}, one per {each}"))
}

pub fn loss_not_scalar(span: Span, shape: Shape) -> Diagnostic {
    Diagnostic::new("E0203", format!("the loss must be a single number, but it has shape {shape}"))
        .with_label(span, "not a scalar")
        .with_help("reduce it with `mean(..)` or `sum(..)`")
}

pub fn not_a_distribution(span: Span) -> Diagnostic {
    Diagnostic::new("E0204", "`cross_entropy` needs a probability distribution")
        .with_label(span, "this is not the output of a `softmax` layer")
        .with_help("end the model with `dense(.., softmax)`, or use `mse` for regression")
}

pub fn expected(what: &str, span: Span, label: &str) -> Diagnostic {
    Diagnostic::new("E0205", format!("expected {what}")).with_label(span, label.to_string())
}

pub fn bad_value(message: String, span: Span, help: &str) -> Diagnostic {
    Diagnostic::new("E0301", message).with_label(span, "invalid value").with_help(help)
}

pub fn conflicting_settings(a: &str, b: &str, span: Span, other: Span) -> Diagnostic {
    Diagnostic::new("E0302", format!("`{a}` and `{b}` cannot both be set"))
        .with_label(span, "this one")
        .with_label(other, "conflicts with this")
}

pub fn wrong_setting(name: &str, span: Span, help: &str) -> Diagnostic {
    Diagnostic::new("E0303", format!("`{name}` does not apply to this model")).with_label(span, "here").with_help(help)
}

pub fn too_large(what: &str, span: Span, limit: u64) -> Diagnostic {
    Diagnostic::new("E0304", format!("{what} is too large")).with_label(span, format!("at most {limit}"))
}

pub fn missing_argument(func: &str, name: &str, span: Span, example: &str) -> Diagnostic {
    Diagnostic::new("E0105", format!("`{func}` needs the argument `{name}`"))
        .with_label(span, format!("no `{name}` here"))
        .with_help(format!("for example {example}"))
}

// ---- user functions, dotted names, binary cross-entropy ---------------------------

/// A dotted name such as `h.w` that names no parameter.
pub fn unknown_parameter<'a>(name: &str, span: Span, known: impl IntoIterator<Item = &'a str>) -> Diagnostic {
    let diag = Diagnostic::new("E0101", format!("unknown parameter `{name}`"))
        .with_label(span, "not the weights (`.w`) or bias (`.b`) of an earlier `dense` layer");
    match suggest(name, known) {
        Some(s) => diag.with_help(format!("did you mean `{s}`?")),
        None => diag,
    }
}

/// A name in a function body that is not one of its parameters.
pub fn unknown_in_function(name: &str, function: &str, span: Span, params: &[&str]) -> Diagnostic {
    let diag = Diagnostic::new("E0101", format!("unknown name `{name}` in function `{function}`"))
        .with_label(span, format!("not a parameter of `{function}`"));
    match suggest(name, params.iter().copied()) {
        Some(s) => diag.with_help(format!("did you mean `{s}`? (a function sees only its parameters)")),
        None => diag.with_help(format!(
            "a function sees only its parameters; pass the value in: `fn {function}({}{name})`",
            params.iter().map(|p| format!("{p}, ")).collect::<String>()
        )),
    }
}

/// `fn relu(x) = ..`: built-in names cannot be redefined.
pub fn builtin_redefined(name: &str, span: Span) -> Diagnostic {
    Diagnostic::new("E0103", format!("`{name}` is a built-in function"))
        .with_label(span, "defined again here")
        .with_help("give your function another name")
}

/// Functions that call themselves, directly or through others: `cycle` in
/// call order (the last calls the first), `span` at the call closing it.
pub fn recursive_function(cycle: &[&str], span: Span) -> Diagnostic {
    let message = match cycle {
        [only] => format!("function `{only}` calls itself"),
        _ => {
            let path: Vec<String> = cycle.iter().chain(cycle.first()).map(|f| format!("`{f}`")).collect();
            format!("recursive functions: {}", path.join(" calls "))
        }
    };
    Diagnostic::new("E0110", message)
        .with_label(span, "this call closes the cycle")
        .with_help("functions are inlined where they are called, so they cannot be recursive")
}

pub fn not_a_sigmoid(span: Span) -> Diagnostic {
    Diagnostic::new("E0204", "`binary_cross_entropy` needs a probability")
        .with_label(span, "this is not the output of a `sigmoid`")
        .with_help("end the model with `dense(.., 1, sigmoid)`; the loss is computed stably from its input")
}
