//! `nnc draw`: the network diagram as SVG or PNG, and what every picture
//! command shares: choosing the format from the output's extension and
//! writing it atomically.

use super::{Failure, bind_error, check_not_an_input, check_output, read_model, write_atomically};
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
    let model = read_model(&args.model)?;
    let program = &model.front.program;
    let labels = match &args.data {
        Some(path) if program.has_data() => Some(input_labels(program, path).map_err(|e| bind_error(e, &model))?),
        Some(path) => {
            return Err(Failure::Usage(format!(
                "{} has no data block, so {} names nothing",
                model.path,
                path.display()
            )));
        }
        None => None,
    };
    let params = match &args.weights {
        Some(path) => Some(weights::load(path, program).map_err(Failure::input)?.0),
        None => None,
    };
    let svg = nnc::picture::diagram::draw(program, &model.text, labels.as_deref(), params.as_ref())
        .map_err(|e| Failure::input(format!("{}: {e}", model.path)))?;
    write_picture(&args.output, format, &svg)
}

/// Each input binding's column names in the data file's header (`column N`
/// without one), in binding-index order.
fn input_labels(program: &nnc::ir::program::Program, path: &Path) -> Result<Vec<Vec<String>>, data::BindError> {
    let options = data::ReadOptions { targets_optional: true, ..data::ReadOptions::default() };
    let table = data::read_file(path, &program.data, options)?;
    let layout = &table.layout;
    let mut inputs: Vec<(u32, Vec<String>)> = program
        .data
        .iter()
        .zip(&layout.columns)
        .filter(|(b, _)| !b.is_target)
        .map(|(b, cols)| {
            let names = cols
                .iter()
                .flatten()
                .map(|&c| match &table.header.names {
                    Some(h) => h[c].clone(),
                    None => format!("column {}", c + 1),
                })
                .collect();
            (b.index, names)
        })
        .collect();
    inputs.sort_by_key(|(i, _)| *i);
    Ok(inputs.into_iter().map(|(_, names)| names).collect())
}
