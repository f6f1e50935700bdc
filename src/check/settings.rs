//! The `train { .. }` block: each setting checked and recorded as set, on top
//! of the documented defaults in [`TrainConfig`].

use super::{const_value, errors};
use crate::diag::Diagnostic;
use crate::ir::program::{
    DEFAULT_PATIENCE, EarlyStop, Monitor, OPTIMIZERS, Optimizer, OptimizerDef, Schedule, Setting, SplitKind,
    TrainConfig,
};
use crate::span::Span;
use crate::syntax::ast::{self, ExprKind};

pub const SETTINGS: &[&str] = &[
    "optimizer",
    "schedule",
    "epochs",
    "steps",
    "batch",
    "seed",
    "shuffle",
    "validation",
    "threshold",
    "early_stop",
    "tolerance",
];
pub const SCHEDULES: &[&str] = &["constant", "step", "exponential", "cosine"];

/// Read the settings; `has_data` decides whether `epochs` or `steps` applies.
pub fn train(block: &ast::TrainBlock, has_data: bool, diags: &mut Vec<Diagnostic>) -> TrainConfig {
    let mut config = TrainConfig::default();
    let mut seen: Vec<(&str, Span)> = Vec::new();
    for setting in &block.settings {
        let name = setting.name.name.as_str();
        if !SETTINGS.contains(&name) {
            diags.push(errors::unknown_function("setting", name, setting.name.span, SETTINGS.iter().copied()));
            continue;
        }
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
            diags.push(errors::duplicate("setting", name, setting.name.span, *first));
            continue;
        }
        seen.push((name, setting.name.span));
        match name {
            "optimizer" => optimizer(&setting.value, &mut config, diags),
            "schedule" => schedule(&setting.value, &mut config, diags),
            "epochs" | "steps" => {
                let (wanted, help) = if has_data {
                    ("epochs", "a model with data trains for a number of `epochs` (passes over the data)")
                } else {
                    ("steps", "a model without data trains for a number of `steps`")
                };
                if name != wanted {
                    diags.push(errors::wrong_setting(name, setting.name.span, help));
                } else if let Some(n) = whole(&setting.value, name, 1, diags) {
                    config.epochs = Setting::set(n);
                }
            }
            "batch" => {
                if !has_data {
                    diags.push(errors::wrong_setting(name, setting.name.span, "`batch` needs a `data` block"));
                } else if let Some(n) = whole(&setting.value, name, 1, diags) {
                    config.batch = Setting::set(n);
                }
            }
            "shuffle" => match &setting.value.kind {
                _ if !has_data => {
                    diags.push(errors::wrong_setting(name, setting.name.span, "`shuffle` needs a `data` block"))
                }
                ExprKind::Name(v) if v == "true" || v == "false" => config.shuffle = Setting::set(v == "true"),
                _ => diags.push(errors::expected("`true` or `false`", setting.value.span, "not a boolean")),
            },
            "validation" => {
                // `0.2`, or `last(0.2)`, `stratified(0.2)`, `random(0.2)`.
                let (kind, value) = match &setting.value.kind {
                    ExprKind::Call { callee, args } if args.len() == 1 && args[0].name.is_none() => {
                        let kind = match callee.name.as_str() {
                            "last" => Some(SplitKind::Last),
                            "stratified" => Some(SplitKind::Stratified),
                            "random" => Some(SplitKind::Random),
                            _ => None,
                        };
                        (kind, &args[0].value)
                    }
                    ExprKind::Call { .. } => (None, &setting.value),
                    _ => (Some(SplitKind::Auto), &setting.value),
                };
                match (kind, const_value(value)) {
                    _ if !has_data => {
                        diags.push(errors::wrong_setting(name, setting.name.span, "`validation` needs a `data` block"))
                    }
                    (None, _) => diags.push(errors::expected(
                        "a fraction, or `last(f)`, `stratified(f)` or `random(f)`",
                        setting.value.span,
                        "not a validation split",
                    )),
                    (Some(kind), Some(v)) if (0.0..1.0).contains(&v) => {
                        config.validation = Setting::set(v);
                        config.validation_kind = kind;
                    }
                    (Some(_), Some(v)) => diags.push(errors::bad_value(
                        format!("`validation` is the fraction of rows held out, from 0 to below 1; got {v}"),
                        value.span,
                        "e.g. `validation = 0.2` holds out 20% of the rows",
                    )),
                    (Some(_), None) => {
                        diags.push(errors::expected("a fraction such as 0.2", value.span, "not a number"))
                    }
                }
            }
            "seed" => {
                if let Some(n) = whole(&setting.value, name, 0, diags) {
                    config.seed = Setting::set(n);
                }
            }
            "threshold" => {
                if !has_data {
                    diags.push(errors::wrong_setting(name, setting.name.span, "`threshold` needs a `data` block"));
                } else if let Some(v) = number(
                    &setting.value,
                    name,
                    |v| v > 0.0 && v < 1.0,
                    "a probability above 0 and below 1",
                    "a yes/no output answers yes where its probability is at least this; the default is 0.5",
                    diags,
                ) {
                    config.threshold = Setting::set(v);
                }
            }
            "early_stop" => {
                if !has_data {
                    let help = "a model without data stops on the gradient: `tolerance = 1e-6`";
                    diags.push(errors::wrong_setting(name, setting.name.span, help));
                } else if let Some(stop) = early_stop(&setting.value, diags) {
                    config.early_stop = Setting::set(Some(stop));
                }
            }
            "tolerance" => {
                if has_data {
                    let help = "a model with data stops early with `early_stop(patience = 10)`";
                    diags.push(errors::wrong_setting(name, setting.name.span, help));
                } else if let Some(v) = number(
                    &setting.value,
                    name,
                    |v| v > 0.0,
                    "a positive number",
                    "training stops once the gradient's norm is below this, e.g. `tolerance = 1e-6`",
                    diags,
                ) {
                    config.tolerance = Setting::set(Some(v));
                }
            }
            _ => unreachable!("checked against SETTINGS"),
        }
    }
    if let (Some(a), Some(b)) = (seen.iter().find(|(n, _)| *n == "epochs"), seen.iter().find(|(n, _)| *n == "steps")) {
        diags.push(errors::conflicting_settings("epochs", "steps", b.1, a.1));
    }
    config
}

/// Limits that keep counts meaningful and loops finite in reasonable time.
const MAX_COUNT: f64 = 1e12;

fn whole(expr: &ast::Expr, name: &str, min: u64, diags: &mut Vec<Diagnostic>) -> Option<u64> {
    let Some(value) = const_value(expr) else {
        diags.push(errors::expected(&format!("a number for `{name}`"), expr.span, "not a constant number"));
        return None;
    };
    if value.fract() != 0.0 || value < min as f64 || value > MAX_COUNT {
        diags.push(errors::bad_value(
            format!("`{name}` must be a whole number from {min} to {MAX_COUNT:e}, got {value}"),
            expr.span,
            "write a whole number",
        ));
        return None;
    }
    Some(value as u64)
}

/// A checked `name(arg = value, ..)` setting value.
struct Call<'e> {
    name: &'e str,
    span: Span,
    args: Vec<(&'e ast::Ident, &'e ast::Expr)>,
}

/// `name` or `name(arg = value, ..)`: the callee and its named arguments,
/// each checked against `known` and for duplicates. `None` (with a
/// diagnostic) when `expr` is neither or names nothing in `names`.
fn call<'e>(
    expr: &'e ast::Expr,
    what: &str,
    names: &[&str],
    known: &dyn Fn(&str) -> &'static [&'static str],
    diags: &mut Vec<Diagnostic>,
) -> Option<Call<'e>> {
    let (name, span, args): (&str, Span, &[ast::Arg]) = match &expr.kind {
        ExprKind::Call { callee, args } => (&callee.name, callee.span, args.as_slice()),
        // A bare name: `adam` is `adam()`.
        ExprKind::Name(name) => (name, expr.span, &[]),
        _ => {
            let (article, example) = match what {
                "optimizer" => ("an", "`adam(lr = 0.01)`"),
                "schedule" => ("a", "`cosine()`"),
                _ => ("an", "`early_stop(patience = 10)`"),
            };
            let expected = format!("{article} {what} such as {example}");
            diags.push(errors::expected(&expected, expr.span, &format!("not {article} {what}")));
            return None;
        }
    };
    if !names.contains(&name) {
        diags.push(errors::unknown_function(what, name, span, names.iter().copied()));
        return None;
    }
    let allowed = known(name);
    let mut seen: Vec<(&ast::Ident, &ast::Expr)> = Vec::new();
    for arg in args {
        let Some(arg_name) = &arg.name else {
            diags.push(errors::expected(
                &format!("a named argument such as `{} = ..`", allowed.first().unwrap_or(&"lr")),
                arg.value.span,
                "positional argument",
            ));
            continue;
        };
        if !allowed.contains(&arg_name.name.as_str()) {
            diags.push(errors::unknown_argument(name, &arg_name.name, arg_name.span, allowed));
            continue;
        }
        if let Some((first, _)) = seen.iter().find(|(n, _)| n.name == arg_name.name) {
            diags.push(errors::duplicate("argument", &arg_name.name, arg_name.span, first.span));
            continue;
        }
        seen.push((arg_name, &arg.value));
    }
    Some(Call { name, span, args: seen })
}

/// A constant number in `range` (a description such as "from 0 to below 1").
fn number(
    expr: &ast::Expr,
    name: &str,
    ok: impl Fn(f64) -> bool,
    range: &str,
    help: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<f64> {
    match const_value(expr) {
        Some(v) if v.is_finite() && ok(v) => Some(v),
        Some(v) => {
            diags.push(errors::bad_value(format!("`{name}` must be {range}, got {v}"), expr.span, help));
            None
        }
        None => {
            diags.push(errors::expected(&format!("a number for `{name}`"), expr.span, "not a constant number"));
            None
        }
    }
}

fn boolean(expr: &ast::Expr, diags: &mut Vec<Diagnostic>) -> Option<bool> {
    match &expr.kind {
        ExprKind::Name(v) if v == "true" || v == "false" => Some(v == "true"),
        _ => {
            diags.push(errors::expected("`true` or `false`", expr.span, "not a boolean"));
            None
        }
    }
}

/// `sgd(lr, momentum = 0, nesterov = false, weight_decay = 0)`,
/// `adam(lr = 0.001, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0)`,
/// `adamw(.., weight_decay = 0.01)`: PyTorch's names and defaults.
fn optimizer(expr: &ast::Expr, config: &mut TrainConfig, diags: &mut Vec<Diagnostic>) {
    let names: Vec<&str> = OPTIMIZERS.iter().map(|d| d.name).collect();
    let arguments = |name: &str| OptimizerDef::lookup(name).map_or(&[][..], |d| d.arguments);
    let Some(Call { name, args, .. }) = call(expr, "optimizer", &names, &arguments, diags) else {
        return;
    };
    let Some(def) = OptimizerDef::lookup(name) else { return };
    let mut optimizer = (def.default)();
    let mut lr = None;
    let mut momentum_span = None;
    let mut nesterov_span = None;
    for (name, value) in args {
        let fraction = |v: f64| (0.0..1.0).contains(&v);
        let non_negative = |v: f64| v >= 0.0;
        match (name.name.as_str(), &mut optimizer) {
            ("lr", _) => match const_value(value) {
                Some(v) if v > 0.0 && v.is_finite() => lr = Some(v),
                Some(v) => diags.push(errors::bad_value(
                    format!("the learning rate must be a positive number, got {v}"),
                    value.span,
                    "typical values are 0.001 to 0.5",
                )),
                None => diags.push(errors::expected("a number for `lr`", value.span, "not a constant number")),
            },
            ("momentum", Optimizer::Sgd { momentum, .. }) => {
                let help = "typical values are 0.9 or 0.99; 0 turns momentum off";
                if let Some(v) = number(value, "momentum", fraction, "from 0 to below 1", help, diags) {
                    *momentum = v;
                    momentum_span = Some(value.span);
                }
            }
            ("nesterov", Optimizer::Sgd { nesterov, .. }) => {
                if let Some(v) = boolean(value, diags) {
                    *nesterov = v;
                    nesterov_span = Some(value.span);
                }
            }
            ("weight_decay", Optimizer::Sgd { weight_decay, .. })
            | ("weight_decay", Optimizer::Adam(crate::ir::program::AdamConfig { weight_decay, .. }))
            | ("weight_decay", Optimizer::AdamW(crate::ir::program::AdamConfig { weight_decay, .. })) => {
                let help = "typical values are 1e-4 to 0.1";
                if let Some(v) = number(value, "weight_decay", non_negative, "0 or more", help, diags) {
                    *weight_decay = v;
                }
            }
            (arg @ ("beta1" | "beta2"), Optimizer::Adam(c) | Optimizer::AdamW(c)) => {
                let help = "PyTorch's defaults are beta1 = 0.9 and beta2 = 0.999";
                if let Some(v) = number(value, arg, fraction, "from 0 to below 1", help, diags) {
                    if arg == "beta1" { c.beta1 = v } else { c.beta2 = v }
                }
            }
            ("eps", Optimizer::Adam(c) | Optimizer::AdamW(c)) => {
                let help = "PyTorch's default is 1e-8";
                if let Some(v) = number(value, "eps", |v| v > 0.0, "a positive number", help, diags) {
                    c.eps = v;
                }
            }
            _ => unreachable!("arguments checked by `call`"),
        }
    }
    if let (Optimizer::Sgd { momentum, nesterov: true, .. }, Some(span)) = (optimizer, nesterov_span)
        && momentum == 0.0
    {
        diags.push(errors::bad_value(
            "`nesterov = true` needs a momentum above 0".into(),
            momentum_span.unwrap_or(span),
            "add e.g. `momentum = 0.9`",
        ));
    }
    config.optimizer = Setting::set(optimizer);
    config.learning_rate = match lr {
        Some(v) => Setting::set(v),
        None => Setting::default(optimizer.default_learning_rate()),
    };
}

/// `early_stop(patience = 10, min_delta = 0, monitor = val_loss)`; see [`EarlyStop`].
fn early_stop(expr: &ast::Expr, diags: &mut Vec<Diagnostic>) -> Option<EarlyStop> {
    let arguments = |_: &str| -> &'static [&'static str] { &["patience", "min_delta", "monitor"] };
    let callee = call(expr, "early stopping rule", &["early_stop"], &arguments, diags)?;
    let mut stop = EarlyStop { patience: DEFAULT_PATIENCE, min_delta: 0.0, monitor: None };
    for (name, value) in &callee.args {
        match name.name.as_str() {
            "patience" => stop.patience = whole(value, "patience", 1, diags)?,
            "min_delta" => {
                let help = "an improvement must be larger than this to count, e.g. `min_delta = 1e-4`";
                stop.min_delta = number(value, "min_delta", |v| v >= 0.0, "0 or more", help, diags)?;
            }
            _ => match &value.kind {
                ExprKind::Name(n) if Monitor::from_name(n).is_some() => stop.monitor = Monitor::from_name(n),
                ExprKind::Name(n) => {
                    diags.push(errors::unknown_function("monitor", n, value.span, Monitor::NAMES.iter().copied()));
                    return None;
                }
                _ => {
                    diags.push(errors::expected(
                        "`loss`, `val_loss`, `accuracy` or `val_accuracy`",
                        value.span,
                        "here",
                    ));
                    return None;
                }
            },
        }
    }
    Some(stop)
}

fn schedule_arguments(name: &str) -> &'static [&'static str] {
    match name {
        "step" => &["every", "gamma"],
        "exponential" => &["gamma"],
        "cosine" => &["steps", "min_lr"],
        _ => &[],
    }
}

/// `step(every = N, gamma = 0.1)`, `exponential(gamma = γ)`,
/// `cosine(steps = N, min_lr = 0)` or `constant`; see [`Schedule`].
fn schedule(expr: &ast::Expr, config: &mut TrainConfig, diags: &mut Vec<Diagnostic>) {
    let Some(callee) = call(expr, "schedule", SCHEDULES, &schedule_arguments, diags) else { return };
    let args = &callee.args;
    let get = |name: &str| args.iter().find(|(n, _)| n.name == name).map(|(_, v)| *v);
    let gamma_help = "a factor such as 0.5 (below 1 decays the rate)";
    let gamma = |diags: &mut Vec<Diagnostic>| {
        get("gamma").map(|v| number(v, "gamma", |g| g > 0.0, "a positive number", gamma_help, diags))
    };
    let count = |name: &str, diags: &mut Vec<Diagnostic>| get(name).map(|v| whole(v, name, 1, diags));
    let required = |name: &str, example: &str, diags: &mut Vec<Diagnostic>| {
        diags.push(errors::missing_argument(callee.name, name, callee.span, example));
    };
    let schedule = match callee.name {
        "constant" => Some(Schedule::Constant),
        "step" => {
            let gamma = gamma(diags).unwrap_or(Some(0.1));
            match count("every", diags) {
                None => {
                    required("every", "`step(every = 10, gamma = 0.5)`", diags);
                    None
                }
                Some(every) => Some(Schedule::Step { every: every.unwrap_or(1), gamma: gamma.unwrap_or(0.1) }),
            }
        }
        "exponential" => match gamma(diags) {
            None => {
                required("gamma", "`exponential(gamma = 0.99)`", diags);
                None
            }
            Some(gamma) => Some(Schedule::Exponential { gamma: gamma.unwrap_or(1.0) }),
        },
        _ => {
            let steps = count("steps", diags).flatten();
            let min_lr = get("min_lr").and_then(|v| {
                number(v, "min_lr", |m| m >= 0.0, "0 or more", "the rate at the end of the cosine", diags)
            });
            Some(Schedule::Cosine { steps, min_lr: min_lr.unwrap_or(0.0) })
        }
    };
    if let Some(schedule) = schedule {
        config.schedule = Setting::set(schedule);
    }
}
