//! `nnc ir`, `nnc grad` and `nnc check`: look at a model without training it.

use super::{Failure, bind_error, internal, read_model};
use crate::{KernelChoice, Stage};
use nnc::codegen::Options;
use nnc::ir::program::Task;
use nnc::pipeline;
use nnc::runtime::data;
use std::path::Path;

pub fn ir(model: &Path, stage: Stage, which: KernelChoice, batch: Option<u64>) -> Result<(), Failure> {
    let model = read_model(model)?;
    let front = &model.front;
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
                    // Without a data file the evaluation is sized like a batch.
                    let kernels = pipeline::kernels(&graphs, batch, batch).map_err(internal)?;
                    let kernel = if which == KernelChoice::Train { &kernels.0 } else { &kernels.1 };
                    if stage == Stage::Kernel {
                        nnc::kernel::print(kernel)
                    } else {
                        let options = Options { listings: true, ..Options::default() };
                        let compiled = pipeline::compile_kernel(program, kernel, options).map_err(internal)?;
                        if stage == Stage::Clif {
                            compiled.clif.clone().unwrap_or_default()
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

pub fn grad(model: &Path) -> Result<(), Failure> {
    let model = read_model(model)?;
    print!("{}", pipeline::derivatives(&model.front.program));
    if model.needs_class_weights() {
        println!(
            "\n(`weights = balanced`: the class weights are counted on the training rows when the model runs; \
             without data they show as 1)"
        );
    }
    Ok(())
}

/// `nnc check`: the model, and DATA bound to it, as text or (`json`) as
/// one JSON object with the time each step took in this process.
pub fn check(path: &Path, data_path: Option<&Path>, options: data::ReadOptions, json: bool) -> Result<(), Failure> {
    let start = std::time::Instant::now();
    let (model, table) = match data_path {
        Some(file) => super::read_model_with_data(path, file, options)?,
        None => (read_model(path)?, None),
    };
    let program = &model.front.program;
    let n_params: usize = program.graph.params.iter().map(|p| p.shape.len(1)).sum();
    let task = match program.task {
        Task::Minimize => "minimisation (no data)".to_string(),
        Task::Regression => "regression".to_string(),
        Task::Classification { classes } => format!("classification into {classes} classes"),
        Task::Binary { labels: 1 } => "binary classification (yes/no)".to_string(),
        Task::Binary { labels } => format!("multi-label classification ({labels} yes/no labels)"),
    };
    if !json {
        println!("{}: ok — {task}, {} layer(s), {n_params} trainable number(s)", model.path, program.layers.len());
    }
    let ms = |since: std::time::Instant| since.elapsed().as_secs_f64() * 1e3;
    let mut result = serde_json::json!({ "model": model.path, "task": task, "layers": program.layers.len(),
                                         "parameters": n_params });
    match (data_path, program.has_data()) {
        (Some(file), true) => {
            let table = match table {
                Some(table) => table,
                None => data::read_file(file, &program.data, options).map_err(|e| bind_error(e, &model))?,
            };
            // The model's text and DATA read; the model's part takes well
            // under a millisecond.
            let load_ms = ms(start);
            let binding = std::time::Instant::now();
            let bound =
                data::prepare::training(program, table, data::Split::NONE, None).map_err(|e| bind_error(e, &model))?;
            let bind_ms = ms(binding);
            let summary = data::binding_summary(program, &bound);
            let mut notes = String::new();
            if bound.report.dropped > 0 {
                notes.push_str(&format!(" ({} dropped for a missing cell)", bound.report.dropped));
            }
            if json {
                result["data"] = serde_json::json!({
                    "file": file.display().to_string(), "rows": bound.train.rows,
                    "dropped": bound.report.dropped, "bindings": summary,
                });
                result["timings_ms"] = serde_json::json!({ "load": load_ms, "bind": bind_ms, "total": ms(start) });
            } else {
                println!("{}: ok — {} rows{notes}; {summary}", file.display(), bound.train.rows);
            }
        }
        (Some(file), false) => {
            return Err(Failure::Usage(format!(
                "{} has no data block, so {} cannot be bound",
                model.path,
                file.display()
            )));
        }
        (None, _) => {}
    }
    if json {
        println!("{result}");
    }
    Ok(())
}
