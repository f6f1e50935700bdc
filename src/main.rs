//! The `nnc` command line: flags in, files read, results rendered.
//!
//! Everything else lives in the library and is reached through
//! [`nnc::pipeline`]; the commands themselves are in `commands/`. Exit codes:
//! 0 success, 1 the input is wrong (model, data or files), 2 usage (flags),
//! 3 training diverged.

mod commands;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "nnc", version, about = "Compile and train neural networks described in .nn files")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model and report its final loss and metrics
    Run(Box<commands::run::RunArgs>),
    /// Predict with trained weights: CSV rows in, predictions out
    Predict(commands::predict::PredictArgs),
    /// Export a trained model: ONNX for serving, or a PyTorch training project
    Export(commands::export::ExportArgs),
    /// Score saved weights on a labelled file: loss, metrics, confusion matrix, per-class report
    Eval(commands::eval::EvalArgs),
    /// Cross-validate: train K models on K folds, each fold's held-out figures and their mean ± std
    Cv(commands::cv::CvArgs),
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
    /// Print the model and the derivative of the loss for every parameter
    Grad {
        /// The model file
        model: PathBuf,
    },
    /// Draw the network as a textbook diagram (SVG or PNG)
    Draw(commands::draw::DrawArgs),
    /// Plot training curves from a --log CSV, or gradient descent on a model without data
    Plot(commands::plot::PlotArgs),
    /// Parse and check a model (and bind its data file) without training
    Check {
        /// The model file
        model: PathBuf,
        /// A CSV file to bind against the model's data block
        data: Option<PathBuf>,
        /// Check the compiled kernel's gradient against central differences on a batch of DATA's rows
        #[arg(long)]
        gradcheck: bool,
        /// Rows of DATA for --gradcheck (default: the file's batch size)
        #[arg(long, requires = "gradcheck")]
        rows: Option<u64>,
        /// Weights to check the gradient at (default: the initial weights)
        #[arg(long, value_name = "FILE", requires = "gradcheck")]
        weights: Option<PathBuf>,
        /// DATA's field delimiter (detected when not given)
        #[arg(long, value_name = "CHAR", value_parser = commands::parse_delimiter)]
        delimiter: Option<u8>,
        /// Threads that parse DATA (default: every core)
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// Print the result as one JSON object: the task, the rows bound
        /// and how long reading and binding DATA took
        #[arg(long, conflicts_with = "gradcheck")]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Stage {
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
pub enum KernelChoice {
    Train,
    Eval,
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, which turns `nnc ir … | head` into a panic in
    // `println!` once `head` has gone. A command-line tool should end
    // quietly instead, as `cat` does: restore the default action.
    // SAFETY: called first thing, before any thread exists; SIG_DFL is a
    // valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => commands::run::run(&args),
        Command::Predict(args) => commands::predict::predict(&args),
        Command::Export(args) => commands::export::export(&args),
        Command::Eval(args) => commands::eval::eval(&args),
        Command::Cv(args) => commands::cv::cv(&args),
        Command::Ir { model, stage, kernel, batch } => commands::inspect::ir(&model, stage, kernel, batch),
        Command::Grad { model } => commands::inspect::grad(&model),
        Command::Draw(args) => commands::draw::draw(&args),
        Command::Plot(args) => commands::plot::plot(&args),
        Command::Check { threads: Some(0), .. } => Err(commands::Failure::Usage("--threads must be at least 1".into())),
        Command::Check { model, data, gradcheck, rows, weights, delimiter, threads, json } => {
            // Both modes read DATA alike.
            let options =
                nnc::runtime::data::ReadOptions { delimiter, targets_optional: false, threads: threads.unwrap_or(0) };
            match gradcheck {
                true => commands::gradcheck::gradcheck(&model, data.as_deref(), rows, weights.as_deref(), options),
                false => commands::inspect::check(&model, data.as_deref(), options, json),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}
