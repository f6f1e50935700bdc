//! The `nnc` command line: flags in, files read, results rendered.
//!
//! Everything else lives in the library and is reached through
//! [`nnc::pipeline`]. Exit codes: 0 success, 1 the input is wrong (model,
//! data or files), 2 usage (flags), 3 training diverged.

use clap::{Parser, Subcommand, ValueEnum};
use nnc::codegen::Options;
use nnc::diag::{self, Diagnostic, Style};
use nnc::ir::program::{Program, Task};
use nnc::pipeline::{self, Frontend};
use nnc::runtime::data::{self, Dataset};
use nnc::runtime::train::{self, Params, RunConfig};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "nnc", version, about = "Compile and train neural networks described in .nn files")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model and report its final loss (and accuracy, for classification)
    Run(RunArgs),
    /// Print one compiler stage as text
    Ir {
        /// The model file
        model: PathBuf,
        /// Which stage to print
        #[arg(long, value_enum, default_value = "graph")]
        stage: Stage,
        /// Which kernel, for the `kernel`, `clif` and `asm` stages
        #[arg(long, value_enum, default_value = "train")]
        kernel: KernelChoice,
        /// Batch size the kernels are sized for (default: the file's setting)
        #[arg(long)]
        batch: Option<u64>,
    },
    /// Print the derivative of the loss with respect to every parameter
    Grad {
        /// The model file
        model: PathBuf,
    },
    /// Parse and check a model (and bind its data file) without training
    Check {
        /// The model file
        model: PathBuf,
        /// A CSV file to bind against the model's data block
        data: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
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
    /// Seed for the initial weights (overrides the file)
    #[arg(long)]
    seed: Option<u64>,
    /// Write the loss of every epoch (step) to this CSV file
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Print one JSON object with the results on stdout
    #[arg(long)]
    json: bool,
    /// Print nothing on stderr
    #[arg(long)]
    quiet: bool,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Stage {
    /// The syntax tree, with byte spans
    Ast,
    /// The checked graph IR (forward pass and loss)
    Graph,
    /// The graph with gradients and the update, as autodiff built it
    Grad,
    /// The training graph after simplification
    Opt,
    /// The fused loop nests
    Kernel,
    /// Cranelift IR
    Clif,
    /// Machine code
    Asm,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum KernelChoice {
    Train,
    Eval,
}

/// Why a command failed; each maps to an exit code.
enum Failure {
    /// The input is wrong: already rendered.
    Input(String),
    Usage(String),
    Diverged(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(&args),
        Command::Ir { model, stage, kernel, batch } => ir(&model, stage, kernel, batch),
        Command::Grad { model } => grad(&model),
        Command::Check { model, data } => check(&model, data.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let (text, code) = match failure {
                Failure::Input(text) => (text, 1),
                Failure::Usage(text) => (format!("error: {text}\n"), 2),
                Failure::Diverged(text) => (format!("error: {text}\n"), 3),
            };
            eprint!("{text}");
            if !text.ends_with('\n') {
                eprintln!();
            }
            ExitCode::from(code)
        }
    }
}

fn style() -> Style {
    if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() { Style::Color } else { Style::Plain }
}

fn read_model(path: &Path) -> Result<(String, Frontend), Failure> {
    let text =
        std::fs::read(path).map_err(|e| Failure::Input(format!("error: cannot read {}: {e}\n", path.display())))?;
    let text = String::from_utf8(text)
        .map_err(|e| Failure::Input(format!("error: {} is not UTF-8 text: {e}\n", path.display())))?;
    let name = path.display().to_string();
    match pipeline::frontend(&text) {
        Ok(front) => Ok((text, front)),
        Err(diags) => Err(model_errors(&diags, &name, &text)),
    }
}

fn model_errors(diags: &[Diagnostic], name: &str, text: &str) -> Failure {
    let mut out = diag::render(diags, name, text, style());
    let n = diags.len();
    out.push_str(&format!("{n} error{} in {name}\n", if n == 1 { "" } else { "s" }));
    Failure::Input(out)
}

fn load_data(program: &Program, model: &Path, data: Option<&Path>) -> Result<Option<Dataset>, Failure> {
    match (program.has_data(), data) {
        (true, Some(path)) => data::load(path, program).map(Some).map_err(|e| Failure::Input(format!("error: {e}\n"))),
        (true, None) => Err(Failure::Usage(format!(
            "{} has a data block: give a CSV file, e.g. `nnc run {} data.csv`",
            model.display(),
            model.display()
        ))),
        (false, Some(path)) => Err(Failure::Usage(format!(
            "{} has no data block, so the data file {} would be ignored",
            model.display(),
            path.display()
        ))),
        (false, None) => Ok(None),
    }
}

/// The file's settings with flags on top; each marked as default or not.
struct Settings {
    config: RunConfig,
    lines: Vec<(&'static str, String)>,
}

fn settings(program: &Program, args: &RunArgs) -> Result<Settings, Failure> {
    let train = &program.train;
    let has_data = program.has_data();
    if has_data && args.steps.is_some() {
        return Err(Failure::Usage("--steps is for models without data; use --epochs".into()));
    }
    if !has_data && args.epochs.is_some() {
        return Err(Failure::Usage("this model has no data: use --steps instead of --epochs".into()));
    }
    if !has_data && args.batch.is_some() {
        return Err(Failure::Usage("--batch needs a model with a data block".into()));
    }
    let mark = |is_default: bool, flag: bool| {
        if flag {
            " (flag)"
        } else if is_default {
            " (default)"
        } else {
            ""
        }
    };
    let epochs = args.epochs.or(args.steps).unwrap_or(train.epochs.value);
    let epochs_mark = mark(train.epochs.is_default, args.epochs.or(args.steps).is_some());
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
    let mut lines =
        vec![("optimizer", format!("sgd, lr {lr}{}", mark(train.learning_rate.is_default, args.lr.is_some())))];
    if has_data {
        lines.push(("epochs", format!("{epochs}{epochs_mark}")));
        lines.push(("batch", format!("{batch}{}", mark(train.batch.is_default, args.batch.is_some()))));
    } else {
        lines.push(("steps", format!("{epochs}{epochs_mark}")));
    }
    lines.push(("seed", format!("{seed}{}", mark(train.seed.is_default, args.seed.is_some()))));
    let config = RunConfig { epochs, batch: batch.min(1 << 24) as usize, learning_rate: lr as f32, seed };
    Ok(Settings { config, lines })
}

fn run(args: &RunArgs) -> Result<(), Failure> {
    let total = Instant::now();
    let (_, front) = read_model(&args.model)?;
    let program = &front.program;
    let data = load_data(program, &args.model, args.data.as_deref())?;
    let settings = settings(program, args)?;
    let config = settings.config;
    let graphs = pipeline::graphs(program);
    let rows = data.as_ref().map_or(1, |d| d.rows);
    let batch = if data.is_some() { config.batch.min(rows) } else { 1 };
    let kernels = pipeline::kernels(&graphs, batch, rows).map_err(internal)?;
    let native = pipeline::compile(program, &kernels, Options::default()).map_err(internal)?;

    let verbose = !args.quiet;
    if verbose {
        let mut lines = vec![("model", args.model.display().to_string())];
        if let (Some(d), Some(path)) = (&data, &args.data) {
            lines.push(("data", format!("{} ({} rows)", path.display(), d.rows)));
            lines.push(("columns", data::binding_summary(&program.data)));
        }
        lines.extend(settings.lines.iter().map(|(k, v)| (*k, v.clone())));
        lines.push(("compiled", format!("{:.2} ms (train + eval kernels)", native.compile_ms)));
        for (key, value) in lines {
            eprintln!("  {key:<10} {value}");
        }
    }
    let epochs = config.epochs;
    let every = epochs.div_ceil(20).max(1);
    let unit = if data.is_some() { "epoch" } else { "step" };
    let width = epochs.to_string().len();
    let initial = Params::init(program, config.seed);
    let outcome = train::train(program, &native.train, &native.eval, data.as_ref(), &config, initial, |epoch, loss| {
        if verbose && (epoch % every == 0 || epoch == 1 || epoch == epochs) {
            eprintln!("{unit} {epoch:>width$}/{epochs}  loss {loss:.6}");
        }
    });
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(diverged) => {
            return Err(Failure::Diverged(format!("{}: {diverged}", args.model.display())));
        }
    };
    if let Some(path) = &args.log {
        let mut text = format!("{unit},loss\n");
        for (i, loss) in outcome.history.iter().enumerate() {
            text.push_str(&format!("{},{loss}\n", i + 1));
        }
        write_atomically(path, text.as_bytes())?;
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
    if args.json {
        let params: serde_json::Map<String, serde_json::Value> =
            scalars.iter().map(|(n, v)| (n.clone(), serde_json::json!(*v as f64))).collect();
        let json = serde_json::json!({
            "model": args.model.display().to_string(),
            "data": args.data.as_ref().map(|p| p.display().to_string()),
            "final_loss": finite_or_null(outcome.final_loss),
            "accuracy": outcome.accuracy,
            "params": params,
            "epochs": if data.is_some() { Some(epochs) } else { None },
            "steps": if data.is_some() { None } else { Some(epochs) },
            "batch": if data.is_some() { Some(batch) } else { None },
            "learning_rate": config.learning_rate as f64,
            "seed": config.seed,
            "samples": outcome.samples,
            "samples_per_second": samples_per_second,
            "timings_ms": {
                "parse": front.parse_ms,
                "check": front.check_ms,
                "grad": graphs.grad_ms,
                "compile": native.compile_ms,
                "train": outcome.train_seconds * 1e3,
                "total": total_ms,
            },
        });
        println!("{json}");
    } else {
        let scope = if data.is_some() { "whole training set, final weights" } else { "at the final params" };
        println!("final loss {:.6} ({scope})", outcome.final_loss);
        if let (Some(accuracy), Some(d)) = (outcome.accuracy, &data) {
            let correct = (accuracy * d.rows as f64).round() as usize;
            println!("accuracy   {accuracy:.4} ({correct} of {} rows)", d.rows);
        }
        for (name, value) in &scalars {
            println!("{name} = {value}");
        }
        if verbose {
            eprintln!(
                "  trained {} {unit}s in {:.1} ms ({:.0} samples/s); total {:.1} ms",
                epochs,
                outcome.train_seconds * 1e3,
                samples_per_second,
                total_ms
            );
        }
    }
    let _ = std::io::stdout().flush();
    Ok(())
}

fn finite_or_null(x: f64) -> serde_json::Value {
    if x.is_finite() { serde_json::json!(x) } else { serde_json::Value::Null }
}

/// Write to `path.tmp` and rename, so no half-written file is ever visible.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let fail = |e: std::io::Error| Failure::Input(format!("error: cannot write {}: {e}\n", path.display()));
    let file_name = path.file_name().ok_or_else(|| fail(std::io::Error::other("not a file name")))?;
    let tmp = path.with_file_name(format!(".{}.tmp{}", file_name.to_string_lossy(), std::process::id()));
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(fail)
}

fn internal(message: String) -> Failure {
    Failure::Input(format!(
        "error: internal compiler error: {message}\n  (this is a bug in nnc; please report it with the model file)\n"
    ))
}

fn ir(model: &Path, stage: Stage, which: KernelChoice, batch: Option<u64>) -> Result<(), Failure> {
    let (_, front) = read_model(model)?;
    let program = &front.program;
    let text = match stage {
        Stage::Ast => nnc::syntax::print::ast(&front.ast),
        Stage::Graph => nnc::ir::print::graph(&program.graph),
        Stage::Grad | Stage::Opt | Stage::Kernel | Stage::Clif | Stage::Asm => {
            let graphs = pipeline::graphs(program);
            let batch = if program.has_data() { batch.unwrap_or(program.train.batch.value).max(1) as usize } else { 1 };
            match stage {
                Stage::Grad => nnc::ir::print::graph(&graphs.grad),
                Stage::Opt => nnc::ir::print::graph(&graphs.train),
                _ => {
                    // Without data the evaluation is sized like a training batch.
                    let kernels = pipeline::kernels(&graphs, batch, batch).map_err(internal)?;
                    let kernel = if which == KernelChoice::Train { &kernels.0 } else { &kernels.1 };
                    if stage == Stage::Kernel {
                        nnc::kernel::print(kernel)
                    } else {
                        let options = Options { disassemble: stage == Stage::Asm, ..Options::default() };
                        let shapes: Vec<_> = program.graph.params.iter().map(|p| p.shape).collect();
                        let compiled = nnc::codegen::compile(kernel, &shapes, options).map_err(internal)?;
                        if stage == Stage::Clif {
                            compiled.clif.clone()
                        } else {
                            compiled.asm.clone().unwrap_or_default()
                        }
                    }
                }
            }
        }
    };
    print!("{text}");
    Ok(())
}

fn grad(model: &Path) -> Result<(), Failure> {
    let (_, front) = read_model(model)?;
    print!("{}", pipeline::derivatives(&front.program));
    Ok(())
}

fn check(model: &Path, data: Option<&Path>) -> Result<(), Failure> {
    let (_, front) = read_model(model)?;
    let program = &front.program;
    let n_params: usize = program.graph.params.iter().map(|p| p.shape.len(1)).sum();
    let task = match program.task {
        Task::Minimize => "minimisation (no data)".to_string(),
        Task::Regression => "regression".to_string(),
        Task::Classification { classes } => format!("classification into {classes} classes"),
    };
    println!("{}: ok — {task}, {} layer(s), {n_params} trainable number(s)", model.display(), program.layers.len());
    if let Some(path) = data {
        let dataset = load_data(program, model, Some(path))?.expect("data was given");
        println!("{}: ok — {} rows; {}", path.display(), dataset.rows, data::binding_summary(&program.data));
    } else if program.has_data() {
        println!("columns: {}", data::binding_summary(&program.data));
    }
    Ok(())
}
