//! `nnc export`: a trained model as ONNX (for serving), or as a PyTorch
//! training project (for `torchrun` beyond one machine).

use super::{
    Failure, Model, check_not_an_input, check_output, model_errors, model_for_weights, read_model, write_atomically,
};
use nnc::export;
use nnc::ir::program::Task;
use nnc::runtime::train::Params;
use nnc::runtime::weights;
use prost::Message;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The model file (default: the source the weights file embeds)
    model: Option<PathBuf>,
    /// Trained weights, as saved by `nnc run --save-weights` (for --torch: the
    /// initial weights; default: nnc's own initialisation from the seed)
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// Write the inference graph as an ONNX model (opset 17) to this file
    #[arg(long, value_name = "FILE", required_unless_present = "torch")]
    onnx: Option<PathBuf>,
    /// Write a PyTorch training project (train.py, initial.safetensors, README.md) into this directory
    #[arg(long, value_name = "DIR")]
    torch: Option<PathBuf>,
    /// Print nothing on stderr
    #[arg(long)]
    quiet: bool,
}

pub fn export(args: &ExportArgs) -> Result<(), Failure> {
    let model = match (&args.model, &args.weights) {
        (model, Some(weights_path)) => model_for_weights(model.as_deref(), weights_path, args.quiet)?,
        (Some(path), None) => read_model(path)?,
        (None, None) => return Err(Failure::Usage("give the model file, or --weights FILE that embeds it".into())),
    };
    let program = &model.front.program;
    if !program.has_data() {
        return Err(Failure::Usage(format!("{} has no data block: there is no model to export", model.path)));
    }
    let mut inputs: Vec<(&Path, &str)> = Vec::new();
    inputs.extend(args.weights.as_deref().map(|w| (w, "weights file")));
    inputs.extend(args.model.as_deref().map(|m| (m, "model file")));
    if let Some(out) = &args.onnx {
        check_not_an_input(out, "--onnx", &inputs)?;
        check_output(out, "ONNX file")?;
    }
    let torch_files =
        args.torch.as_ref().map(|dir| ["train.py", "initial.safetensors", "README.md"].map(|f| dir.join(f)));
    if let (Some(dir), Some(files)) = (&args.torch, &torch_files) {
        if dir.exists() && !dir.is_dir() {
            return Err(Failure::input(format!("cannot write {}: it is not a directory", dir.display())));
        }
        std::fs::create_dir_all(dir).map_err(|e| Failure::input(format!("cannot create {}: {e}", dir.display())))?;
        for file in files {
            check_not_an_input(file, "--torch", &inputs)?;
            check_output(file, "file")?;
        }
    }
    let loaded = match &args.weights {
        Some(path) => Some(weights::load(path, program).map_err(Failure::input)?),
        None => None,
    };
    if let Some(out) = &args.onnx {
        let Some((params, metadata)) = &loaded else {
            return Err(Failure::Usage("--onnx needs --weights FILE: the trained weights to put in the model".into()));
        };
        let weights_name = args.weights.as_ref().expect("loaded").display().to_string();
        onnx(args, &model, params, metadata, &weights_name, out)?;
    }
    if let Some(files) = &torch_files {
        let params = match &loaded {
            Some((params, _)) => params.clone(),
            None => Params::init(program, program.train.seed.value),
        };
        torch(&model, &params, files, args.quiet)?;
    }
    Ok(())
}

fn onnx(
    args: &ExportArgs,
    model: &Model,
    params: &Params,
    metadata: &BTreeMap<String, String>,
    weights_name: &str,
    out: &Path,
) -> Result<(), Failure> {
    let program = &model.front.program;
    let transforms = weights::saved_transforms(program, metadata, weights_name).map_err(Failure::input)?;
    let mut props = vec![
        ("nnc.model".to_string(), metadata.get("nnc.model").unwrap_or(&model.path).clone()),
        (weights::SOURCE_HASH_KEY.to_string(), weights::source_hash(&model.text)),
        (weights::SOURCE_KEY.to_string(), model.text.clone()),
    ];
    if let Some(columns) = metadata.get(weights::COLUMNS_KEY) {
        props.push((weights::COLUMNS_KEY.to_string(), columns.clone()));
    }
    if let Task::Classification { classes } = program.task {
        // The target's categories are the class names (or indices).
        let target = program.data.iter().position(|b| b.is_target).map(|i| &transforms[i].categories);
        let names: Vec<String> = match target {
            Some(names) if names.len() == classes as usize => names.clone(),
            _ => (0..classes).map(|k| k.to_string()).collect(),
        };
        props.push(("nnc.classes".to_string(), serde_json::to_string(&names).expect("strings")));
    }
    let name = Path::new(&props[0].1).file_stem().map_or("model".into(), |s| s.to_string_lossy().into_owned());
    let proto = export::onnx::onnx(program, params, &transforms, &name, &props)
        .map_err(|diags| model_errors(&diags, &model.path, &model.text))?;
    write_atomically(out, &proto.encode_to_vec())?;
    if !args.quiet {
        let nodes = proto.graph.map_or(0, |g| g.node.len());
        eprintln!("wrote {} ({nodes} nodes, opset {})", out.display(), export::onnx::OPSET);
    }
    Ok(())
}

/// `train.py`, the initial weights and the README in the directory.
fn torch(model: &Model, params: &Params, files: &[PathBuf; 3], quiet: bool) -> Result<(), Failure> {
    let program = &model.front.program;
    let source_hash = weights::source_hash(&model.text);
    let script = export::torch::train_script(program, &model.front.ast, &model.path, &model.text, &source_hash)
        .map_err(|diags| model_errors(&diags, &model.path, &model.text))?;
    if export::torch::seeded_validation(program) && !quiet {
        eprintln!(
            "note: train.py holds out the last rows for validation, not nnc's seeded split: write `validation = last({})` in {} for the same rows",
            program.train.validation.value, model.path
        );
    }
    let mut metadata = BTreeMap::new();
    metadata.insert("nnc.model".to_string(), model.path.clone());
    metadata.insert(weights::SOURCE_HASH_KEY.to_string(), source_hash);
    metadata.insert(weights::SOURCE_KEY.to_string(), model.text.clone());
    write_atomically(&files[0], script.as_bytes())?;
    weights::save(&files[1], program, params, &metadata).map_err(Failure::input)?;
    write_atomically(&files[2], export::torch::readme(program, &model.path).as_bytes())?;
    Ok(())
}
