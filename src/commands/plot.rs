//! `nnc plot`: training curves from a `--log` CSV, or for a model without
//! data the article's figure — the loss over its parameter(s) with the
//! gradient-descent path.

use super::draw::{picture_format, write_picture};
use super::{Failure, check_not_an_input, check_output, read_model};
use nnc::ir::Init;
use nnc::picture::chart::{COLOURS, Panel, Series};
use nnc::picture::{curves, descent};
use nnc::pipeline;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct PlotArgs {
    /// A log written by `nnc run --log` (CSV), or a model without data (.nn)
    input: PathBuf,
    /// The picture to write: `.svg` or `.png`
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Steps of gradient descent to draw, for a model (overrides the file)
    #[arg(long)]
    steps: Option<u64>,
    /// Learning rate, for a model (overrides the file)
    #[arg(long)]
    lr: Option<f64>,
}

/// Logs larger than this are refused unread.
const MAX_LOG_BYTES: u64 = 256 << 20;

pub fn plot(args: &PlotArgs) -> Result<(), Failure> {
    check_not_an_input(&args.output, "-o", &[(args.input.as_path(), "input file")])?;
    let format = picture_format(&args.output, "-o")?;
    check_output(&args.output, "picture")?;
    let is_model = args.input.extension().is_some_and(|e| e == "nn");
    let svg = if is_model {
        model_figure(args)?
    } else {
        if args.steps.is_some() || args.lr.is_some() {
            return Err(Failure::Usage("--steps and --lr are for a model file (.nn), not a log".into()));
        }
        log_figure(&args.input)?
    };
    write_picture(&args.output, format, &svg)
}

fn log_figure(path: &Path) -> Result<String, Failure> {
    let name = path.display().to_string();
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_LOG_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| Failure::input(format!("cannot read {name}: {e}")))?;
    if bytes.len() as u64 > MAX_LOG_BYTES {
        return Err(Failure::input(format!("{name} is larger than {} MiB: not a log?", MAX_LOG_BYTES >> 20)));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| Failure::input(format!("{name}: not UTF-8 text; expected a CSV log")))?;
    let log = curves::parse(&name, &text).map_err(Failure::input)?;
    Ok(curves::render(&log, &name, Vec::new()))
}

fn model_figure(args: &PlotArgs) -> Result<String, Failure> {
    let model = read_model(&args.input)?;
    let program = &model.front.program;
    if program.has_data() {
        return Err(Failure::Usage(format!(
            "{0} trains on data: plot its curves with `nnc run {0} DATA --plot curves.svg`, or `nnc plot` a `--log` CSV",
            model.path
        )));
    }
    let params = &program.graph.params;
    if params.is_empty() || params.len() > 2 || params.iter().any(|p| !p.shape.is_scalar()) {
        return Err(Failure::input(format!(
            "{}: `nnc plot` draws a model with one or two scalar parameters; this one has {}",
            model.path,
            params.iter().map(|p| format!("{} {}", p.name, p.shape)).collect::<Vec<_>>().join(", ")
        )));
    }
    let steps = args.steps.unwrap_or(program.train.epochs.value);
    if steps == 0 || steps > 1_000_000 {
        return Err(Failure::Usage(format!("--steps must be from 1 to 1000000, got {steps}")));
    }
    let lr = args.lr.unwrap_or(program.train.learning_rate.value);
    if !(lr > 0.0 && lr.is_finite()) {
        return Err(Failure::Usage(format!("--lr must be a positive number, got {lr}")));
    }
    let start: Vec<f64> = params
        .iter()
        .map(|p| match p.init {
            Init::Value(v) => v,
            Init::XavierUniform => 0.0,
        })
        .collect();
    let graphs = pipeline::graphs(program);
    let path = descent::descend(program, &graphs, &start, steps, lr);
    let printed = pipeline::derivatives(program);
    let formulas: Vec<String> = printed
        .lines()
        .filter(|l| l.starts_with("loss = ") || l.starts_with("d loss/d "))
        .map(str::to_string)
        .collect();
    let caption = descent::Caption {
        title: format!("{}: gradient descent", model.path),
        formulas,
        settings: format!("{}, {steps} steps", program.train.optimizer.value.describe(&lr.to_string())),
    };
    Ok(if params.len() == 1 {
        descent::one_parameter(program, &graphs, &path, &caption)
    } else {
        descent::two_parameters(program, &path, &caption)
    })
}

/// `nnc run --plot`: the run's log rows as curves, with the learning rate
/// of each epoch's (step's) first step from the model's schedule.
pub fn write_run_plot(
    path: &Path,
    model_path: &str,
    program: &nnc::ir::program::Program,
    log_text: &str,
    config: &nnc::runtime::train::RunConfig,
    initial_step: u64,
    steps_per_epoch: u64,
) -> Result<(), Failure> {
    let format = picture_format(path, "--plot")?;
    let svg = run_curves(model_path, program, log_text, config, initial_step, steps_per_epoch)?;
    write_picture(path, format, &svg)
}

/// The curves of `nnc run --plot` (and of the report) as SVG.
pub fn run_curves(
    model_path: &str,
    program: &nnc::ir::program::Program,
    log_text: &str,
    config: &nnc::runtime::train::RunConfig,
    initial_step: u64,
    steps_per_epoch: u64,
) -> Result<String, Failure> {
    let log = curves::parse("the run's log", log_text).map_err(super::internal)?;
    let lr = config.learning_rate as f64;
    let last_step = initial_step + config.epochs * steps_per_epoch;
    let schedule = program.train.schedule.value.resolved(last_step);
    let points: Vec<(f64, f64)> = log
        .steps
        .iter()
        .map(|&epoch| {
            let t = initial_step + (epoch as u64).saturating_sub(1) * steps_per_epoch + 1;
            (epoch, lr * schedule.factor(lr, t))
        })
        .collect();
    let rate = Panel {
        title: format!("learning rate: {}", schedule.describe()),
        x_label: log.unit.clone(),
        y_label: "lr".into(),
        series: vec![Series::line("lr", points, COLOURS[2])],
        ..Panel::default()
    };
    Ok(curves::render(&log, model_path, vec![rate]))
}
