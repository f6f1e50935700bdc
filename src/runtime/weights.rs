//! Model weights as [safetensors](https://huggingface.co/docs/safetensors) files.
//!
//! [`save`] writes every parameter of a program, [`load`] reads them back
//! into the packed [`Params`] layout the kernels use. The files are plain
//! safetensors, readable by `safetensors.numpy.load_file` in Python.
//!
//! # On-disk conventions
//!
//! - One tensor per entry of `program.graph.params`, named exactly as the
//!   parameter: `<layer>.w`, `<layer>.b`, or a scalar `param`'s own name.
//! - Every tensor is `F32`, little-endian, row-major (C order).
//! - Shapes, by [`disk_shape`]:
//!   - a layer's **bias** — the parameter whose `layer` is `Some(l)`, whose
//!     name is `l.b` and whose internal shape is `[1, n]` — is 1-D `[n]`;
//!   - a **scalar** `param` — `layer` is `None` and the shape is `[1, 1]` —
//!     is 0-D `[]`;
//!   - everything else (a layer's weight, `[inputs, outputs]`) is stored 2-D
//!     as it is, even when a dimension is 1: `dense(x, 8)` with one input
//!     has `h.w` of shape `[1, 8]`.
//! - On load, a tensor must have its [`disk_shape`], with two friendly
//!   exceptions: a bias may also be `[1, n]`, and a scalar may also be `[1]`
//!   or `[1, 1]`. Weights must match exactly.
//! - Optimizer state, when the optimizer keeps any, follows: one tensor per
//!   entry of `Optimizer::states`, named `<param>.<kind>` (`h.w.momentum`,
//!   `h.w.adam_m`, `h.w.adam_v`), shaped on disk like its parameter.
//! - The header metadata (a string → string map) is the caller's map plus
//!   `"format": "nnc-weights-1"` ([`FORMAT_KEY`], [`FORMAT`]), which
//!   overrides a caller's `format`, `nnc.optimizer` ([`OPTIMIZER_KEY`]) and
//!   `nnc.step` ([`STEP_KEY`]), the optimizer steps taken. A file without a `format` key (say,
//!   written by Python) loads; one whose format is another `nnc-weights-*`
//!   version is refused. [`SOURCE_HASH_KEY`] is the conventional key for the
//!   model source's [`source_hash`].
//!
//! # Errors
//!
//! Loading is strict: every parameter must be present with an accepted shape
//! and dtype `F32` and only finite values, and the file must hold no tensor
//! the model does not have (that is most likely a different model's file).
//! Optimizer state is loaded when the file has the model's optimizer's state
//! tensors — all of them, under the same rules — and then `nnc.step` too;
//! without them the state starts at zero and the step at 0 (an optimizer
//! without state, plain sgd, takes `nnc.step` alone, so that its schedule
//! continues). State tensors of another optimizer are ignored.
//! Saving refuses non-finite values, since the file could not be loaded.
//!
//! # Atomic writes
//!
//! [`save`] writes a temporary file in the target's directory, sets its mode
//! to 0644, syncs it and renames it into place, so a reader sees the old
//! file or the new one, never half of one. On failure the temporary file is
//! removed and the target is untouched.

use super::data::Transform;
use super::train::{OptimizerState, Params};
use crate::codegen::{param_len, param_offsets};
use crate::ir::program::{Encoding, Program};
use crate::ir::{Dim, ParamInfo, Shape};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The metadata key naming the file format.
pub const FORMAT_KEY: &str = "format";
/// The value of [`FORMAT_KEY`] in files nnc writes.
pub const FORMAT: &str = "nnc-weights-1";
/// The metadata key for the model source's [`source_hash`].
pub const SOURCE_HASH_KEY: &str = "nnc.source_hash";
/// The metadata key for the number of optimizer steps taken (decimal).
pub const STEP_KEY: &str = "nnc.step";
/// The metadata key naming the optimizer (`sgd`, `adam`, `adamw`).
pub const OPTIMIZER_KEY: &str = "nnc.optimizer";

/// The metadata key for the model's source text, so that the file stands
/// alone: `nnc predict --weights FILE data.csv` needs no `.nn` file.
pub const SOURCE_KEY: &str = "nnc.source";
/// The metadata key for the bound columns ([`columns_json`]).
pub const COLUMNS_KEY: &str = "nnc.columns";

/// What went wrong, for callers that branch on it; the message says the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightsErrorKind {
    /// The file is missing or unreadable.
    Read,
    /// The file (or its temporary sibling) could not be written.
    Write,
    /// The bytes are not a safetensors file (bad header).
    NotSafetensors,
    /// The metadata names another `nnc-weights-*` format version.
    UnknownFormat,
    /// A tensor the model needs is not in the file.
    MissingTensor,
    /// The file holds a tensor the model does not have.
    ExtraTensor,
    /// A tensor has the wrong shape.
    Shape,
    /// A tensor is not `F32`.
    Dtype,
    /// A tensor holds a NaN or an infinity.
    NonFinite,
    /// A metadata value nnc reads (the step count) is malformed.
    Metadata,
    /// The `Params` given to [`save`] do not fit the program (a caller bug).
    Mismatch,
}

/// A problem reading or writing a weights file. `message` names the file
/// and, where there is one, the tensor; `help` is an optional hint.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightsError {
    pub kind: WeightsErrorKind,
    /// The weights file, as the caller spelled it.
    pub file: String,
    /// The tensor concerned, if any.
    pub tensor: Option<String>,
    /// One line, lowercase, no trailing full stop.
    pub message: String,
    pub help: Option<String>,
}

impl WeightsError {
    fn new(kind: WeightsErrorKind, file: &str, tensor: Option<&str>, message: String) -> WeightsError {
        WeightsError { kind, file: file.to_string(), tensor: tensor.map(str::to_string), message, help: None }
    }

    fn with_help(mut self, help: impl Into<String>) -> WeightsError {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for WeightsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for WeightsError {}

/// How a parameter is laid out on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// `[rows, cols]` as is.
    Matrix,
    /// A layer's bias row `[1, n]`, stored `[n]`.
    Bias,
    /// A scalar `param`, stored `[]`.
    Scalar,
}

fn role(param: &ParamInfo) -> Role {
    match &param.layer {
        Some(layer)
            if param.shape.rows == Dim::Fixed(1)
                && param.name.strip_suffix(".b").is_some_and(|prefix| prefix == layer) =>
        {
            Role::Bias
        }
        None if param.shape.is_scalar() => Role::Scalar,
        _ => Role::Matrix,
    }
}

fn dims(shape: Shape) -> (usize, usize) {
    (shape.rows.resolve(1), shape.cols.resolve(1))
}

/// The shape `param` has in a weights file: `[n]` for a layer's bias,
/// `[]` for a scalar `param`, `[rows, cols]` otherwise (see the module docs).
pub fn disk_shape(param: &ParamInfo) -> Vec<usize> {
    let (rows, cols) = dims(param.shape);
    match role(param) {
        Role::Matrix => vec![rows, cols],
        Role::Bias => vec![cols],
        Role::Scalar => vec![],
    }
}

/// Whether [`load`] accepts a tensor of shape `found` for `param`.
fn accepts(param: &ParamInfo, found: &[usize]) -> bool {
    let (rows, cols) = dims(param.shape);
    match role(param) {
        Role::Matrix => found == [rows, cols],
        Role::Bias => found == [cols] || found == [1, cols],
        Role::Scalar => found.is_empty() || found == [1] || found == [1, 1],
    }
}

/// `[4, 8]`, `[8]`, `[]`.
fn show_shape(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

/// The position of flat element `index` in a row-major tensor of `shape`,
/// as ` at [2, 5]` (empty for a 0-D tensor).
fn show_index(shape: &[usize], mut index: usize) -> String {
    if shape.is_empty() {
        return String::new();
    }
    let mut position = vec![0; shape.len()];
    for (slot, &dim) in position.iter_mut().zip(shape).rev() {
        let dim = dim.max(1);
        *slot = index % dim;
        index /= dim;
    }
    format!(" at {}", show_shape(&position))
}

fn describe_non_finite(x: f32) -> &'static str {
    if x.is_nan() {
        "NaN"
    } else if x > 0.0 {
        "+infinity"
    } else {
        "-infinity"
    }
}

/// "the model's layer `h`" or "the model's param `x`".
fn owner(param: &ParamInfo) -> String {
    match &param.layer {
        Some(layer) => format!("the model's layer `{layer}`"),
        None => format!("the model's param `{}`", param.name),
    }
}

/// A hint on why `param` has its shape: the layer's inputs and units.
fn shape_help(program: &Program, param: &ParamInfo) -> Option<String> {
    let layer = program.layers.iter().find(|l| Some(&l.name) == param.layer.as_ref())?;
    Some(match role(param) {
        Role::Bias => format!("layer `{}` has {} units, so its bias has {}", layer.name, layer.units, layer.units),
        _ => format!(
            "layer `{}` has {} inputs and {} units, so its weight is [inputs, units] = [{}, {}]",
            layer.name, layer.inputs, layer.units, layer.inputs, layer.units
        ),
    })
}

/// A stable 64-bit FNV-1a hash of the model source, as 16 lowercase hex
/// digits: the conventional value for the metadata key [`SOURCE_HASH_KEY`].
pub fn source_hash(source: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in source.as_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Whether `metadata` records the hash of `source`; `None` when it records none.
pub fn source_matches(metadata: &BTreeMap<String, String>, source: &str) -> Option<bool> {
    metadata.get(SOURCE_HASH_KEY).map(|hash| *hash == source_hash(source))
}

/// The columns each binding read in training and how they became model
/// values, as JSON for [`COLUMNS_KEY`]: one object per binding, in
/// `program.data` order, with `name`, `role` (`input` or `target`),
/// `columns` (header names, or 1-based positions in a file without a
/// header), `encoding` (`raw`, or `one_hot` with `classes`), and `steps`,
/// the transformations in the order they apply: `scale` (multiply by the
/// binding's `scale` in `nnc.preprocessing`), then `standardize` (subtract
/// `mean`, divide by `std`, both per column and measured after scaling).
/// `layout` gives the 0-based columns of each binding, `header` the file's
/// column names if it has them.
pub fn columns_json(program: &Program, layout: &[Option<Vec<usize>>], header: Option<&[String]>) -> String {
    use crate::ir::program::Encoding;
    let list: Vec<serde_json::Value> = program
        .data
        .iter()
        .zip(layout)
        .map(|(binding, columns)| {
            let columns: Vec<serde_json::Value> = columns
                .iter()
                .flatten()
                .map(|&c| match header {
                    Some(names) => serde_json::Value::from(names[c].clone()),
                    None => serde_json::Value::from(c + 1),
                })
                .collect();
            let mut steps = Vec::new();
            if binding.scale != 1.0 {
                steps.push("scale");
            }
            if binding.standardize {
                steps.push("standardize");
            }
            let mut entry = serde_json::json!({
                "name": binding.name,
                "role": if binding.is_target { "target" } else { "input" },
                "columns": columns,
                "encoding": "raw",
                "steps": steps,
            });
            if let Encoding::OneHot { classes } = binding.encoding {
                entry["encoding"] = "one_hot".into();
                entry["classes"] = classes.into();
            }
            entry
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// Everything fitted from the training data, as the `nnc.preprocessing`
/// metadata: per binding, its name, `scale`, `mean` and `std` (empty unless
/// standardised), `categories` (one-hot bindings and class targets, in index
/// order) and `fill` (per column, in the file's units; empty unless filled).
pub fn preprocessing_json(program: &Program, transforms: &[Transform]) -> String {
    let list: Vec<serde_json::Value> = program
        .data
        .iter()
        .zip(transforms)
        .map(|(b, t)| {
            serde_json::json!({
                "name": b.name,
                "scale": t.scale,
                "mean": t.mean,
                "std": t.std,
                "categories": t.categories,
                "fill": t.fill,
            })
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// The transforms saved in a weights file's metadata, in `program.data`
/// order. (`file` names it in errors.)
pub fn saved_transforms(
    program: &Program,
    metadata: &BTreeMap<String, String>,
    file: &str,
) -> Result<Vec<Transform>, String> {
    let needs = program
        .data
        .iter()
        .any(|b| b.standardize || b.scale != 1.0 || b.fill.is_some() || matches!(b.encoding, Encoding::OneHot { .. }));
    let Some(text) = metadata.get("nnc.preprocessing") else {
        if needs {
            return Err(format!(
                "{file} has no preprocessing statistics, but the model scales, standardizes, fills or one-hot encodes its data"
            ));
        }
        return Ok(program.data.iter().map(|b| Transform::identity(b.scale)).collect());
    };
    let bad = |why: &str| format!("{file}: the preprocessing statistics are unreadable: {why}");
    let list: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
    let mut out = Vec::new();
    for binding in &program.data {
        let entry = list
            .iter()
            .find(|e| e["name"] == binding.name)
            .ok_or_else(|| bad(&format!("nothing for `{}`", binding.name)))?;
        let numbers = |key: &str| -> Result<Vec<f64>, String> {
            match &entry[key] {
                serde_json::Value::Null => Ok(Vec::new()),
                value => value
                    .as_array()
                    .ok_or_else(|| bad(key))?
                    .iter()
                    .map(|v| v.as_f64().ok_or_else(|| bad(key)))
                    .collect(),
            }
        };
        let categories: Vec<String> = match &entry["categories"] {
            serde_json::Value::Null => Vec::new(),
            value => value
                .as_array()
                .ok_or_else(|| bad("categories"))?
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| bad("categories")))
                .collect::<Result<_, _>>()?,
        };
        let transform = Transform {
            scale: entry["scale"].as_f64().ok_or_else(|| bad("scale"))?,
            mean: numbers("mean")?,
            std: numbers("std")?,
            categories,
            fill: numbers("fill")?,
        };
        let width = binding.column_count();
        if binding.standardize && (transform.mean.len() != width || transform.std.len() != width) {
            return Err(bad(&format!("`{}` needs {width} means and standard deviations", binding.name)));
        }
        if binding.fill.is_some() && transform.fill.len() != width {
            return Err(bad(&format!("`{}` needs {width} fill values", binding.name)));
        }
        if let Encoding::OneHot { classes } = binding.encoding
            && transform.categories.len() != classes as usize
        {
            return Err(bad(&format!("`{}` needs {classes} categories", binding.name)));
        }
        out.push(transform);
    }
    Ok(out)
}

/// The categories of each `one_hot(column)` binding saved in a weights file,
/// for checking a model whose categories come from the data.
pub fn saved_categories(metadata: &BTreeMap<String, String>) -> crate::ir::program::Categories {
    let mut found = crate::ir::program::Categories::new();
    let Some(list) =
        metadata.get("nnc.preprocessing").and_then(|t| serde_json::from_str::<Vec<serde_json::Value>>(t).ok())
    else {
        return found;
    };
    for entry in list {
        if let (Some(name), Some(categories)) = (entry["name"].as_str(), entry["categories"].as_array())
            && !categories.is_empty()
        {
            found.insert(name.to_string(), categories.len() as u32);
        }
    }
    found
}

/// Save every parameter of `program` from `params` to `path`, atomically
/// (temporary file, then rename), with mode 0644. `metadata` goes into the
/// header together with `"format": "nnc-weights-1"`.
pub fn save(
    path: &Path,
    program: &Program,
    params: &Params,
    metadata: &BTreeMap<String, String>,
) -> Result<(), WeightsError> {
    let bytes = to_bytes(&path.display().to_string(), program, params, metadata)?;
    write_atomically(path, &bytes).map_err(|e| {
        WeightsError::new(
            WeightsErrorKind::Write,
            &path.display().to_string(),
            None,
            format!("cannot write weights file {}: {e}", path.display()),
        )
    })
}

/// The bytes of the safetensors file [`save`] writes (`file` only names it in errors).
pub fn to_bytes(
    file: &str,
    program: &Program,
    params: &Params,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, WeightsError> {
    let declared = &program.graph.params;
    let mismatch = |message: String| {
        WeightsError::new(WeightsErrorKind::Mismatch, file, None, format!("cannot save {file}: {message}"))
    };
    if params.shapes.len() != declared.len() || params.offsets.len() != declared.len() {
        return Err(mismatch(format!(
            "the model has {} parameters but {} were given",
            declared.len(),
            params.shapes.len()
        )));
    }
    let mut encoded: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(declared.len());
    for (i, param) in declared.iter().enumerate() {
        if params.shapes[i] != param.shape {
            return Err(mismatch(format!(
                "`{}` has shape {} in the model but {} in the parameters",
                param.name, param.shape, params.shapes[i]
            )));
        }
        let n = param.shape.len(1);
        let Some(values) = params.values.get(params.offsets[i]..params.offsets[i] + n) else {
            return Err(mismatch(format!("the packed parameters are too short for `{}`", param.name)));
        };
        let shape = disk_shape(param);
        if let Some((at, &x)) = values.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(WeightsError::new(
                WeightsErrorKind::NonFinite,
                file,
                Some(&param.name),
                format!(
                    "cannot save {file}: `{}` holds {}{}",
                    param.name,
                    describe_non_finite(x),
                    show_index(&shape, at)
                ),
            )
            .with_help("a file with non-finite weights could not be loaded again"));
        }
        let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
        encoded.push((param.name.clone(), shape, bytes));
    }
    // Optimizer state, each tensor shaped like its parameter on disk.
    let states = program.train.optimizer.value.states(declared);
    let state = &params.state;
    if state.names.len() != states.len() || state.names.iter().zip(&states).any(|(n, s)| *n != s.name) {
        return Err(mismatch(format!(
            "the model's optimizer keeps {} state tensors but {} were given",
            states.len(),
            state.names.len()
        )));
    }
    for (i, info) in states.iter().enumerate() {
        let shape = disk_shape(&declared[info.param as usize]);
        let Some(values) = state.values.get(state.offsets[i]..state.offsets[i] + info.shape.len(1)) else {
            return Err(mismatch(format!("the packed optimizer state is too short for `{}`", info.name)));
        };
        if let Some((at, &x)) = values.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(WeightsError::new(
                WeightsErrorKind::NonFinite,
                file,
                Some(&info.name),
                format!(
                    "cannot save {file}: optimizer state `{}` holds {}{}",
                    info.name,
                    describe_non_finite(x),
                    show_index(&shape, at)
                ),
            ));
        }
        let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
        encoded.push((info.name.clone(), shape, bytes));
    }
    let views = encoded
        .iter()
        .map(|(name, shape, bytes)| Ok((name.as_str(), TensorView::new(Dtype::F32, shape.clone(), bytes)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| mismatch(e.to_string()))?;
    let mut header: HashMap<String, String> = metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    header.insert(FORMAT_KEY.to_string(), FORMAT.to_string());
    header.insert(OPTIMIZER_KEY.to_string(), program.train.optimizer.value.name().to_string());
    header.insert(STEP_KEY.to_string(), state.step.to_string());
    let bytes = safetensors::serialize(views, Some(header)).map_err(|e| mismatch(e.to_string()))?;
    Ok(canonical_header(bytes))
}

/// A counter so that two saves in one process never pick the same temporary name.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Removes the temporary file unless disarmed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_file(path);
        }
    }
}

/// Write `bytes` to a sibling temporary file, make it 0644, sync it and
/// rename it onto `path`. On error nothing new is left behind.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let Some(name) = path.file_name() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file"));
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if path.is_dir() {
        return Err(io::Error::new(io::ErrorKind::IsADirectory, "it is a directory"));
    }
    let (temp, mut file) = create_temp(dir, &name.to_string_lossy())?;
    // A second Ctrl-C while this is written removes the temporary file.
    let _tracked = super::interrupt::track(&temp);
    let mut guard = TempGuard(Some(temp.clone()));
    file.write_all(bytes)?;
    file.set_permissions(fs::Permissions::from_mode(0o644))?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, path)?;
    guard.0 = None;
    // Make the rename itself durable; not every file system allows this.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// A new file `.NAME.PID.N.tmp` in `dir`, created exclusively.
fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1_000_000 => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The metadata of a weights file alone (its header), before the model is
/// checked: a model whose categories come from the data takes them from here.
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>, WeightsError> {
    use std::io::Read;
    let file = path.display().to_string();
    let read_error = |message: String| WeightsError::new(WeightsErrorKind::Read, &file, None, message);
    let mut handle = fs::File::open(path).map_err(|e| read_error(format!("cannot read weights file {file}: {e}")))?;
    let mut length = [0u8; 8];
    handle.read_exact(&mut length).map_err(|e| read_error(format!("cannot read weights file {file}: {e}")))?;
    let length = u64::from_le_bytes(length);
    if length > 64 << 20 {
        return Err(read_error(format!("{file} is not a safetensors file (header of {length} bytes)")));
    }
    let mut header = vec![0u8; length as usize];
    handle.read_exact(&mut header).map_err(|e| read_error(format!("cannot read weights file {file}: {e}")))?;
    let value: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| read_error(format!("{file} is not a safetensors file: {e}")))?;
    let mut metadata = BTreeMap::new();
    if let Some(map) = value.get("__metadata__").and_then(|m| m.as_object()) {
        for (key, value) in map {
            if let Some(text) = value.as_str() {
                metadata.insert(key.clone(), text.to_string());
            }
        }
    }
    Ok(metadata)
}

/// Load all parameters of `program` from `path`; returns the params (in the
/// packed layout of [`Params::init`]) and the file's metadata.
pub fn load(path: &Path, program: &Program) -> Result<(Params, BTreeMap<String, String>), WeightsError> {
    use std::io::Read;
    let file = path.display().to_string();
    let read_error = |message: String| WeightsError::new(WeightsErrorKind::Read, &file, None, message);
    let handle = fs::File::open(path).map_err(|e| read_error(format!("cannot read weights file {file}: {e}")))?;
    let metadata = handle.metadata().map_err(|e| read_error(format!("cannot read weights file {file}: {e}")))?;
    if metadata.is_dir() {
        return Err(read_error(format!("cannot read weights file {file}: Is a directory")));
    }
    if !metadata.is_file() {
        return Err(read_error(format!("cannot read weights file {file}: it is not a regular file")));
    }
    // The model's own tensors (and optimizer state) plus a generous header:
    // anything much larger is not this model's weights, and is not read.
    let expected: u64 = program.graph.params.iter().map(|p| p.shape.len(1) as u64 * 4).sum();
    let limit = expected * 4 + (64 << 20);
    if metadata.len() > limit {
        return Err(read_error(format!(
            "{file} is {} bytes, far more than this model's weights ({expected} bytes)",
            metadata.len()
        )));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    handle
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(format!("cannot read weights file {file}: {e}")))?;
    from_bytes(&file, &bytes, program)
}

/// [`load`] from bytes already read; `file` names them in errors.
pub fn from_bytes(
    file: &str,
    bytes: &[u8],
    program: &Program,
) -> Result<(Params, BTreeMap<String, String>), WeightsError> {
    let error = |kind, tensor: Option<&str>, message: String| WeightsError::new(kind, file, tensor, message);
    let not_safetensors = |e: safetensors::SafeTensorError| {
        error(WeightsErrorKind::NotSafetensors, None, format!("{file} is not a safetensors file: {e}"))
            .with_help("a weights file is written by `nnc` or by safetensors' `save_file`")
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(not_safetensors)?;
    let tensors = SafeTensors::deserialize(bytes).map_err(not_safetensors)?;
    let metadata: BTreeMap<String, String> =
        header.metadata().iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some(format) = metadata.get(FORMAT_KEY)
        && format.starts_with("nnc-weights-")
        && format != FORMAT
    {
        return Err(error(
            WeightsErrorKind::UnknownFormat,
            None,
            format!("{file} is in format `{format}`, but this nnc reads `{FORMAT}`"),
        )
        .with_help("it was probably written by a newer nnc"));
    }

    let mut names: Vec<&str> = tensors.names();
    names.sort_unstable();
    let declared = &program.graph.params;
    let shapes: Vec<Shape> = declared.iter().map(|p| p.shape).collect();
    let offsets = param_offsets(&shapes);
    let mut values = vec![0.0f32; param_len(&shapes)];
    for (i, param) in declared.iter().enumerate() {
        let name = param.name.as_str();
        if tensors.tensor(name).is_err() {
            let has =
                if names.is_empty() { "has no tensors".to_string() } else { format!("has: {}", names.join(", ")) };
            let mut err = error(
                WeightsErrorKind::MissingTensor,
                Some(name),
                format!("{file} has no tensor `{name}` ({} needs it; the file {has})", owner(param)),
            );
            if let Some(close) = crate::diag::suggest(name, names.iter().copied()) {
                err = err.with_help(format!("did you mean `{close}`? the file's names must match the model's"));
            }
            return Err(err);
        }
        read_tensor(file, &tensors, program, param, name, &mut values[offsets[i]..offsets[i] + param.shape.len(1)])?;
    }

    // Optimizer state: all of it or none (then it starts at zero).
    let mut state = OptimizerState::zeros(program);
    let present: Vec<&str> = state.names.iter().map(String::as_str).filter(|n| names.contains(n)).collect();
    if let Some(missing) = state.names.iter().find(|n| !present.is_empty() && !names.contains(&n.as_str())) {
        return Err(error(
            WeightsErrorKind::MissingTensor,
            Some(missing),
            format!(
                "{file} has optimizer state (`{}`) but no tensor `{missing}`: the {} optimizer needs all of it",
                present[0],
                program.train.optimizer.value.name()
            ),
        )
        .with_help("save the weights again with `nnc run --save-weights`, or remove the state tensors"));
    }
    let states = program.train.optimizer.value.states(declared);
    if !present.is_empty() {
        for (i, info) in states.iter().enumerate() {
            let param = &declared[info.param as usize];
            let n = info.shape.len(1);
            let slot = &mut state.values[state.offsets[i]..state.offsets[i] + n];
            read_tensor(file, &tensors, program, param, &info.name, slot)?;
        }
    }
    // The step continues with the state, or alone for an optimizer without
    // state (for the schedule); fresh state starts again at step 0.
    if let Some(text) = metadata.get(STEP_KEY)
        && (!present.is_empty() || states.is_empty())
    {
        state.step = text.parse().map_err(|_| {
            error(
                WeightsErrorKind::Metadata,
                None,
                format!("{file} has `{STEP_KEY}` = `{text}`, which is not a step count"),
            )
            .with_help(format!("`{STEP_KEY}` is the number of optimizer steps taken, a whole number"))
        })?;
    }

    let is_state_of_any_optimizer = |n: &str| {
        declared.iter().any(|p| {
            n.strip_prefix(p.name.as_str())
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(crate::ir::program::OptimizerDef::is_state_kind)
        })
    };
    if let Some(extra) = names.iter().find(|n| !declared.iter().any(|p| p.name == **n) && !is_state_of_any_optimizer(n))
    {
        let wanted: Vec<&str> = declared.iter().map(|p| p.name.as_str()).collect();
        let wanted = if wanted.is_empty() { "none".to_string() } else { wanted.join(", ") };
        return Err(error(
            WeightsErrorKind::ExtraTensor,
            Some(extra),
            format!("{file} has a tensor `{extra}` that the model does not have (the model's parameters: {wanted})"),
        )
        .with_help("the file was probably saved from a different model"));
    }
    Ok((Params { values, offsets, shapes, state }, metadata))
}

/// Read tensor `name` (parameter `param`, or optimizer state of its shape)
/// into `slot`, checking its dtype, shape and values.
fn read_tensor(
    file: &str,
    tensors: &SafeTensors,
    program: &Program,
    param: &ParamInfo,
    name: &str,
    slot: &mut [f32],
) -> Result<(), WeightsError> {
    let error = |kind, message: String| WeightsError::new(kind, file, Some(name), message);
    let view = tensors
        .tensor(name)
        .map_err(|e| error(WeightsErrorKind::MissingTensor, format!("{file} has no tensor `{name}`: {e}")))?;
    if view.dtype() != Dtype::F32 {
        return Err(error(
            WeightsErrorKind::Dtype,
            format!("`{name}` in {file} has dtype {} but nnc weights are F32", view.dtype()),
        )
        .with_help("convert it before saving, e.g. `array.astype(numpy.float32)`"));
    }
    if !accepts(param, view.shape()) {
        let mut err = error(
            WeightsErrorKind::Shape,
            format!(
                "`{name}` in {file} has shape {} but the model needs {}",
                show_shape(view.shape()),
                show_shape(&disk_shape(param))
            ),
        );
        err.help = shape_help(program, param);
        return Err(err);
    }
    let data = view.data();
    let n = param.shape.len(1);
    if data.len() != 4 * n {
        return Err(error(
            WeightsErrorKind::NotSafetensors,
            format!("`{name}` in {file} has {} bytes of data but its shape needs {}", data.len(), 4 * n),
        ));
    }
    for (x, chunk) in slot.iter_mut().zip(data.chunks_exact(4)) {
        *x = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    if let Some((at, &x)) = slot.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(error(
            WeightsErrorKind::NonFinite,
            format!("`{name}` in {file} holds {}{}", describe_non_finite(x), show_index(view.shape(), at)),
        )
        .with_help("the weights were probably saved from a run that diverged"));
    }
    Ok(())
}

/// The same file with its JSON header's keys in sorted order.
///
/// The safetensors crate writes metadata from a `HashMap`, whose order
/// changes from run to run; sorting makes a repeated run's file bitwise
/// identical. The data section and its offsets are unchanged.
fn canonical_header(bytes: Vec<u8>) -> Vec<u8> {
    let Some(length) = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize) else {
        return bytes;
    };
    let Some(header) = bytes.get(8..8 + length) else { return bytes };
    // serde_json's map is ordered by key (no `preserve_order` feature).
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(header) else { return bytes };
    let mut text = value.to_string().into_bytes();
    // safetensors pads the header with spaces to a multiple of 8 bytes.
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - length);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + length..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_known_values() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(source_hash(""), "cbf29ce484222325");
        assert_eq!(source_hash("a"), "af63dc4c8601ec8c");
        assert_eq!(source_hash("foobar"), "85944171f73967e8");
    }

    #[test]
    fn indices_are_row_major() {
        assert_eq!(show_index(&[4, 8], 21), " at [2, 5]");
        assert_eq!(show_index(&[8], 3), " at [3]");
        assert_eq!(show_index(&[], 0), "");
    }
}
