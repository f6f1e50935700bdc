//! `nnc export`: a trained model as ONNX, for serving.

use super::{Failure, check_not_an_input, check_output, model_errors, model_for_weights, write_atomically};
use nnc::export;
use nnc::ir::program::Task;
use nnc::runtime::weights;
use prost::Message;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The model file (default: the source the weights file embeds)
    model: Option<PathBuf>,
    /// Trained weights, as saved by `nnc run --save-weights`
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// Write the inference graph as an ONNX model (opset 17) to this file
    #[arg(long, value_name = "FILE")]
    onnx: Option<PathBuf>,
    /// Print nothing on stderr
    #[arg(long)]
    quiet: bool,
}

pub fn export(args: &ExportArgs) -> Result<(), Failure> {
    if let Some(out) = &args.onnx {
        let Some(weights_path) = &args.weights else {
            return Err(Failure::Usage("--onnx needs --weights FILE: the trained weights to put in the model".into()));
        };
        let model = model_for_weights(args.model.as_deref(), weights_path, args.quiet)?;
        let program = &model.front.program;
        if !program.has_data() {
            return Err(Failure::Usage(format!("{} has no data block: there is no model to export", model.path)));
        }
        let mut inputs = vec![(weights_path.as_path(), "weights file")];
        inputs.extend(args.model.as_deref().map(|m| (m, "model file")));
        check_not_an_input(out, "--onnx", &inputs)?;
        check_output(out, "ONNX file")?;
        let weights_name = weights_path.display().to_string();
        let (params, metadata) = weights::load(weights_path, program).map_err(Failure::input)?;
        let source_hash = weights::source_hash(&model.text);
        let transforms = weights::saved_transforms(program, &metadata, &weights_name).map_err(Failure::input)?;
        let mut props = vec![
            ("nnc.model".to_string(), metadata.get("nnc.model").unwrap_or(&model.path).clone()),
            (weights::SOURCE_HASH_KEY.to_string(), source_hash),
            ("nnc.source".to_string(), model.text.clone()),
        ];
        if let Some(columns) = metadata.get(weights::COLUMNS_KEY) {
            props.push((weights::COLUMNS_KEY.to_string(), columns.clone()));
        }
        if let Task::Classification { classes } = program.task {
            let names: Vec<String> = (0..classes).map(|k| k.to_string()).collect();
            props.push(("nnc.classes".to_string(), serde_json::to_string(&names).expect("strings")));
        }
        let name = match &args.model {
            Some(path) => path.file_stem().map_or("model".into(), |s| s.to_string_lossy().into_owned()),
            None => metadata.get("nnc.model").map_or("model".into(), |m| {
                std::path::Path::new(m).file_stem().map_or("model".into(), |s| s.to_string_lossy().into_owned())
            }),
        };
        let proto = export::onnx::onnx(program, &params, &transforms, &name, &props)
            .map_err(|diags| model_errors(&diags, &model.path, &model.text))?;
        write_atomically(out, &proto.encode_to_vec())?;
        if !args.quiet {
            eprintln!(
                "wrote {} ({} nodes, opset {})",
                out.display(),
                proto.graph.map_or(0, |g| g.node.len()),
                export::onnx::OPSET
            );
        }
    }
    if args.onnx.is_none() {
        return Err(Failure::Usage("say what to export: --onnx FILE".into()));
    }
    Ok(())
}
