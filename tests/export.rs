//! `nnc export`: the ONNX file checked by the tools that consume it
//! (`onnx.checker` and onnxruntime, through `tests/export/onnx_check.py`,
//! against `nnc predict` on every shipped example with data), its structure
//! decoded on the Rust side, and the exports' bad-input paths.
//!
//! The Python checks need `onnx`, `onnxruntime` and `numpy`: `.ci/run` makes
//! a virtual environment with them and names its interpreter in
//! `NNC_PYTHON`. Under CI (`CI` set) a missing module fails the test; on a
//! developer's machine without them the check is skipped with a note.

use nnc::export::onnx_proto::{DimensionValue, ModelProto, TensorProto, data_type};
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Every shipped example with data, and its CSV.
const EXAMPLES: &[(&str, &str)] = &[
    ("iris", "iris"),
    ("digits", "digits"),
    ("diabetes", "diabetes"),
    ("linnerud", "linnerud"),
    ("seed", "seed"),
    ("activations", "iris"),
    ("adam", "digits"),
    ("adamw", "diabetes"),
    ("binary", "iris"),
    ("multilabel", "iris"),
    ("functions", "diabetes"),
    ("losses", "diabetes"),
    ("momentum", "iris"),
    ("skip", "iris"),
    ("penguins", "penguins"),
    ("early_stop", "digits"),
    ("class_weights", "digits"),
];

fn nnc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("nnc runs")
}

fn ok(args: &[&str]) -> Output {
    let output = nnc(args);
    assert!(output.status.success(), "nnc {args:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    output
}

fn tempdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn example(name: &str) -> String {
    format!("examples/{name}.nn")
}

fn data(name: &str) -> String {
    format!("examples/{name}.csv")
}

/// Train `model` briefly on `csv` and export it: (weights, onnx) paths.
fn trained(dir: &Path, model: &str, csv: &str) -> (String, String) {
    let weights = dir.join(format!("{model}.safetensors")).display().to_string();
    let onnx = dir.join(format!("{model}.onnx")).display().to_string();
    ok(&["run", &example(model), &data(csv), "--epochs", "3", "--quiet", "--save-weights", &weights]);
    ok(&["export", &example(model), "--weights", &weights, "--onnx", &onnx, "--quiet"]);
    (weights, onnx)
}

fn decode(path: &str) -> ModelProto {
    ModelProto::decode(std::fs::read(path).unwrap().as_slice()).expect("a protobuf ModelProto")
}

/// A Python interpreter with `modules`, or `None` (a note printed) when
/// there is none outside CI. Under CI a missing one fails the test.
fn python_with(modules: &str) -> Option<String> {
    let python = std::env::var("NNC_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python).args(["-c", &format!("import {modules}")]).output();
    if probe.as_ref().is_ok_and(|o| o.status.success()) {
        return Some(python);
    }
    let why = match probe {
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
        Err(e) => e.to_string(),
    };
    if std::env::var_os("CI").is_some() {
        panic!("under CI, {python} must have {modules} (.ci/run installs them): {why}");
    }
    eprintln!("note: skipping the onnxruntime check: {python} lacks {modules} ({why})");
    None
}

#[test]
fn onnxruntime_agrees_with_predict_on_every_example() {
    let dir = tempdir("export_onnxruntime");
    // Every shipped example with data is in the table.
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "nn") {
            let text = std::fs::read_to_string(&path).unwrap();
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            // (A model whose categories come from the data has data.)
            let has_data = nnc::pipeline::frontend(&text).map_or(true, |f| f.program.has_data());
            assert!(
                !has_data || EXAMPLES.iter().any(|(m, _)| *m == stem),
                "examples/{stem}.nn has data but is not in EXAMPLES"
            );
        }
    }
    let mut triples = Vec::new();
    for (model, csv) in EXAMPLES {
        let (weights, onnx) = trained(&dir, model, csv);
        let predictions = dir.join(format!("{model}.predictions.csv")).display().to_string();
        // `nnc predict` wants every cell (rows with `NA` were dropped in training).
        let text = std::fs::read_to_string(data(csv)).unwrap();
        let complete: String =
            text.lines().filter(|l| !l.split(',').any(|f| f == "NA")).map(|l| format!("{l}\n")).collect();
        let rows = dir.join(format!("{model}.rows.csv")).display().to_string();
        std::fs::write(&rows, complete).unwrap();
        ok(&["predict", &example(model), &rows, "--weights", &weights, "--out", &predictions, "--quiet"]);
        triples.push([onnx, rows, predictions]);
    }
    // Filled cells and their indicator columns, rows with `NA` included.
    let fill = dir.join("fill.nn");
    std::fs::write(&fill, FILL_MODEL).unwrap();
    let fill = fill.display().to_string();
    let weights = dir.join("fill.safetensors").display().to_string();
    let onnx = dir.join("fill.onnx").display().to_string();
    let predictions = dir.join("fill.predictions.csv").display().to_string();
    ok(&["run", &fill, &data("penguins"), "--epochs", "3", "--quiet", "--save-weights", &weights]);
    ok(&["export", &fill, "--weights", &weights, "--onnx", &onnx, "--quiet"]);
    ok(&["predict", &fill, &data("penguins"), "--weights", &weights, "--out", &predictions, "--quiet"]);
    triples.push([onnx, data("penguins"), predictions]);
    let Some(python) = python_with("onnx, onnxruntime, numpy") else { return };
    let mut command = Command::new(python);
    command.arg("tests/export/onnx_check.py").current_dir(env!("CARGO_MANIFEST_DIR"));
    for triple in &triples {
        command.args(triple);
    }
    let output = command.output().expect("python runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "onnx_check.py failed:\n{text}");
    assert_eq!(text.lines().filter(|l| l.contains("max rel diff")).count(), EXAMPLES.len() + 1, "{text}");
}

/// Penguins' measurements with missing cells filled by their medians and
/// an indicator column each.
const FILL_MODEL: &str = "data {
  input  size = columns(bill_length_mm, bill_depth_mm, body_mass_g) fill(median, indicator) standardize
  target y    = one_hot(species)
}
model {
  h   = dense(size, 8, tanh)
  out = dense(h, 3, softmax)
}
loss cross_entropy(out, y)
train { epochs = 3  batch = 16 }
";

#[test]
fn categories_are_label_encoders_and_class_names() {
    let dir = tempdir("export_penguins_structure");
    let (_, onnx) = trained(&dir, "penguins", "penguins");
    let model = decode(&onnx);
    let domains: Vec<(&str, i64)> =
        model.opset_import.iter().map(|o| (o.domain.as_deref().unwrap(), o.version.unwrap())).collect();
    assert_eq!(domains, [("", 17), ("ai.onnx.ml", 2)]);
    let graph = model.graph.as_ref().unwrap();
    let island = graph.input.iter().find(|i| i.name.as_deref() == Some("island")).unwrap();
    let elem = island.r#type.as_ref().unwrap().tensor_type.as_ref().unwrap().elem_type;
    assert_eq!(elem, Some(data_type::STRING));
    let encoder = graph.node.iter().find(|n| n.output[0] == "island.index").unwrap();
    assert_eq!(encoder.op_type.as_deref(), Some("LabelEncoder"));
    assert_eq!(encoder.domain.as_deref(), Some("ai.onnx.ml"));
    let keys: Vec<&[u8]> = encoder.attribute[0].strings.iter().map(Vec::as_slice).collect();
    assert_eq!(keys, [&b"Biscoe"[..], b"Dream", b"Torgersen"]);
    let names: Vec<&str> = graph.output.iter().map(|o| o.name.as_deref().unwrap()).collect();
    assert_eq!(names, ["out", "class", "label"]);
    assert_eq!(metadata(&model, "nnc.classes"), r#"["Adelie","Chinstrap","Gentoo"]"#);
}

fn initializer<'m>(model: &'m ModelProto, name: &str) -> &'m TensorProto {
    let graph = model.graph.as_ref().unwrap();
    graph.initializer.iter().find(|t| t.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("no `{name}`"))
}

fn metadata<'m>(model: &'m ModelProto, key: &str) -> &'m str {
    let entry = model.metadata_props.iter().find(|p| p.key.as_deref() == Some(key));
    entry.and_then(|p| p.value.as_deref()).unwrap_or_else(|| panic!("no metadata `{key}`"))
}

fn dims(info: &nnc::export::onnx_proto::ValueInfoProto) -> Vec<String> {
    let tensor = info.r#type.as_ref().unwrap().tensor_type.as_ref().unwrap();
    let shape = tensor.shape.as_ref().unwrap();
    shape
        .dim
        .iter()
        .map(|d| match d.value.as_ref().unwrap() {
            DimensionValue::DimValue(n) => n.to_string(),
            DimensionValue::DimParam(p) => p.clone(),
        })
        .collect()
}

#[test]
fn iris_decodes_to_nncs_names_and_layout() {
    let dir = tempdir("export_iris_structure");
    let (weights, onnx) = trained(&dir, "iris", "iris");
    let model = decode(&onnx);
    assert_eq!(model.ir_version, Some(8));
    assert_eq!(model.opset_import.len(), 1);
    assert_eq!(model.opset_import[0].version, Some(17));
    let graph = model.graph.as_ref().unwrap();
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_deref().unwrap()).collect();
    assert_eq!(ops, ["MatMul", "Add", "Tanh", "MatMul", "Add", "Softmax", "ArgMax"]);
    let outputs: Vec<&str> = graph.node.iter().map(|n| n.output[0].as_str()).collect();
    assert_eq!(outputs, ["h.matmul", "h.add", "h", "out.matmul", "out.add", "out", "class"]);
    assert_eq!(graph.input.len(), 1);
    assert_eq!(graph.input[0].name.as_deref(), Some("x"));
    assert_eq!(dims(&graph.input[0]), ["batch", "4"]);
    let names: Vec<&str> = graph.output.iter().map(|o| o.name.as_deref().unwrap()).collect();
    assert_eq!(names, ["out", "class"]);
    assert_eq!(dims(&graph.output[0]), ["batch", "3"]);
    assert_eq!(dims(&graph.output[1]), ["batch"]);
    let class_type = graph.output[1].r#type.as_ref().unwrap().tensor_type.as_ref().unwrap();
    assert_eq!(class_type.elem_type, Some(data_type::INT64));
    // Weights stored [inputs, outputs] with the weights file's values.
    let w = initializer(&model, "h.w");
    assert_eq!(w.dims, [4, 8]);
    assert_eq!(initializer(&model, "h.b").dims, [8]);
    let tensors = safetensors::SafeTensors::deserialize(&std::fs::read(&weights).unwrap())
        .map(|t| t.tensor("h.w").unwrap().data().to_vec())
        .unwrap();
    assert_eq!(w.raw_data.as_deref(), Some(tensors.as_slice()));
    assert_eq!(metadata(&model, "nnc.classes"), r#"["0","1","2"]"#);
    let source = std::fs::read_to_string("examples/iris.nn").unwrap();
    assert_eq!(metadata(&model, "nnc.source"), source);
    assert_eq!(metadata(&model, "nnc.source_hash"), nnc::runtime::weights::source_hash(&source));
    let columns: serde_json::Value = serde_json::from_str(metadata(&model, "nnc.columns")).unwrap();
    assert_eq!(
        columns[0]["columns"],
        serde_json::json!(["sepal_length", "sepal_width", "petal_length", "petal_width"])
    );
}

#[test]
fn per_neuron_activations_are_where_with_constant_masks() {
    let dir = tempdir("export_seed_structure");
    let (_, onnx) = trained(&dir, "seed", "seed");
    let model = decode(&onnx);
    let graph = model.graph.as_ref().unwrap();
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_deref().unwrap()).collect();
    // Each activation on the whole layer, then one Where; no slices.
    assert_eq!(ops, ["MatMul", "Tanh", "Sigmoid", "Where", "MatMul", "Identity"]);
    let select = &graph.node[3];
    assert_eq!(select.input, ["h.mask0", "h.tanh", "h.sigmoid"]);
    assert_eq!(select.output, ["h"]);
    let mask = initializer(&model, "h.mask0");
    assert_eq!(mask.data_type, Some(data_type::BOOL));
    assert_eq!(mask.dims, [1, 2]);
    assert_eq!(mask.raw_data.as_deref(), Some(&[1u8, 0][..]));
    // The regression output carries the target's name.
    assert_eq!(graph.output[0].name.as_deref(), Some("y"));
}

#[test]
fn standardized_regression_has_preprocessing_and_units() {
    let dir = tempdir("export_diabetes_structure");
    let (_, onnx) = trained(&dir, "diabetes", "diabetes");
    let model = decode(&onnx);
    let graph = model.graph.as_ref().unwrap();
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_deref().unwrap()).collect();
    assert_eq!(ops, ["Sub", "Div", "MatMul", "Add", "Tanh", "MatMul", "Add", "Mul", "Add", "Identity"]);
    assert_eq!(graph.node[0].input, ["x", "x.mean"]);
    assert_eq!(initializer(&model, "x.mean").dims, [10]);
    assert_eq!(initializer(&model, "y.std").dims, [1]);
    assert_eq!(graph.output[0].name.as_deref(), Some("y"));
}

#[test]
fn a_target_in_the_model_is_a_located_diagnostic() {
    let dir = tempdir("export_target_in_model");
    let model = dir.join("leak.nn");
    std::fs::write(
        &model,
        "data { input x[3] target y[1] }\nmodel {\n  h = dense(x, 2, tanh)\n  o = dense(h, 1)\n  out = o + y\n}\nloss mse(out, y)\n",
    )
    .unwrap();
    let model = model.display().to_string();
    let weights = dir.join("leak.safetensors").display().to_string();
    ok(&["run", &model, &data("seed"), "--epochs", "1", "--quiet", "--save-weights", &weights]);
    let onnx = dir.join("leak.onnx");
    let output = nnc(&["export", &model, "--weights", &weights, "--onnx", &onnx.display().to_string()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("error[E0401]"), "{stderr}");
    assert!(stderr.contains("leak.nn:5:9"), "{stderr}");
    assert!(stderr.contains("reads the target `y`"), "{stderr}");
    assert!(!onnx.exists(), "nothing is written");
}

#[test]
fn export_bad_input() {
    let dir = tempdir("export_bad_input");
    let out = dir.join("x.onnx").display().to_string();
    // No weights.
    let output = nnc(&["export", "examples/iris.nn", "--onnx", &out]);
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
    // Nothing to export.
    let output = nnc(&["export", "examples/minimize.nn", "--onnx", &out, "--weights", "w"]);
    assert_eq!(output.status.code(), Some(2));
    // A missing weights file, and another model's weights.
    let output = nnc(&["export", "examples/iris.nn", "--weights", "nope.safetensors", "--onnx", &out]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nope.safetensors"));
    let (weights, _) = trained(&dir, "diabetes", "diabetes");
    let output = nnc(&["export", "examples/iris.nn", "--weights", &weights, "--onnx", &out]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("h.w"), "{}", String::from_utf8_lossy(&output.stderr));
    // The output would overwrite an input; an unwritable place.
    let output = nnc(&["export", "examples/diabetes.nn", "--weights", &weights, "--onnx", &weights]);
    assert_eq!(output.status.code(), Some(2));
    let output = nnc(&["export", "examples/diabetes.nn", "--weights", &weights, "--onnx", "/nonexistent/dir/x.onnx"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(!Path::new(&out).exists());
}

// ---- a weights file that stands alone --------------------------------------------------

#[test]
fn predict_and_export_need_no_model_file() {
    let dir = tempdir("export_standalone");
    let (weights, onnx) = trained(&dir, "diabetes", "diabetes");
    let with_model = ok(&["predict", "examples/diabetes.nn", "examples/diabetes.csv", "--weights", &weights]);
    let alone = ok(&["predict", "examples/diabetes.csv", "--weights", &weights]);
    assert_eq!(alone.stdout, with_model.stdout);
    assert!(alone.stdout.starts_with(b"y\n"));
    let onnx_alone = dir.join("alone.onnx").display().to_string();
    ok(&["export", "--weights", &weights, "--onnx", &onnx_alone, "--quiet"]);
    assert_eq!(std::fs::read(&onnx_alone).unwrap(), std::fs::read(&onnx).unwrap());
    // What a Python user rebuilds the network from.
    let bytes = std::fs::read(&weights).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().clone().unwrap();
    assert_eq!(metadata["nnc.source"], std::fs::read_to_string("examples/diabetes.nn").unwrap());
    let columns: serde_json::Value = serde_json::from_str(&metadata["nnc.columns"]).unwrap();
    assert_eq!(
        columns,
        serde_json::json!([
            {"name": "x", "role": "input", "encoding": "raw", "steps": ["standardize"],
             "columns": ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]},
            {"name": "y", "role": "target", "encoding": "raw", "steps": ["standardize"], "columns": ["progression"]},
        ])
    );
}

#[test]
fn positional_columns_are_recorded_by_position() {
    let dir = tempdir("export_positional");
    let weights = dir.join("seed.safetensors").display().to_string();
    // seed.csv without its header line.
    let text = std::fs::read_to_string("examples/seed.csv").unwrap();
    let csv = dir.join("no_header.csv");
    std::fs::write(&csv, text.split_once('\n').unwrap().1).unwrap();
    let csv = csv.display().to_string();
    ok(&["run", "examples/seed.nn", &csv, "--epochs", "1", "--quiet", "--save-weights", &weights]);
    let bytes = std::fs::read(&weights).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let columns: serde_json::Value = serde_json::from_str(&header.metadata().as_ref().unwrap()["nnc.columns"]).unwrap();
    assert_eq!(columns[0]["columns"], serde_json::json!([1, 2, 3]));
    assert_eq!(columns[1]["columns"], serde_json::json!([4]));
}

#[test]
fn a_weights_file_without_its_source_needs_the_model() {
    let dir = tempdir("export_no_source");
    let (weights, _) = trained(&dir, "iris", "iris");
    // The same tensors, saved without `nnc.source` (as an older nnc did).
    let bytes = std::fs::read(&weights).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata = header.metadata().clone().unwrap();
    metadata.remove("nnc.source");
    let views: Vec<(String, safetensors::tensor::TensorView)> =
        tensors.tensors().into_iter().map(|(name, view)| (name.to_string(), view)).collect();
    let old = dir.join("old.safetensors");
    safetensors::serialize_to_file(views, Some(metadata), &old).unwrap();
    let old = old.display().to_string();
    let output = nnc(&["predict", "examples/iris.csv", "--weights", &old]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("give the model file too"));
    ok(&["predict", "examples/iris.nn", "examples/iris.csv", "--weights", &old]);
    // A weights file that is not one.
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"abc").unwrap();
    let output = nnc(&["predict", "examples/iris.csv", "--weights", &junk.display().to_string()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("junk.safetensors"));
}

// ---- the PyTorch project ------------------------------------------------------------

/// `nnc export --torch` of an example into a fresh directory.
fn torch_project(dir: &Path, model: &str) -> PathBuf {
    let project = dir.join(model);
    ok(&["export", &example(model), "--torch", &project.display().to_string()]);
    project
}

#[test]
fn torch_scripts_are_golden() {
    let dir = tempdir("export_torch_golden");
    // Plain, per-neuron, user functions and conditionals, dropout and
    // concat, Adam with a cosine schedule and a validation split.
    for model in ["iris", "seed", "functions", "skip", "adam"] {
        let project = torch_project(&dir, model);
        let script = std::fs::read_to_string(project.join("train.py")).unwrap();
        insta::assert_snapshot!(format!("{model}.train.py"), script);
    }
    let readme = std::fs::read_to_string(dir.join("iris").join("README.md")).unwrap();
    insta::assert_snapshot!("iris.torch.README.md", readme);
}

#[test]
fn every_torch_script_is_python() {
    let dir = tempdir("export_torch_compiles");
    let Some(python) = python_with("py_compile") else { return };
    for (model, _) in EXAMPLES.iter().filter(|(m, _)| !NOT_FOR_TORCH.contains(m)) {
        let project = torch_project(&dir, model);
        let script = project.join("train.py").display().to_string();
        let output = Command::new(&python).args(["-m", "py_compile", &script]).output().unwrap();
        assert!(output.status.success(), "{model}: {}", String::from_utf8_lossy(&output.stderr));
        // nnc's initial weights, which nnc starts from.
        let initial = project.join("initial.safetensors").display().to_string();
        let csv = data(EXAMPLES.iter().find(|e| e.0 == *model).unwrap().1);
        ok(&["run", &example(model), &csv, "--init-weights", &initial, "--epochs", "1", "--quiet"]);
        assert!(project.join("README.md").exists());
    }
}

/// Examples whose data `train.py` does not read (categories, dropped rows),
/// or whose loss DDP's split would change (a weighted mean: E0401, tested
/// in tests/class_weights.rs).
const NOT_FOR_TORCH: &[&str] = &["penguins", "class_weights"];

#[test]
fn torch_export_refuses_categories_and_dropped_rows() {
    let dir = tempdir("export_torch_penguins");
    let (weights, _) = trained(&dir, "penguins", "penguins");
    let project = dir.join("project").display().to_string();
    let output = nnc(&["export", "--weights", &weights, "--torch", &project]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error[E0401]: the PyTorch export cannot reproduce `island`, a column of categories"),
        "{stderr}"
    );
    assert!(stderr.contains(":nnc.source:7:3"), "{stderr}");
    assert!(stderr.contains("the dropping of rows with missing cells"), "{stderr}");
    assert!(stderr.contains("3 errors"), "{stderr}");
}

#[test]
fn torch_export_keeps_given_initial_weights() {
    let dir = tempdir("export_torch_weights");
    let (weights, _) = trained(&dir, "iris", "iris");
    let project = dir.join("project");
    ok(&["export", "--weights", &weights, "--torch", &project.display().to_string()]);
    let read = |path: &Path| {
        let bytes = std::fs::read(path).unwrap();
        let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        tensors.tensor("out.w").unwrap().data().to_vec()
    };
    assert_eq!(read(&project.join("initial.safetensors")), read(Path::new(&weights)));
}

/// A model file in `dir` with `model` and `loss` lines; its E0401 output.
fn torch_refuses(dir: &Path, name: &str, text: &str) -> String {
    let model = dir.join(format!("{name}.nn"));
    std::fs::write(&model, text).unwrap();
    let project = dir.join(name);
    let output = nnc(&["export", &model.display().to_string(), "--torch", &project.display().to_string()]);
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!project.join("train.py").exists(), "nothing is written");
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn torch_export_refuses_what_ddp_would_change() {
    let dir = tempdir("export_torch_refuses");
    let data = "data { input x[3] target y[1] }\n";
    let err = torch_refuses(
        &dir,
        "root",
        &format!("{data}model {{\n  h = dense(x, 2, tanh)\n  out = dense(h, 1)\n}}\nloss mse(out, y)^0.5\n"),
    );
    assert!(err.contains("error[E0401]") && err.contains("root.nn:6:6"), "{err}");
    assert!(err.contains("linear in its sums over rows"), "{err}");
    let err = torch_refuses(
        &dir,
        "batch",
        &format!(
            "{data}model {{\n  h = dense(x, 2, tanh)\n  o = dense(h, 1)\n  out = o * mean(h)\n}}\nloss mse(out, y)\n"
        ),
    );
    assert!(err.contains("error[E0401]") && err.contains("batch.nn:5:13"), "{err}");
    assert!(err.contains("depends on the whole batch"), "{err}");
}

#[test]
fn torch_export_bad_input() {
    let dir = tempdir("export_torch_bad_input");
    let file = dir.join("a_file");
    std::fs::write(&file, "x").unwrap();
    let output = nnc(&["export", "examples/iris.nn", "--torch", &file.display().to_string()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a directory"));
    let output = nnc(&["export", "examples/minimize.nn", "--torch", &dir.join("m").display().to_string()]);
    assert_eq!(output.status.code(), Some(2));
    // Neither a model nor weights; no output asked for.
    assert_eq!(nnc(&["export", "--torch", &dir.join("n").display().to_string()]).status.code(), Some(2));
    assert_eq!(nnc(&["export", "examples/iris.nn"]).status.code(), Some(2));
}
