//! The `train { .. }` block: each setting checked and recorded as set, on top
//! of the documented defaults in [`TrainConfig`].

use super::{const_value, errors};
use crate::diag::Diagnostic;
use crate::ir::program::{Optimizer, Setting, TrainConfig};
use crate::span::Span;
use crate::syntax::ast::{self, ExprKind};

pub const SETTINGS: &[&str] = &["optimizer", "epochs", "steps", "batch", "seed", "shuffle", "validation"];
pub const OPTIMIZERS: &[&str] = &["sgd"];

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
            "validation" => match const_value(&setting.value) {
                _ if !has_data => {
                    diags.push(errors::wrong_setting(name, setting.name.span, "`validation` needs a `data` block"))
                }
                Some(v) if (0.0..1.0).contains(&v) => config.validation = Setting::set(v),
                Some(v) => diags.push(errors::bad_value(
                    format!("`validation` is the fraction of rows held out, from 0 to below 1; got {v}"),
                    setting.value.span,
                    "e.g. `validation = 0.2` holds out the last 20% of the rows",
                )),
                None => diags.push(errors::expected("a fraction such as 0.2", setting.value.span, "not a number")),
            },
            "seed" => {
                if let Some(n) = whole(&setting.value, name, 0, diags) {
                    config.seed = Setting::set(n);
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

fn optimizer(expr: &ast::Expr, config: &mut TrainConfig, diags: &mut Vec<Diagnostic>) {
    let (callee, args) = match &expr.kind {
        ExprKind::Call { callee, args } => (callee, args.as_slice()),
        ExprKind::Name(name) => {
            if !OPTIMIZERS.contains(&name.as_str()) {
                diags.push(errors::unknown_function("optimizer", name, expr.span, OPTIMIZERS.iter().copied()));
            }
            config.optimizer = Setting::set(Optimizer::Sgd);
            return;
        }
        _ => {
            diags.push(errors::expected("an optimizer such as `sgd(lr = 0.1)`", expr.span, "not an optimizer"));
            return;
        }
    };
    if !OPTIMIZERS.contains(&callee.name.as_str()) {
        diags.push(errors::unknown_function("optimizer", &callee.name, callee.span, OPTIMIZERS.iter().copied()));
        return;
    }
    config.optimizer = Setting::set(Optimizer::Sgd);
    for arg in args {
        let Some(name) = &arg.name else {
            diags.push(errors::expected("a named argument such as `lr = 0.1`", arg.value.span, "positional argument"));
            continue;
        };
        if name.name != "lr" {
            diags.push(errors::unknown_argument(&callee.name, &name.name, name.span, &["lr"]));
            continue;
        }
        match const_value(&arg.value) {
            Some(lr) if lr > 0.0 && lr.is_finite() => config.learning_rate = Setting::set(lr),
            Some(lr) => diags.push(errors::bad_value(
                format!("the learning rate must be a positive number, got {lr}"),
                arg.value.span,
                "typical values are 0.001 to 0.5",
            )),
            None => diags.push(errors::expected("a number for `lr`", arg.value.span, "not a constant number")),
        }
    }
}
