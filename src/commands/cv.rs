//! `nnc cv`: K-fold cross-validation. K models, each trained on all folds
//! but one and scored on the fold held out; each fold's figures, then their
//! mean and sample standard deviation, and what the K trainings cost.
//!
//! The folds come from `runtime::data::folds` (stratified by class for
//! classification, shuffled with the seed); every fold's preprocessing is
//! fitted on its own training rows. The kernels are compiled once, sized
//! for the largest fold, and every fold starts from the same initial
//! weights (the seed's), as a fresh `nnc run` would.
//!
//! Ctrl-C stops the fold being trained after its epoch (a second one quits
//! at once, `runtime::interrupt`): the folds finished are reported, over
//! their number, and the exit status is 130.

use super::run::{finite_or_null, json_metrics, metric_columns, metric_values};
use super::{Failure, bind_error, fixed, internal, plural, read_model_with_data};
use nnc::codegen::Options;
use nnc::ir::program::{Monitor, Task};
use nnc::pipeline;
use nnc::runtime::data;
use nnc::runtime::early_stop::EarlyStopper;
use nnc::runtime::interrupt;
use nnc::runtime::train::{self, Metrics, Params, RunConfig};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct CvArgs {
    /// The model file
    model: PathBuf,
    /// The labelled data file (CSV or Parquet), split into the folds
    data: PathBuf,
    /// Number of folds: K models, each held out on one fold
    #[arg(long, value_name = "K", default_value_t = 5)]
    folds: usize,
    /// Seed of the folds, the initial weights and the shuffling (overrides the file's)
    #[arg(long)]
    seed: Option<u64>,
    /// Passes over each fold's training rows (overrides the file)
    #[arg(long)]
    epochs: Option<u64>,
    /// Rows per batch (overrides the file)
    #[arg(long)]
    batch: Option<u64>,
    /// Visit each fold's training rows in a new random order every epoch
    #[arg(long, overrides_with = "no_shuffle")]
    shuffle: bool,
    /// Visit each fold's training rows in file order (the default)
    #[arg(long)]
    no_shuffle: bool,
    /// The data file's field delimiter (detected when not given)
    #[arg(long, value_name = "CHAR", value_parser = super::parse_delimiter)]
    delimiter: Option<u8>,
    /// Print one JSON object with every fold's figures on stdout
    #[arg(long)]
    json: bool,
    /// Print nothing on stderr
    #[arg(long)]
    quiet: bool,
    /// Threads for large matrix products (default: every core)
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

/// One fold's result.
struct Fold {
    /// The loss's weights this fold used (`balanced` differs per fold).
    loss_weights: Option<Vec<f64>>,
    /// Rows of each class held out (classification).
    held_classes: Option<Vec<usize>>,
    train_rows: usize,
    held_rows: usize,
    metrics: Metrics,
    epochs_run: u64,
    best_epoch: Option<u64>,
    ms: f64,
}

/// Mean and sample standard deviation (n − 1), skipping missing values;
/// `None` when no fold has the figure, a NaN deviation (shown as n/a) when
/// one has.
pub fn mean_std(values: &[Option<f64>]) -> Option<(f64, f64)> {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    if present.is_empty() {
        return None;
    }
    let n = present.len() as f64;
    let mean = present.iter().sum::<f64>() / n;
    let var =
        if present.len() > 1 { present.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { f64::NAN };
    Some((mean, var.sqrt()))
}

pub fn cv(args: &CvArgs) -> Result<(), Failure> {
    let total = Instant::now();
    super::check_argument_order(&args.model, Some(&args.data), "cv")?;
    let threads = args.threads.unwrap_or_else(nnc::threads::available);
    if threads == 0 {
        return Err(Failure::Usage("--threads must be at least 1".into()));
    }
    if args.folds < 2 {
        return Err(Failure::Usage(format!("--folds must be at least 2, got {}", args.folds)));
    }
    let options = data::ReadOptions { delimiter: args.delimiter, targets_optional: false, threads };
    let (model, table) = read_model_with_data(&args.model, &args.data, options)?;
    let program = &model.front.program;
    if !program.has_data() {
        return Err(Failure::Usage(format!("{} has no data block: there is nothing to cross-validate", model.path)));
    }
    let settings = &program.train;
    let seed = args.seed.unwrap_or(settings.seed.value);
    let epochs = args.epochs.unwrap_or(settings.epochs.value);
    if epochs == 0 {
        return Err(Failure::Usage("--epochs must be at least 1".into()));
    }
    if args.batch == Some(0) {
        return Err(Failure::Usage("--batch must be at least 1".into()));
    }
    let shuffle_flag = args.shuffle || args.no_shuffle;
    let shuffle = if shuffle_flag { args.shuffle } else { settings.shuffle.value };
    let table = match table {
        Some(table) => table,
        None => data::read_file(&args.data, &program.data, options).map_err(|e| bind_error(e, &model))?,
    };
    let resolved = data::prepare::resolve(program, table).map_err(|e| bind_error(e, &model))?;
    let file = args.data.display().to_string();
    let folds = data::folds::folds(program, resolved, args.folds, seed, &file).map_err(|e| bind_error(e, &model))?;
    let k = folds.k;
    let stratified = folds.resolved().classes.is_some();
    let sizes = folds.sizes();
    let rows = folds.resolved().kept.len();
    let (min_held, max_held) = (*sizes.iter().min().unwrap_or(&0), *sizes.iter().max().unwrap_or(&0));
    let max_train = rows - min_held;
    let verbose = !args.quiet;

    // One compilation for every fold, sized for the largest; with
    // `weights = balanced` each fold's weights differ, and so its kernels.
    let batch = (args.batch.unwrap_or(settings.batch.value) as usize).min(max_train).max(1);
    let stop_rule = settings.early_stop.value;
    let per_fold_evaluations = 2 + stop_rule.map_or(0, |_| epochs);
    let plan = pipeline::TrainingPlan {
        seed,
        batch,
        eval_rows: max_train.max(max_held),
        evaluated_rows: rows,
        evaluations: k as u64 * per_fold_evaluations,
        threads,
    };
    let compile = |program: &nnc::ir::program::Program| -> Result<pipeline::Native, Failure> {
        let (_, native) = pipeline::training(program, plan, Options::default()).map_err(internal)?;
        Ok(native)
    };
    let per_fold_weights = model.needs_class_weights();
    let shared = if per_fold_weights { None } else { Some(compile(program)?) };
    let mut compile_ms = shared.as_ref().map_or(0.0, |n| n.compile_ms);
    let config = RunConfig { epochs, batch, learning_rate: settings.learning_rate.value as f32, seed, shuffle };

    if verbose {
        let how = if stratified { "stratified by class" } else { "at random" };
        eprintln!("  model      {}", model.path);
        eprintln!("  data       {file} ({rows} rows)");
        eprintln!(
            "  folds      {k}, {how}, seed {seed}{}: {min_held}{} rows held out in each",
            if args.seed.is_some() { " (flag)" } else { "" },
            if max_held > min_held { format!("-{max_held}") } else { String::new() },
        );
        eprintln!("  optimizer  {}", settings.optimizer.value.describe(&format!("{}", settings.learning_rate.value)));
        eprintln!("  epochs     {epochs}{}", if args.epochs.is_some() { " (flag)" } else { "" });
        eprintln!("  batch      {batch}{}", if args.batch.is_some() { " (flag)" } else { "" });
        let order = if shuffle { "shuffled each epoch" } else { "file order" };
        eprintln!("  rows       {order}{}", if shuffle_flag { " (flag)" } else { "" });
        match &shared {
            Some(native) => eprintln!("  compiled   {:.2} ms (once, for every fold)", native.compile_ms),
            None => eprintln!("  compiled   per fold: `weights = balanced` is counted on each fold's training rows"),
        }
        if settings.validation.value > 0.0 {
            eprintln!(
                "note: the model's `validation = {}` is ignored: each fold's held-out rows are its validation data",
                settings.validation.value
            );
        }
        if stop_rule.is_some() {
            eprintln!(
                "note: early stopping watches each fold's held-out rows, so the held-out figures are a little optimistic"
            );
        }
    }

    // Ctrl-C stops the fold being trained after its epoch; the folds
    // finished before it are reported, the interrupted one is not.
    interrupt::install_with_note(
        args.quiet,
        b"\ninterrupted: stopping this fold after its epoch and reporting the folds finished (Ctrl-C again quits at once)\n",
    );
    let mut results = Vec::new();
    for i in 0..k {
        if interrupt::requested() {
            break;
        }
        let start = Instant::now();
        let bound = folds.bind(program, i).map_err(|e| bind_error(e, &model))?;
        let fold_model = if per_fold_weights { Some(model.balanced(&bound, &file)?) } else { None };
        let program = fold_model.as_ref().map_or(program, |m| &m.front.program);
        let fold_native = if per_fold_weights { Some(compile(program)?) } else { None };
        let native = fold_native.as_ref().or(shared.as_ref()).expect("compiled once or for this fold");
        compile_ms += fold_native.as_ref().map_or(0.0, |n| n.compile_ms);
        let (train_data, held) = (&bound.train, bound.validation.as_ref().expect("every fold holds out rows"));
        let transforms = Some(bound.transforms.as_slice());
        let mut stopper = match stop_rule {
            Some(rule) => Some(EarlyStopper::new(rule, true).map_err(Failure::Usage)?),
            None => None,
        };
        let on_epoch = |epoch: u64, loss: f64, params: &Params| {
            if interrupt::requested() {
                return ControlFlow::Break(());
            }
            let Some(stopper) = stopper.as_mut() else { return ControlFlow::Continue(()) };
            let value = match stopper.monitor {
                Monitor::Loss => Some(loss),
                Monitor::ValLoss => train::evaluate(program, &native.eval, Some(held), params, transforms).metrics.loss,
                Monitor::Accuracy => {
                    train::evaluate(program, &native.eval, Some(train_data), params, transforms).metrics.accuracy
                }
                Monitor::ValAccuracy => {
                    train::evaluate(program, &native.eval, Some(held), params, transforms).metrics.accuracy
                }
            };
            if stopper.observe(epoch, value.unwrap_or(f64::NAN), params) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        let initial = Params::init(program, seed);
        let outcome = train::train_until(program, &native.train, Some(train_data), &config, initial, on_epoch)
            .map_err(|diverged| Failure::Diverged(format!("{}: fold {} of {k}: {diverged}", model.path, i + 1)))?;
        if interrupt::requested() {
            break;
        }
        let epochs_run = outcome.history.len() as u64;
        let best = stopper.and_then(|s| s.into_best());
        let best_epoch = best.as_ref().map(|b| b.epoch);
        let params = best.map_or(outcome.params, |b| b.params);
        let metrics = train::evaluate(program, &native.eval, Some(held), &params, transforms).metrics;
        // Training and evaluation: a fold's own compilation is counted apart.
        let ms = start.elapsed().as_secs_f64() * 1e3 - fold_native.as_ref().map_or(0.0, |n| n.compile_ms);
        if verbose {
            let mut figures = format!("  loss {}", fixed(metrics.loss.unwrap_or(f64::NAN), 6));
            for (name, value) in metric_columns(program).iter().zip(metric_values(program, &metrics)) {
                figures.push_str(&format!("  {name} {}", value.map_or("n/a".into(), |v| fixed(v, 4))));
            }
            eprintln!("fold {}/{k}  {}{figures}  ({ms:.1} ms)", i + 1, plural(epochs_run, "epoch"));
        }
        results.push(Fold {
            loss_weights: program.loss_weights.as_ref().map(|w| w.values.clone()),
            held_classes: folds.class_counts(i),
            train_rows: train_data.rows,
            held_rows: held.rows,
            metrics,
            epochs_run,
            best_epoch,
            ms,
        });
    }
    let total_ms = total.elapsed().as_secs_f64() * 1e3;
    let fold_ms: f64 = results.iter().map(|f| f.ms).sum();
    let finished = results.len();
    let interrupted = finished < k;
    if finished == 0 {
        let message = format!("interrupted during fold 1 of {k}: no fold finished, so there is nothing to report\n");
        return Err(Failure::Interrupted(if args.quiet { String::new() } else { message }));
    }
    // "over 5 folds", or "over the 3 of 5 folds finished".
    let over = if interrupted { format!("the {finished} of {k} folds finished") } else { format!("{k} folds") };

    // Every figure: the loss, then the task's metrics.
    let mut names = vec!["loss"];
    names.extend(metric_columns(program));
    let column = |j: usize| -> Vec<Option<f64>> {
        results
            .iter()
            .map(|f| if j == 0 { f.metrics.loss } else { metric_values(program, &f.metrics)[j - 1] })
            .map(|v| v.filter(|v| v.is_finite()))
            .collect()
    };
    let summaries: Vec<Option<(f64, f64)>> = (0..names.len()).map(|j| mean_std(&column(j))).collect();
    let digits = |name: &str| if name == "loss" { 6 } else { 4 };

    if args.json {
        let per_fold: Vec<serde_json::Value> = results
            .iter()
            .enumerate()
            .map(|(i, f)| {
                serde_json::json!({
                    "fold": i + 1,
                    "train_rows": f.train_rows,
                    "held_out_rows": f.held_rows,
                    "held_out_classes": f.held_classes,
                    "loss_weights": f.loss_weights,
                    "epochs_run": f.epochs_run,
                    "best_epoch": f.best_epoch,
                    "metrics": json_metrics(program, &f.metrics),
                    "ms": f.ms,
                })
            })
            .collect();
        let summary = |pick: fn((f64, f64)) -> f64| -> serde_json::Map<String, serde_json::Value> {
            names.iter().zip(&summaries).map(|(n, s)| (n.to_string(), finite_or_null(s.map(pick)))).collect()
        };
        let json = serde_json::json!({
            "model": model.path,
            "data": file,
            "k": k,
            "folds_finished": finished,
            "interrupted": interrupted,
            "seed": seed,
            "stratified": stratified,
            "rows": rows,
            "epochs": epochs,
            "batch": batch,
            "shuffle": shuffle,
            "folds": per_fold,
            "mean": summary(|s| s.0),
            "std": summary(|s| s.1),
            "std_kind": "sample (n - 1)",
            "trainings": finished,
            "timings_ms": { "compile": compile_ms, "folds": fold_ms, "total": total_ms },
        });
        println!("{json}");
    } else {
        let mut header = format!("{:>4}  {:>6}  {:>8}", "fold", "train", "held out");
        for name in &names {
            header.push_str(&format!("  {name:>10}"));
        }
        println!("{header}");
        for (i, f) in results.iter().enumerate() {
            let mut line = format!("{:>4}  {:>6}  {:>8}", i + 1, f.train_rows, f.held_rows);
            for (j, name) in names.iter().enumerate() {
                let cell = column(j)[i].map_or("n/a".into(), |v| fixed(v, digits(name)));
                line.push_str(&format!("  {cell:>10}"));
            }
            println!("{line}");
        }
        for (label, pick) in [("mean", 0), ("std", 1)] {
            let mut line = format!("{label:>4}  {:>6}  {:>8}", "", "");
            for (name, s) in names.iter().zip(&summaries) {
                let value = s.map(|s| if pick == 0 { s.0 } else { s.1 }).filter(|v| v.is_finite());
                let cell = value.map_or("n/a".into(), |v| fixed(v, digits(name)));
                line.push_str(&format!("  {cell:>10}"));
            }
            println!("{line}");
        }
        let parts: Vec<String> = names
            .iter()
            .zip(&summaries)
            .filter_map(|(name, s)| {
                let (mean, std) = (*s)?;
                let std = if std.is_finite() { fixed(std, digits(name)) } else { "n/a".into() };
                Some(format!("{name} {} ± {std}", fixed(mean, digits(name))))
            })
            .collect();
        let what = match program.task {
            Task::Regression => "in the target's units",
            _ => "on the held-out rows",
        };
        println!("held-out mean ± std over {over} ({what}; std is the sample std, n − 1): {}", parts.join(", "));
        if verbose {
            eprintln!(
                "  cost: {} of {} each (one per fold) in {total_ms:.1} ms total: \
                 {:.1} ms per fold on average (training and evaluation), compile {compile_ms:.1} ms {}",
                plural(finished as u64, "training"),
                plural(epochs, "epoch"),
                fold_ms / finished as f64,
                if per_fold_weights { "in all (once per fold)" } else { "once" },
            );
        }
    }
    if interrupted {
        let message = format!(
            "interrupted during fold {} of {k}: {} reported\n",
            finished + 1,
            if finished == 1 {
                "the fold finished is".to_string()
            } else {
                format!("the {finished} folds finished are")
            }
        );
        return Err(Failure::Interrupted(if args.quiet { String::new() } else { message }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::mean_std;

    #[test]
    fn sample_standard_deviation() {
        let (mean, std) = mean_std(&[Some(1.0), Some(2.0), Some(3.0), Some(4.0)]).unwrap();
        assert_eq!(mean, 2.5);
        // Σ(v − 2.5)² = 5, over n − 1 = 3.
        assert!((std - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
        // One figure has no sample deviation.
        let (mean, std) = mean_std(&[None, Some(2.0)]).unwrap();
        assert_eq!(mean, 2.0);
        assert!(std.is_nan());
        assert_eq!(mean_std(&[None]), None);
    }
}
