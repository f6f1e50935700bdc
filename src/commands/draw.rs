//! `nnc draw`: the network diagram as SVG or PNG, and what every picture
//! command shares: choosing the format from the output's extension and
//! writing it atomically.

use super::{
    Failure, Model, bind_error, check_not_an_input, check_output, read_model, read_model_with_data, write_atomically,
};
use nnc::ir::program::Program;
use nnc::runtime::{data, weights};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct DrawArgs {
    /// The model file
    model: PathBuf,
    /// A CSV file whose header names the input neurons (optional)
    data: Option<PathBuf>,
    /// Trained weights (safetensors): edges coloured by sign, as wide as their magnitude
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// The picture to write: `.svg`, or `.png` (rendered with the bundled font)
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

/// A picture file's format, from its extension.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Svg,
    Png,
}

/// The format `path` asks for, or a usage error naming `flag`.
pub fn picture_format(path: &Path, flag: &str) -> Result<Format, Failure> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("svg") => Ok(Format::Svg),
        Some("png") => Ok(Format::Png),
        _ => Err(Failure::Usage(format!("{flag} {}: the picture must be a .svg or .png file", path.display()))),
    }
}

/// Write `svg` to `path` as SVG, or rendered as PNG at twice its size.
pub fn write_picture(path: &Path, format: Format, svg: &str) -> Result<(), Failure> {
    match format {
        Format::Svg => write_atomically(path, svg.as_bytes()),
        Format::Png => {
            let bytes = nnc::picture::png(svg, 2.0).map_err(|e| super::internal(format!("rendering PNG: {e}")))?;
            write_atomically(path, &bytes)
        }
    }
}

pub fn draw(args: &DrawArgs) -> Result<(), Failure> {
    let mut inputs: Vec<(&Path, &str)> = vec![(args.model.as_path(), "model file")];
    if let Some(d) = &args.data {
        inputs.push((d.as_path(), "data file"));
    }
    if let Some(w) = &args.weights {
        inputs.push((w.as_path(), "weights file"));
    }
    check_not_an_input(&args.output, "-o", &inputs)?;
    let format = picture_format(&args.output, "-o")?;
    check_output(&args.output, "picture")?;
    let (model, bound) = model_with_data(&args.model, args.data.as_deref(), data::ReadOptions::default())?;
    let program = &model.front.program;
    let labels = bound.as_ref().map(|b| input_labels(program, b));
    let params = match &args.weights {
        Some(path) => Some(weights::load(path, program).map_err(Failure::input)?.0),
        None => None,
    };
    let svg = nnc::picture::diagram::draw(program, &model.text, labels.as_deref(), params.as_ref())
        .map_err(|e| Failure::input(format!("{}: {e}", model.path)))?;
    write_picture(&args.output, format, &svg)
}

/// The model, with `data` bound to it when given (the data can complete
/// the model: `one_hot(column)` may count its categories there).
pub fn model_with_data(
    path: &Path,
    data_path: Option<&Path>,
    options: data::ReadOptions,
) -> Result<(Model, Option<data::Bound>), Failure> {
    let Some(file) = data_path else { return Ok((read_model(path)?, None)) };
    let (model, table) = read_model_with_data(path, file, options)?;
    let program = &model.front.program;
    if !program.has_data() {
        return Err(Failure::Usage(format!("{} has no data block, so {} cannot be bound", model.path, file.display())));
    }
    let table = match table {
        Some(table) => table,
        None => data::read_file(file, &program.data, options).map_err(|e| bind_error(e, &model))?,
    };
    let bound = data::prepare::training(program, table, data::Split::NONE, None).map_err(|e| bind_error(e, &model))?;
    Ok((model, Some(bound)))
}

/// Each input binding's neurons named from the data: its header's column
/// names (`column N` without one), or `island=Dream` for a one-hot
/// category; in binding-index order.
pub fn input_labels(program: &Program, bound: &data::Bound) -> Vec<Vec<String>> {
    let header = bound.header.names.as_ref();
    let column = |c: usize| header.map_or(format!("column {}", c + 1), |h| h[c].clone());
    let mut inputs: Vec<(u32, Vec<String>)> = program
        .data
        .iter()
        .zip(bound.layout.columns.iter().zip(&bound.transforms))
        .filter(|(b, _)| !b.is_target)
        .map(|(b, (cols, transform))| {
            let cols: Vec<usize> = cols.iter().flatten().copied().collect();
            let names = match (cols.as_slice(), transform.categories.is_empty()) {
                ([c], false) => transform.categories.iter().map(|k| format!("{}={k}", column(*c))).collect(),
                _ => cols.iter().map(|&c| column(c)).collect(),
            };
            (b.index, names)
        })
        .collect();
    inputs.sort_by_key(|(i, _)| *i);
    inputs.into_iter().map(|(_, names)| names).collect()
}
