//! `nnc run`: train a model, report progress, metrics and the result.

use super::{
    Failure, Model, bind_error, canonical, check_not_an_input, check_output, fixed, internal, plural, rate, read_model,
    read_model_with_data, write_atomically,
};
use nnc::codegen::Options;
use nnc::ir::program::{Monitor, Program, Schedule, SplitKind, Task};
use nnc::pipeline;
use nnc::runtime::data::{self, Bound};
use nnc::runtime::early_stop::EarlyStopper;
use nnc::runtime::train::{self, Metrics, Params, RunConfig};
use nnc::runtime::weights;
use nnc::runtime::{interrupt, tolerance};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The model file
    model: PathBuf,
    /// The CSV data file (for models with a `data` block)
    data: Option<PathBuf>,
    /// Passes over the data (overrides the file)
    #[arg(long)]
    epochs: Option<u64>,
    /// Steps, for models without data (overrides the file)
    #[arg(long)]
    steps: Option<u64>,
    /// Learning rate (overrides the file)
    #[arg(long)]
    lr: Option<f64>,
    /// Rows per batch (overrides the file)
    #[arg(long)]
    batch: Option<u64>,
    /// Seed for the initial weights and the shuffling (overrides the file)
    #[arg(long)]
    seed: Option<u64>,
    /// Visit the rows in a new random order every epoch
    #[arg(long, overrides_with = "no_shuffle")]
    shuffle: bool,
    /// Visit the rows in file order (the default)
    #[arg(long)]
    no_shuffle: bool,
    /// Hold out this fraction of the rows for validation (stratified by class for
    /// classification, random for regression, seeded; the file's `validation = last(..)`
    /// and the like choose otherwise)
    #[arg(long, value_name = "FRACTION", conflicts_with = "validation_data")]
    validation: Option<f64>,
    /// Validate on this data file instead
    #[arg(long, value_name = "FILE")]
    validation_data: Option<PathBuf>,
    /// The data file's field delimiter (`,` `;` `tab` `|` or any one character;
    /// detected from the first lines when not given)
    #[arg(long, value_name = "CHAR", value_parser = super::parse_delimiter)]
    delimiter: Option<u8>,
    /// Start from these weights (safetensors) instead of random ones
    #[arg(long, value_name = "FILE")]
    init_weights: Option<PathBuf>,
    /// Save the trained weights (safetensors), with the preprocessing statistics
    #[arg(long, value_name = "FILE")]
    save_weights: Option<PathBuf>,
    /// Write the loss and metrics of every epoch (step) to this CSV file
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Draw the loss, metrics and learning rate per epoch (step) to this picture (.svg or .png)
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Write one self-contained HTML page: settings, network, curves, metrics, confusion matrix
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Per layer and epoch: gradient norm, weight norm, update/weight ratio (log, JSON, plot, warnings)
    #[arg(long)]
    trace_grads: bool,
    /// Print one JSON object with the results on stdout
    #[arg(long)]
    json: bool,
    /// Print nothing on stderr
    #[arg(long)]
    quiet: bool,
    /// Threads for large matrix products (default: every core); the
    /// trained weights are bitwise the same for any number
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

/// The file's settings with flags on top, and how to describe each.
struct Settings {
    config: RunConfig,
    validation: f64,
    lines: Vec<(&'static str, String)>,
}

fn mark(is_default: bool, from_flag: bool) -> &'static str {
    if from_flag {
        " (flag)"
    } else if is_default {
        " (default)"
    } else {
        ""
    }
}

fn settings(program: &Program, args: &RunArgs) -> Result<Settings, Failure> {
    let train = &program.train;
    let has_data = program.has_data();
    if has_data && args.steps.is_some() {
        return Err(Failure::Usage("--steps is for models without data; use --epochs".into()));
    }
    if !has_data {
        for (given, flag) in [
            (args.epochs.is_some(), "--epochs"),
            (args.batch.is_some(), "--batch"),
            (args.shuffle || args.no_shuffle, "--shuffle"),
            (args.validation.is_some() || args.validation_data.is_some(), "--validation"),
        ] {
            if given {
                let hint = if flag == "--epochs" { "; use --steps" } else { "" };
                return Err(Failure::Usage(format!("{flag} needs a model with a data block{hint}")));
            }
        }
    }
    let epochs_flag = args.epochs.or(args.steps);
    let epochs = epochs_flag.unwrap_or(train.epochs.value);
    if epochs == 0 {
        return Err(Failure::Usage("the number of epochs (steps) must be at least 1".into()));
    }
    let lr = args.lr.unwrap_or(train.learning_rate.value);
    if !(lr > 0.0 && lr.is_finite()) {
        return Err(Failure::Usage(format!("--lr must be a positive number, got {lr}")));
    }
    let batch = args.batch.unwrap_or(train.batch.value);
    if batch == 0 {
        return Err(Failure::Usage("--batch must be at least 1".into()));
    }
    let seed = args.seed.unwrap_or(train.seed.value);
    let shuffle_flag = args.shuffle || args.no_shuffle;
    let shuffle = if shuffle_flag { args.shuffle } else { train.shuffle.value };
    let validation = args.validation.unwrap_or(train.validation.value);
    if !(0.0..1.0).contains(&validation) {
        return Err(Failure::Usage(format!("--validation is a fraction from 0 to below 1, got {validation}")));
    }
    let lr_text = format!("{lr}{}", mark(train.learning_rate.is_default, args.lr.is_some()));
    let mut lines = vec![("optimizer", train.optimizer.value.describe(&lr_text))];
    if has_data {
        lines.push(("epochs", format!("{epochs}{}", mark(train.epochs.is_default, epochs_flag.is_some()))));
        lines.push(("batch", format!("{batch}{}", mark(train.batch.is_default, args.batch.is_some()))));
        let order = if shuffle { "shuffled each epoch" } else { "file order" };
        lines.push(("rows", format!("{order}{}", mark(train.shuffle.is_default, shuffle_flag))));
        let held = match (&args.validation_data, validation) {
            (Some(file), _) => format!("{}", file.display()),
            (None, v) if v > 0.0 => {
                let how = match train.validation_kind {
                    SplitKind::Auto if matches!(program.task, Task::Classification { .. }) => {
                        "stratified by class, seeded"
                    }
                    SplitKind::Auto | SplitKind::Random => "chosen at random, seeded",
                    SplitKind::Last => "the last rows of the file",
                    SplitKind::Stratified => "stratified by class, seeded",
                };
                format!("{}% of the rows, {how}", v * 100.0)
            }
            _ => "none".to_string(),
        };
        let held_flag = args.validation.is_some() || args.validation_data.is_some();
        lines.push(("validation", format!("{held}{}", mark(train.validation.is_default, held_flag))));
        if let Some(rule) = train.early_stop.value {
            let monitor = rule.monitor.map_or("val_loss, or loss without validation data", |m| m.name());
            let stop = format!("patience {}, min_delta {}, monitor {monitor}", rule.patience, rule.min_delta);
            lines.push(("early stop", stop));
        }
        if let Task::Binary { .. } = program.task {
            let threshold = train.threshold.value;
            lines.push(("threshold", format!("{threshold}{}", mark(train.threshold.is_default, false))));
        }
    } else {
        lines.push(("steps", format!("{epochs}{}", mark(train.epochs.is_default, epochs_flag.is_some()))));
        if let Some(t) = train.tolerance.value {
            lines.push(("tolerance", format!("stop once the gradient's norm is below {t:e}")));
        }
    }
    lines.push(("seed", format!("{seed}{}", mark(train.seed.is_default, args.seed.is_some()))));
    let config = RunConfig { epochs, batch: batch.min(1 << 24) as usize, learning_rate: lr as f32, seed, shuffle };
    Ok(Settings { config, validation, lines })
}

/// Read (unless already read) and prepare the training data.
fn load_training(
    program: &Program,
    path: &Path,
    table: Option<data::Table>,
    settings: &Settings,
    args: &RunArgs,
    options: data::ReadOptions,
) -> Result<Bound, data::BindError> {
    let table = match table {
        Some(table) => table,
        None => data::read_file(path, &program.data, options)?,
    };
    let validation = match &args.validation_data {
        Some(file) => Some(data::read_file(file, &program.data, options)?),
        None => None,
    };
    let split =
        data::Split { fraction: settings.validation, kind: program.train.validation_kind, seed: settings.config.seed };
    data::prepare::training(program, table, split, validation)
}

fn save(path: &Path, model: &Model, bound: Option<&Bound>, params: &Params) -> Result<(), Failure> {
    let program = &model.front.program;
    let mut metadata = BTreeMap::new();
    metadata.insert("nnc.model".to_string(), model.path.clone());
    metadata.insert("nnc.source_hash".to_string(), weights::source_hash(&model.text));
    metadata.insert(weights::SOURCE_KEY.to_string(), model.text.clone());
    if let Some(bound) = bound {
        metadata.insert("nnc.preprocessing".to_string(), weights::preprocessing_json(program, &bound.transforms));
        let columns = weights::columns_json(program, &bound.layout.columns, bound.header.names.as_deref());
        metadata.insert(weights::COLUMNS_KEY.to_string(), columns);
    }
    if let Some(json) = model.loss_weights_json() {
        metadata.insert(super::LOSS_WEIGHTS_KEY.to_string(), json);
    }
    weights::save(path, program, params, &metadata).map_err(Failure::input)
}

/// The weighted loss's weights as echoed: by class name when the labels
/// are names, and how `balanced` counted them.
fn describe_loss_weights(program: &Program, bound: Option<&Bound>) -> Option<(&'static str, String)> {
    let w = program.loss_weights.as_ref()?;
    let names = bound.and_then(|b| super::class_names(program, &b.transforms));
    let values: Vec<String> = w
        .values
        .iter()
        .enumerate()
        .map(|(k, v)| match &names {
            Some(names) => format!("{} {}", names.get(k).map_or(k.to_string(), |n| n.clone()), fixed(*v, 4)),
            None => fixed(*v, 4),
        })
        .collect();
    let how = match (w.balanced, bound) {
        (true, Some(b)) => {
            format!(" (balanced: rows / (classes × class rows) over the {} training rows)", b.train.rows)
        }
        _ => String::new(),
    };
    // Keyed `loss` so that the echo's key column stays ten wide.
    let what = match w.kind {
        nnc::ir::program::LossWeightKind::Class => "class weights",
        nnc::ir::program::LossWeightKind::Positive => "pos_weight",
    };
    Some(("loss", format!("{what} {}{how}", values.join(", "))))
}

pub(super) fn metric_columns(program: &Program) -> &'static [&'static str] {
    match program.task {
        Task::Classification { .. } | Task::Binary { .. } => &["accuracy"],
        Task::Regression => &["mse", "mae", "r2"],
        Task::Minimize => &[],
    }
}

pub(super) fn metric_values(program: &Program, m: &Metrics) -> Vec<Option<f64>> {
    match program.task {
        Task::Classification { .. } | Task::Binary { .. } => vec![m.accuracy],
        Task::Regression => vec![m.mse, m.mae, m.r2],
        Task::Minimize => vec![],
    }
}

fn short_metrics(program: &Program, m: &Metrics, prefix: &str) -> String {
    let mut out = String::new();
    if let Some(loss) = m.loss {
        out.push_str(&format!("  {prefix}loss {}", fixed(loss, 6)));
    }
    for (name, value) in metric_columns(program).iter().zip(metric_values(program, m)) {
        if let Some(v) = value {
            out.push_str(&format!("  {prefix}{name} {}", fixed(v, 4)));
        }
    }
    out
}

pub(super) fn json_metrics(program: &Program, m: &Metrics) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    map.insert("loss".into(), finite_or_null(m.loss));
    for (name, value) in metric_columns(program).iter().zip(metric_values(program, m)) {
        map.insert((*name).into(), finite_or_null(value));
    }
    serde_json::Value::Object(map)
}

pub(super) fn finite_or_null(x: Option<f64>) -> serde_json::Value {
    match x {
        Some(v) if v.is_finite() => serde_json::json!(v),
        _ => serde_json::Value::Null,
    }
}

/// Before any work: outputs that cannot be written, or that would replace
/// an input or each other, are refused.
fn check_outputs(args: &RunArgs) -> Result<(), Failure> {
    let inputs: Vec<(&Path, &str)> = [
        (Some(args.model.as_path()), "model file"),
        (args.data.as_deref(), "data file"),
        (args.validation_data.as_deref(), "validation data file"),
    ]
    .into_iter()
    .filter_map(|(path, what)| Some((path?, what)))
    .collect();
    let outputs = [
        (&args.save_weights, "--save-weights", "weights file"),
        (&args.log, "--log", "log file"),
        (&args.plot, "--plot", "picture"),
        (&args.report, "--report", "report"),
    ];
    if let Some(plot) = &args.plot {
        super::draw::picture_format(plot, "--plot")?;
    }
    for (path, flag, what) in outputs {
        if let Some(path) = path {
            check_not_an_input(path, flag, &inputs)?;
            check_output(path, what)?;
        }
    }
    if let (Some(weights), Some(log)) = (&args.save_weights, &args.log)
        && canonical(weights) == canonical(log)
    {
        return Err(Failure::Usage(format!("--save-weights and --log both name {}", weights.display())));
    }
    Ok(())
}

pub fn run(args: &RunArgs) -> Result<(), Failure> {
    let total = Instant::now();
    super::check_argument_order(&args.model, args.data.as_deref(), "run")?;
    let read_options =
        data::ReadOptions { delimiter: args.delimiter, targets_optional: false, threads: args.threads.unwrap_or(0) };
    let (model, table) = match &args.data {
        Some(path) => read_model_with_data(&args.model, path, read_options)?,
        None => (read_model(&args.model)?, None),
    };
    let program = &model.front.program;
    let settings = settings(program, args)?;
    let config = settings.config;
    let threads = args.threads.unwrap_or_else(nnc::threads::available);
    if threads == 0 {
        return Err(Failure::Usage("--threads must be at least 1".into()));
    }
    check_outputs(args)?;
    let bound = match (program.has_data(), &args.data) {
        (true, Some(path)) => Some(
            load_training(program, path, table, &settings, args, read_options).map_err(|e| bind_error(e, &model))?,
        ),
        (true, None) => {
            return Err(Failure::Usage(format!(
                "{0} has a data block: give a CSV file, e.g. `nnc run {0} data.csv`",
                model.path
            )));
        }
        (false, Some(path)) => {
            return Err(Failure::Usage(format!(
                "{} has no data block, so the data file {} would be ignored",
                model.path,
                path.display()
            )));
        }
        (false, None) => None,
    };
    // `weights = balanced` counted on the training rows, the model checked again with them.
    let model = match (&bound, &args.data) {
        (Some(b), Some(path)) => model.balance(b, &path.display().to_string())?,
        _ => model,
    };
    let program = &model.front.program;
    let train_data = bound.as_ref().map(|b| &b.train);
    let validation = bound.as_ref().and_then(|b| b.validation.as_ref());
    let initial = match &args.init_weights {
        Some(path) => weights::load(path, program).map_err(Failure::input)?.0,
        None => Params::init(program, config.seed),
    };
    let rows = train_data.map_or(1, |d| d.rows);
    let batch = if train_data.is_some() { config.batch.min(rows) } else { 1 };
    let verbose = !args.quiet;
    // Evaluations this run makes: the final one, and one per reported epoch
    // (every epoch with --log).
    let epochs = config.epochs;
    let every = epochs.div_ceil(20).max(1);
    let mut stopper = match program.train.early_stop.value {
        Some(rule) if train_data.is_some() => {
            Some(EarlyStopper::new(rule, validation.is_some()).map_err(Failure::Usage)?)
        }
        _ => None,
    };
    // Early stopping on anything but the training loss evaluates every epoch.
    let stop_evaluates = stopper.as_ref().is_some_and(|s| s.monitor != Monitor::Loss);
    let per_epoch = match (
        train_data.is_some(),
        args.log.is_some() || args.plot.is_some() || args.report.is_some() || stop_evaluates,
        verbose,
    ) {
        (false, _, _) => 0,
        (true, true, _) => epochs,
        (true, false, true) => epochs / every + 2,
        (true, false, false) => 0,
    };
    let plan = pipeline::TrainingPlan {
        seed: config.seed,
        batch,
        eval_rows: rows.max(validation.map_or(0, |v| v.rows)),
        evaluated_rows: rows + validation.map_or(0, |v| v.rows),
        evaluations: 1 + per_epoch,
        threads,
    };
    let (graphs, native) = pipeline::training(program, plan, Options::default()).map_err(internal)?;
    let compiled_what = match native.eval {
        train::Evaluator::Compiled(_) => "training and evaluation kernels",
        train::Evaluator::Interpreted(_) => "training kernel; evaluations interpreted",
    };

    // The settings as echoed (and as the report shows them).
    let echoed = {
        let mut lines = vec![("model", model.path.clone())];
        if let (Some(b), Some(path)) = (&bound, &args.data) {
            let held = b.validation.as_ref().map_or(String::new(), |v| format!(", {} for validation", v.rows));
            lines.push(("data", format!("{} ({} rows for training{held})", path.display(), b.train.rows)));
            lines.push(("columns", data::binding_summary(program, b)));
            if b.delimiter != b',' {
                lines.push(("delimiter", nnc::runtime::data::read::delimiter_name(b.delimiter)));
            }
            if b.report.dropped > 0 {
                let rows = if b.report.dropped == 1 { "1 row" } else { "rows" };
                let n = if b.report.dropped == 1 { String::new() } else { format!("{} ", b.report.dropped) };
                lines.push(("missing", format!("dropped {n}{rows} with a missing cell (`missing = drop`)")));
            }
            for (name, n) in &b.report.filled {
                lines.push(("missing", format!("filled {n} cell{} of `{name}`", if *n == 1 { "" } else { "s" })));
            }
        }
        // The split as made: a class label computed by an expression
        // (`digit == 9`) has no column to stratify by, so it is random.
        let made = bound.as_ref().and_then(|b| b.report.split);
        lines.extend(settings.lines.iter().map(|(k, v)| match (*k, made) {
            ("validation", Some(SplitKind::Random)) => {
                (*k, v.replace("stratified by class, seeded", "chosen at random, seeded"))
            }
            _ => (*k, v.clone()),
        }));
        lines.extend(describe_loss_weights(program, bound.as_ref()));
        if program.train.schedule.value != Schedule::Constant {
            // The same length the training loop gives a cosine without one.
            let per_epoch = train_data.map_or(1, |d| d.rows.div_ceil(batch)) as u64;
            let first = initial.state.step + 1;
            let last = initial.state.step + config.epochs * per_epoch;
            let schedule = program.train.schedule.value.resolved(last).describe();
            lines.push(("schedule", format!("{schedule}; this run takes steps {first} to {last}")));
        }
        let has_state = !initial.state.names.is_empty();
        let init = match &args.init_weights {
            Some(path) if has_state && initial.state.step > 0 => {
                format!("{} (with optimizer state after step {})", path.display(), initial.state.step)
            }
            Some(path) if has_state => format!("{} (no optimizer state in it: starting from zero)", path.display()),
            Some(path) if initial.state.step > 0 => {
                format!("{} (after step {})", path.display(), initial.state.step)
            }
            Some(path) => format!("{}", path.display()),
            None => format!("Xavier-uniform from seed {}", config.seed),
        };
        lines.push(("weights", init));
        let cores = if args.threads.is_some() { " (flag)" } else { " (default: every core)" };
        lines.push(("threads", format!("{threads}{cores}")));
        lines.push(("compiled", format!("{:.2} ms ({compiled_what})", native.compile_ms)));
        lines
    };
    if verbose {
        for (key, value) in &echoed {
            eprintln!("  {key:<10} {value}");
        }
        for warning in bound.iter().flat_map(|b| &b.report.warnings) {
            eprintln!("warning: {warning}");
        }
    }

    let initial_step = initial.state.step;
    let unit = if train_data.is_some() { "epoch" } else { "step" };
    let width = epochs.to_string().len();
    let bar = (verbose && std::io::stderr().is_terminal())
        .then(|| super::progress::Meter::new(unit, epochs, train_data.map(|d| d.rows)));
    let transforms = bound.as_ref().map(|b| b.transforms.as_slice());
    let mut tracer = match (args.trace_grads, train_data) {
        (false, _) => None,
        (true, Some(data)) => Some(nnc::pipeline::tracer(program, data, &initial).map_err(internal)?),
        (true, None) => return Err(Failure::Usage("--trace-grads needs a model with a data block".into())),
    };
    // The log's rows are also what --plot draws.
    let mut log = (args.log.is_some() || args.plot.is_some() || args.report.is_some()).then(|| {
        let mut header = format!("{unit},loss");
        for name in metric_columns(program) {
            header.push_str(&format!(",{name}"));
        }
        if validation.is_some() {
            header.push_str(",val_loss");
            for name in metric_columns(program) {
                header.push_str(&format!(",val_{name}"));
            }
        }
        for (layer, _) in tracer.iter().flat_map(|t| &t.layers) {
            header.push_str(&format!(",grad_norm.{layer},weight_norm.{layer},update_ratio.{layer}"));
        }
        // 1 where the epoch's weights became the ones kept: every epoch, or
        // with early stopping each new best of the monitored figure.
        header.push_str(",best\n");
        header
    });
    let mut traces: Vec<(u64, Vec<nnc::runtime::trace::LayerTrace>)> = Vec::new();
    let with_data_metrics = train_data.is_some();
    // Time spent evaluating (metrics of reported epochs, the final model).
    let mut evaluate_time = std::time::Duration::ZERO;
    interrupt::install(args.quiet);
    let on_epoch = |epoch: u64, loss: f64, params: &Params| {
        let report = epoch.is_multiple_of(every) || epoch == 1 || epoch == epochs;
        let need_metrics = with_data_metrics && (log.is_some() || stop_evaluates || (report && verbose));
        let (train_metrics, val_metrics) = if need_metrics {
            let start = Instant::now();
            let t = train::evaluate(program, &native.eval, train_data, params, transforms).metrics;
            let v = validation.map(|v| train::evaluate(program, &native.eval, Some(v), params, transforms).metrics);
            evaluate_time += start.elapsed();
            (Some(t), v)
        } else {
            (None, None)
        };
        let stop = stopper.as_mut().is_some_and(|stopper| {
            let value = match stopper.monitor {
                Monitor::Loss => Some(loss),
                Monitor::ValLoss => val_metrics.as_ref().and_then(|m| m.loss),
                Monitor::Accuracy => train_metrics.as_ref().and_then(|m| m.accuracy),
                Monitor::ValAccuracy => val_metrics.as_ref().and_then(|m| m.accuracy),
            };
            stopper.observe(epoch, value.unwrap_or(f64::NAN), params)
        });
        // The last epoch of a run that stops early is always shown.
        let report = report || stop;
        let mut message = format!("loss {}", fixed(loss, 6));
        if let Some(m) = &train_metrics {
            let without_loss = Metrics { loss: None, ..m.clone() };
            message.push_str(&short_metrics(program, &without_loss, ""));
        }
        if let Some(v) = &val_metrics {
            message.push_str(&short_metrics(program, v, "val_"));
        }
        if let Some(bar) = &bar {
            bar.epoch_done(epoch, message, stop || epoch == epochs);
        } else if verbose && report {
            eprintln!("{unit} {epoch:>width$}/{epochs}  {message}");
        }
        let trace = tracer.as_mut().map(|t| t.observe(program, params));
        if let Some(text) = log.as_mut() {
            text.push_str(&format!("{epoch},{loss}"));
            let cell = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
            if let Some(m) = &train_metrics {
                for value in metric_values(program, m) {
                    text.push_str(&format!(",{}", cell(value)));
                }
            }
            if let Some(v) = &val_metrics {
                text.push_str(&format!(",{}", cell(v.loss)));
                for value in metric_values(program, v) {
                    text.push_str(&format!(",{}", cell(value)));
                }
            }
            for t in trace.iter().flatten() {
                text.push_str(&format!(",{},{},{}", t.grad_norm, t.weight_norm, t.update_ratio));
            }
            let kept = stopper.as_ref().is_none_or(|s| s.best().is_some_and(|b| b.epoch == epoch));
            text.push_str(if kept { ",1\n" } else { ",0\n" });
        }
        if let Some(trace) = trace {
            traces.push((epoch, trace));
        }
        if stop || interrupt::requested() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    };
    let mut gradient_stop = None;
    let outcome = match (program.train.tolerance.value, train_data) {
        (Some(tolerance), None) => {
            tolerance::minimize(program, &graphs.grad, &native.train, &config, initial, tolerance, on_epoch).map(
                |(outcome, stop)| {
                    gradient_stop = Some(stop);
                    outcome
                },
            )
        }
        _ => {
            // A long epoch moves the bar from inside (chunked kernel calls);
            // without a bar each epoch stays one call.
            let mut report = |epoch: u64, rows: usize| {
                if let Some(bar) = &bar {
                    bar.rows_done(epoch, rows);
                }
            };
            let progress = bar.as_ref().map(|_| train::Progress {
                rows: 8192,
                interval: super::progress::Meter::INTERVAL / 2,
                report: &mut report,
            });
            train::train_with_progress(program, &native.train, train_data, &config, initial, progress, on_epoch)
        }
    };
    let interrupted = interrupt::requested();
    if let (Some(path), Some(text)) = (&args.log, &log) {
        write_atomically(path, text.as_bytes())?;
    }
    if verbose {
        for warning in nnc::runtime::trace::warnings(&traces) {
            eprintln!("warning: {warning}");
        }
    }
    if let (Some(path), Some(text)) = (&args.plot, &log) {
        let steps_per_epoch = train_data.map_or(1, |d| d.rows.div_ceil(batch)) as u64;
        super::plot::write_run_plot(path, &model.path, program, text, &config, initial_step, steps_per_epoch)?;
    }
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(diverged) => {
            if let Some(bar) = &bar {
                bar.finish();
            }
            let mut message = format!("{}: {diverged}", model.path);
            if let Some(path) = &args.save_weights {
                save(path, &model, bound.as_ref(), &diverged.last_good)?;
                message.push_str(&format!(
                    "\n  note: the last good weights (before epoch {}) are saved in {}",
                    diverged.epoch,
                    path.display()
                ));
            }
            return Err(Failure::Diverged(message));
        }
    };
    let mut outcome = outcome;
    let epochs_run = outcome.history.len() as u64;
    let early_stop = stopper.map(|stopper| {
        let (monitor, patience) = (stopper.monitor.name(), stopper.patience);
        let best = stopper.into_best();
        let stopped = train_data.is_some() && epochs_run < epochs && !interrupted;
        let reason = if interrupted {
            format!("interrupted after {}", plural(epochs_run, "epoch"))
        } else if stopped {
            format!(
                "stopped after {}: no improvement in {monitor} for {}",
                plural(epochs_run, "epoch"),
                plural(patience, "epoch")
            )
        } else {
            format!("ran all {}", plural(epochs, "epoch"))
        };
        let json = serde_json::json!({
            "monitor": monitor,
            "stopped": stopped,
            "epochs_run": epochs_run,
            "best_epoch": best.as_ref().map(|b| b.epoch),
            "best_value": finite_or_null(best.as_ref().map(|b| b.value)),
        });
        let line = match best {
            Some(best) => {
                let text = format!(
                    "{reason}; best epoch {} ({monitor} {}), whose weights are kept",
                    best.epoch,
                    fixed(best.value, 6)
                );
                outcome.params = best.params;
                text
            }
            None => format!("{reason}; {monitor} was never finite, so the last weights are kept"),
        };
        (line, json)
    });
    if let (Some((line, _)), true) = (&early_stop, verbose) {
        eprintln!("  {line}");
    }
    if let (Some(stop), true) = (&gradient_stop, verbose) {
        eprintln!("  {}", stop.describe(program));
    }
    // The final evaluation can take as long as an epoch: say so while it runs.
    let evaluated = plan.evaluated_rows.max(1);
    match &bar {
        Some(bar) => bar.say(format!("evaluating the final weights on {evaluated} rows")),
        None if verbose => eprintln!("  evaluating the final weights on {evaluated} rows"),
        None => {}
    }
    let start = Instant::now();
    let final_eval = train::evaluate(program, &native.eval, train_data, &outcome.params, transforms);
    let val_eval = validation.map(|v| train::evaluate(program, &native.eval, Some(v), &outcome.params, transforms));
    evaluate_time += start.elapsed();
    if let Some(bar) = &bar {
        bar.finish();
    }
    let evaluate_ms = evaluate_time.as_secs_f64() * 1e3;
    if let Some(path) = &args.save_weights {
        save(path, &model, bound.as_ref(), &outcome.params)?;
    }
    if let Some(path) = &args.report {
        let steps_per_epoch = train_data.map_or(1, |d| d.rows.div_ceil(batch)) as u64;
        let curves = match &log {
            Some(text) => {
                Some(super::plot::run_curves(&model.path, program, text, &config, initial_step, steps_per_epoch)?)
            }
            None => None,
        };
        let mut metrics =
            vec![("final loss".to_string(), format!("{:.6}", final_eval.metrics.loss.unwrap_or(f64::NAN)))];
        for (name, value) in metric_columns(program).iter().zip(metric_values(program, &final_eval.metrics)) {
            metrics.push((name.to_string(), value.map_or("n/a".into(), |v| format!("{v:.4}"))));
        }
        if let Some(v) = &val_eval {
            metrics.push(("validation loss".into(), format!("{:.6}", v.metrics.loss.unwrap_or(f64::NAN))));
            for (name, value) in metric_columns(program).iter().zip(metric_values(program, &v.metrics)) {
                metrics.push((format!("validation {name}"), value.map_or("n/a".into(), |v| format!("{v:.4}"))));
            }
        }
        let inputs = super::report::Inputs { model: &model, bound: bound.as_ref(), echoed: &echoed, metrics, curves };
        super::report::write(path, &inputs, &outcome.params, &final_eval)?;
    }
    let scalars: Vec<(String, f32)> = program
        .graph
        .params
        .iter()
        .enumerate()
        .filter(|(_, p)| p.shape.is_scalar() && p.layer.is_none())
        .map(|(i, p)| (p.name.clone(), outcome.params.get(i)[0]))
        .collect();
    let total_ms = pipeline::ms(total);
    let samples_per_second = outcome.samples as f64 / outcome.train_seconds.max(1e-9);
    let final_metrics = &final_eval.metrics;
    // The class names, when the target's labels were names (`Adelie`).
    let class_names: Option<Vec<String>> = bound.as_ref().and_then(|b| super::class_names(program, &b.transforms));
    if args.json {
        let params: serde_json::Map<String, serde_json::Value> =
            scalars.iter().map(|(n, v)| (n.clone(), serde_json::json!(*v as f64))).collect();
        let json = serde_json::json!({
            "model": model.path,
            "data": args.data.as_ref().map(|p| p.display().to_string()),
            "final_loss": finite_or_null(final_metrics.loss),
            "accuracy": finite_or_null(final_metrics.accuracy),
            "classes": class_names,
            "loss_weights": program.loss_weights.as_ref().map(|w| serde_json::json!({
                "argument": w.kind.argument(), "balanced": w.balanced, "values": w.values,
            })),
            "metrics": json_metrics(program, final_metrics),
            "validation": val_eval.as_ref().map(|v| json_metrics(program, &v.metrics)),
            "params": params,
            "epochs": train_data.map(|_| epochs),
            "steps": if train_data.is_some() { None } else { Some(epochs) },
            "batch": train_data.map(|_| batch),
            "rows": train_data.map(|d| d.rows),
            "optimizer": program.train.optimizer.value.name(),
            "learning_rate": config.learning_rate as f64,
            "step": outcome.params.state.step,
            "seed": config.seed,
            "shuffle": config.shuffle,
            "threads": threads,
            "samples": outcome.samples,
            "samples_per_second": samples_per_second,
            "early_stop": early_stop.as_ref().map(|(_, json)| json),
            "trace": args.trace_grads.then(|| trace_json(&traces)),
            "interrupted": interrupted,
            "gradient": gradient_stop.as_ref().map(|g| serde_json::json!({
                "steps": g.steps, "norm": g.norm, "tolerance": g.tolerance, "reached": g.reached,
            })),
            "evaluations": match native.eval {
                train::Evaluator::Compiled(_) => "kernel",
                train::Evaluator::Interpreted(_) => "interpreter",
            },
            "timings_ms": {
                "parse": model.front.parse_ms,
                "check": model.front.check_ms,
                "grad": graphs.grad_ms,
                "compile": native.compile_ms,
                "train": outcome.train_seconds * 1e3,
                "evaluate": evaluate_ms,
                "total": total_ms,
            },
            "team": native.train.team_share().map(|(threads, share)| serde_json::json!({
                "threads": threads, "share_of_batches": share,
            })),
        });
        println!("{json}");
    } else {
        let scope = match (train_data.is_some(), early_stop.is_some()) {
            (true, false) => "whole training set, final weights",
            (true, true) => "whole training set, the best epoch's weights",
            (false, _) => "at the final params",
        };
        println!("final loss {} ({scope})", fixed(final_metrics.loss.unwrap_or(f64::NAN), 6));
        if let (Some(accuracy), Some(d)) = (final_metrics.accuracy, train_data) {
            // Several yes/no labels: the share of right answers over all of them.
            let (per_row, what) = match program.task {
                Task::Binary { labels } if labels > 1 => (labels as usize, "answers"),
                _ => (1, "rows"),
            };
            let total = d.rows * per_row;
            let correct = (accuracy * total as f64).round() as usize;
            println!("accuracy   {accuracy:.4} ({correct} of {total} {what})");
            if let (Some(names), Task::Classification { classes }) = (&class_names, program.task)
                && let Some(labels) = nnc::runtime::metrics::labels(program, d)
            {
                // Each class's share of its own rows predicted right (recall), by name.
                let k = classes as usize;
                let pairs = nnc::runtime::metrics::class_pairs(&labels, &final_eval.predictions, k, d.rows);
                let confusion = nnc::runtime::metrics::Confusion::new(k, pairs);
                let parts: Vec<String> = confusion
                    .scores()
                    .iter()
                    .zip(names)
                    .map(|(score, name)| format!("{name} {:.4} ({} rows)", score.recall, score.support))
                    .collect();
                println!("per class  {}", parts.join(", "));
            }
        }
        if let (Some(mse), Some(mae)) = (final_metrics.mse, final_metrics.mae) {
            let r2 = final_metrics.r2.map_or("n/a".to_string(), |r| fixed(r, 4));
            println!("mse {}  mae {}  r2 {r2} (in the target's units)", fixed(mse, 6), fixed(mae, 6));
        }
        if let Some(v) = &val_eval {
            println!("validation{}", short_metrics(program, &v.metrics, ""));
        }
        for (name, value) in &scalars {
            println!("{name} = {value}");
        }
        if verbose {
            // Which batches ran on a team of threads (only while it was faster).
            let team = native.train.team_share().map_or(String::new(), |(threads, share)| {
                format!("; {threads} threads on {:.0}% of batches", share * 100.0)
            });
            eprintln!(
                "  trained {} in {:.1} ms ({}{team}); evaluated in {evaluate_ms:.1} ms; total {total_ms:.1} ms",
                plural(epochs_run, unit),
                outcome.train_seconds * 1e3,
                rate(samples_per_second, if train_data.is_some() { "rows" } else { "steps" }),
            );
        }
    }
    let _ = std::io::stdout().flush();
    if interrupted {
        let kept = if early_stop.is_some() { "the best epoch's weights" } else { "the last completed epoch's weights" };
        let mut written: Vec<String> = Vec::new();
        for (path, what) in [(&args.save_weights, "weights"), (&args.log, "log"), (&args.plot, "plot")] {
            if let Some(path) = path {
                written.push(format!("{what} {}", path.display()));
            }
        }
        let written = if written.is_empty() { String::new() } else { format!("; written: {}", written.join(", ")) };
        let message = format!("interrupted after {}: {kept} are reported{written}\n", plural(epochs_run, unit));
        return Err(Failure::Interrupted(if args.quiet { String::new() } else { message }));
    }
    Ok(())
}

/// `--trace-grads` in `--json`: one object per epoch, each layer's norms.
fn trace_json(traces: &[(u64, Vec<nnc::runtime::trace::LayerTrace>)]) -> serde_json::Value {
    let epochs: Vec<serde_json::Value> = traces
        .iter()
        .map(|(epoch, layers)| {
            let layers: serde_json::Map<String, serde_json::Value> = layers
                .iter()
                .map(|t| {
                    let stats = serde_json::json!({
                        "grad_norm": finite_or_null(Some(t.grad_norm)),
                        "weight_norm": finite_or_null(Some(t.weight_norm)),
                        "update_ratio": finite_or_null(Some(t.update_ratio)),
                    });
                    (t.layer.clone(), stats)
                })
                .collect();
            serde_json::json!({ "epoch": epoch, "layers": layers })
        })
        .collect();
    serde_json::Value::Array(epochs)
}
