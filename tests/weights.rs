//! Weights files (`nnc::runtime::weights`): safetensors round trips, the
//! on-disk shapes, atomic writes with mode 0644, one test per load error
//! (bad files are built with the `safetensors` crate directly), and interop
//! with Python's `safetensors.numpy` when it is installed.

use nnc::ir::program::Program;
use nnc::runtime::train::Params;
use nnc::runtime::weights::{self, FORMAT, FORMAT_KEY, SOURCE_HASH_KEY, WeightsError, WeightsErrorKind};
use safetensors::tensor::{Dtype, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A model with a scalar `param`, a layer with a bias and one without, and a
/// one-input layer whose weight `[1, n]` must stay 2-D.
const MIXED: &str = "
param x = 0.5
data { input a[1]  target y[2] }
model {
  h = dense(a, 3, tanh)
  g = dense(h, 4, relu, bias = false)
  out = dense(g, 2, identity)
}
loss mse(out, y) + x^2
";

fn program(source: &str) -> Program {
    match nnc::pipeline::frontend(source) {
        Ok(front) => front.program,
        Err(diags) => panic!("the test model does not check: {diags:?}"),
    }
}

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fresh, empty directory for one test.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("weights-tests").join(test);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn bits(params: &Params) -> Vec<u32> {
    params.values.iter().map(|x| x.to_bits()).collect()
}

/// Write a safetensors file of F32 tensors `(name, shape, values)`.
fn write_raw(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)], metadata: Option<HashMap<String, String>>) {
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views: Vec<(&str, TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| (*name, TensorView::new(Dtype::F32, shape.clone(), b).unwrap()))
        .collect();
    fs::write(path, safetensors::serialize(views, metadata).unwrap()).unwrap();
}

/// The tensors `program` needs, each filled with `0.25`, in their on-disk shapes.
fn good_tensors(program: &Program) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    program
        .graph
        .params
        .iter()
        .map(|p| {
            let shape = weights::disk_shape(p);
            let n = shape.iter().product();
            (p.name.clone(), shape, vec![0.25; n])
        })
        .collect()
}

fn write_tensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let borrowed: Vec<(&str, Vec<usize>, Vec<f32>)> =
        tensors.iter().map(|(n, s, v)| (n.as_str(), s.clone(), v.clone())).collect();
    write_raw(path, &borrowed, None);
}

fn load_err(path: &Path, program: &Program) -> WeightsError {
    match weights::load(path, program) {
        Ok(_) => panic!("{} loaded but should not have", path.display()),
        Err(e) => e,
    }
}

// ---- round trips ---------------------------------------------------------------------

fn round_trip(test: &str, source: &str, seed: u64) {
    let program = program(source);
    let params = Params::init(&program, seed);
    let dir = scratch_dir(test);
    let path = dir.join("model.safetensors");
    let mut metadata = BTreeMap::new();
    metadata.insert(SOURCE_HASH_KEY.to_string(), weights::source_hash(source));
    metadata.insert("nnc.epochs".to_string(), "200".to_string());
    weights::save(&path, &program, &params, &metadata).unwrap();

    let (loaded, read) = weights::load(&path, &program).unwrap();
    assert_eq!(bits(&loaded), bits(&params), "values differ bitwise");
    assert_eq!(loaded, params);
    let mut expected = metadata.clone();
    expected.insert(FORMAT_KEY.to_string(), FORMAT.to_string());
    expected.insert(weights::OPTIMIZER_KEY.to_string(), "sgd".to_string());
    expected.insert(weights::STEP_KEY.to_string(), "0".to_string());
    assert_eq!(read, expected);
    assert_eq!(weights::source_matches(&read, source), Some(true));
    assert_eq!(weights::source_matches(&read, "param y = 1"), Some(false));

    assert_eq!(mode(&path), 0o644);
    assert_eq!(entries(&dir), ["model.safetensors"], "a temporary file was left behind");
}

#[test]
fn iris_round_trips_bitwise_with_metadata() {
    round_trip("iris", &example("iris.nn"), 7);
}

#[test]
fn examples_round_trip() {
    round_trip("seed", &example("seed.nn"), 1);
    round_trip("minimize", &example("minimize.nn"), 0);
}

#[test]
fn scalar_param_and_layer_without_bias_round_trip() {
    round_trip("mixed", MIXED, 3);
}

#[test]
fn on_disk_shapes_follow_the_conventions() {
    let program = program(MIXED);
    let shapes: Vec<(&str, Vec<usize>)> =
        program.graph.params.iter().map(|p| (p.name.as_str(), weights::disk_shape(p))).collect();
    assert_eq!(
        shapes,
        [
            ("x", vec![]),
            ("h.w", vec![1, 3]),
            ("h.b", vec![3]),
            ("g.w", vec![3, 4]),
            ("out.w", vec![4, 2]),
            ("out.b", vec![2]),
        ]
    );
    // The file holds exactly these, as F32.
    let dir = scratch_dir("conventions");
    let path = dir.join("m.safetensors");
    weights::save(&path, &program, &Params::init(&program, 0), &BTreeMap::new()).unwrap();
    let bytes = fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = file.names();
    names.sort();
    assert_eq!(names, ["g.w", "h.b", "h.w", "out.b", "out.w", "x"]);
    for (name, shape) in shapes {
        let view = file.tensor(name).unwrap();
        assert_eq!(view.dtype(), Dtype::F32, "{name}");
        assert_eq!(view.shape(), shape.as_slice(), "{name}");
    }
    let x = file.tensor("x").unwrap();
    assert_eq!(f32::from_le_bytes(x.data().try_into().unwrap()), 0.5);
}

#[test]
fn friendly_shapes_load_too() {
    let program = program(MIXED);
    let dir = scratch_dir("friendly");
    let path = dir.join("m.safetensors");
    for (bias, scalar) in [(vec![1, 3], vec![1]), (vec![3], vec![1, 1])] {
        let mut tensors = good_tensors(&program);
        for t in &mut tensors {
            match t.0.as_str() {
                "h.b" => t.1 = bias.clone(),
                "x" => t.1 = scalar.clone(),
                _ => {}
            }
        }
        write_tensors(&path, &tensors);
        let (params, metadata) = weights::load(&path, &program).unwrap();
        assert!(params.get(0) == [0.25] && params.get(2) == [0.25; 3]);
        assert!(metadata.is_empty(), "a file without metadata has none: {metadata:?}");
    }
}

#[test]
fn source_hash_is_stable_fnv1a() {
    assert_eq!(weights::source_hash(""), "cbf29ce484222325");
    assert_eq!(weights::source_hash("foobar"), "85944171f73967e8");
    assert_eq!(weights::source_hash(MIXED).len(), 16);
    assert_ne!(weights::source_hash(MIXED), weights::source_hash(&example("iris.nn")));
}

// ---- writing -------------------------------------------------------------------------

#[test]
fn overwriting_replaces_the_file_and_sets_mode_0644() {
    let program = program(&example("iris.nn"));
    let dir = scratch_dir("overwrite");
    let path = dir.join("w.safetensors");
    fs::write(&path, b"old").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let params = Params::init(&program, 9);
    weights::save(&path, &program, &params, &BTreeMap::new()).unwrap();
    assert_eq!(mode(&path), 0o644);
    assert_eq!(weights::load(&path, &program).unwrap().0, params);
    assert_eq!(entries(&dir), ["w.safetensors"]);
}

#[test]
fn bytes_round_trip_without_a_file() {
    let program = program("param x = 2\nloss x^2");
    let bytes = weights::to_bytes("mem", &program, &Params::init(&program, 0), &BTreeMap::new()).unwrap();
    let (params, metadata) = weights::from_bytes("mem", &bytes, &program).unwrap();
    assert_eq!(params.get(0), [2.0]);
    assert_eq!(metadata[FORMAT_KEY], FORMAT);
}

#[test]
fn a_missing_directory_leaves_nothing_and_names_the_path() {
    let program = program(&example("iris.nn"));
    let dir = scratch_dir("missing-dir");
    let path = dir.join("no").join("such").join("w.safetensors");
    let err = weights::save(&path, &program, &Params::init(&program, 0), &BTreeMap::new()).unwrap_err();
    assert_eq!(err.kind, WeightsErrorKind::Write);
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.starts_with("cannot write weights file"), "{text}");
    assert!(entries(&dir).is_empty(), "{:?}", entries(&dir));
}

#[test]
fn saving_onto_a_directory_fails_and_leaves_nothing() {
    let program = program(&example("iris.nn"));
    let dir = scratch_dir("onto-dir");
    let target = dir.join("weights");
    fs::create_dir(&target).unwrap();
    let err = weights::save(&target, &program, &Params::init(&program, 0), &BTreeMap::new()).unwrap_err();
    assert_eq!(err.kind, WeightsErrorKind::Write);
    assert!(err.to_string().contains(&target.display().to_string()), "{err}");
    assert_eq!(entries(&dir), ["weights"]);
    assert!(entries(&target).is_empty());
}

#[test]
fn non_finite_values_are_not_saved() {
    let program = program(&example("iris.nn"));
    let dir = scratch_dir("save-nan");
    let path = dir.join("w.safetensors");
    let mut params = Params::init(&program, 0);
    params.get_mut(0)[8 + 5] = f32::NAN; // h.w is [4, 8]: row 1, column 5
    let err = weights::save(&path, &program, &params, &BTreeMap::new()).unwrap_err();
    assert_eq!(err.kind, WeightsErrorKind::NonFinite);
    assert!(err.to_string().contains("`h.w` holds NaN at [1, 5]"), "{err}");
    assert!(entries(&dir).is_empty());
}

#[test]
fn params_of_another_model_are_refused() {
    let iris = program(&example("iris.nn"));
    let other = program(MIXED);
    let dir = scratch_dir("mismatch");
    let err = weights::save(&dir.join("w.safetensors"), &iris, &Params::init(&other, 0), &BTreeMap::new()).unwrap_err();
    assert_eq!(err.kind, WeightsErrorKind::Mismatch);
    assert!(entries(&dir).is_empty());
}

// ---- load errors ---------------------------------------------------------------------

#[test]
fn a_missing_file_is_named() {
    let program = program(&example("iris.nn"));
    let path = scratch_dir("no-file").join("absent.safetensors");
    let err = load_err(&path, &program);
    assert_eq!(err.kind, WeightsErrorKind::Read);
    assert!(err.to_string().starts_with(&format!("cannot read weights file {}: ", path.display())), "{err}");
}

#[test]
fn a_corrupt_file_is_not_safetensors() {
    let program = program(&example("iris.nn"));
    let dir = scratch_dir("corrupt");
    for (name, bytes) in [
        ("short", b"abc".to_vec()),
        ("text", b"h.w,h.b\n1,2\n".to_vec()),
        ("bad-json", [&8u64.to_le_bytes()[..], b"{not json"].concat()),
    ] {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        let err = load_err(&path, &program);
        assert_eq!(err.kind, WeightsErrorKind::NotSafetensors, "{name}");
        assert!(err.to_string().starts_with(&format!("{} is not a safetensors file", path.display())), "{err}");
    }
    // A truncated good file.
    let path = dir.join("truncated");
    weights::save(&path, &program, &Params::init(&program, 0), &BTreeMap::new()).unwrap();
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
    assert_eq!(load_err(&path, &program).kind, WeightsErrorKind::NotSafetensors);
}

#[test]
fn a_missing_tensor_names_the_layer_and_what_the_file_has() {
    let program = program(&example("iris.nn"));
    let dir = scratch_dir("missing-tensor");
    let path = dir.join("w.safetensors");
    let mut tensors = good_tensors(&program);
    tensors.retain(|t| t.0 != "h.w");
    write_tensors(&path, &tensors);
    let err = load_err(&path, &program);
    assert_eq!(err.kind, WeightsErrorKind::MissingTensor);
    assert_eq!(err.tensor.as_deref(), Some("h.w"));
    assert_eq!(
        err.message,
        format!(
            "{} has no tensor `h.w` (the model's layer `h` needs it; the file has: h.b, out.b, out.w)",
            path.display()
        )
    );

    // A near miss gets a suggestion.
    let mut tensors = good_tensors(&program);
    tensors[0].0 = "h.W".to_string();
    write_tensors(&path, &tensors);
    let err = load_err(&path, &program);
    assert_eq!(err.tensor.as_deref(), Some("h.w"));
    assert!(err.to_string().contains("\n  help: did you mean `h.W`?"), "{err}");

    // A scalar param is named as one.
    let program = self::program("param x = 0\nloss x^2");
    write_raw(&path, &[], None);
    let err = load_err(&path, &program);
    assert!(
        err.message.contains("has no tensor `x` (the model's param `x` needs it; the file has no tensors)"),
        "{err}"
    );
}

#[test]
fn a_wrong_shape_names_the_tensor_and_both_shapes() {
    let program = program(&example("iris.nn"));
    let dir = scratch_dir("shape");
    let path = dir.join("w.safetensors");
    let mut tensors = good_tensors(&program);
    tensors[0].1 = vec![3, 8];
    tensors[0].2 = vec![0.0; 24];
    write_tensors(&path, &tensors);
    let err = load_err(&path, &program);
    assert_eq!(err.kind, WeightsErrorKind::Shape);
    assert_eq!(err.message, format!("`h.w` in {} has shape [3, 8] but the model needs [4, 8]", path.display()));
    assert!(err.to_string().contains("help: layer `h` has 4 inputs and 8 units"), "{err}");

    // A transposed weight is wrong too, even with the same number of values.
    tensors[0].1 = vec![8, 4];
    tensors[0].2 = vec![0.0; 32];
    write_tensors(&path, &tensors);
    assert!(load_err(&path, &program).message.contains("has shape [8, 4] but the model needs [4, 8]"));

    // A bias of the wrong length.
    let mut tensors = good_tensors(&program);
    tensors[1].1 = vec![7];
    tensors[1].2 = vec![0.0; 7];
    write_tensors(&path, &tensors);
    let err = load_err(&path, &program);
    assert_eq!(err.tensor.as_deref(), Some("h.b"));
    assert!(err.message.contains("has shape [7] but the model needs [8]"), "{err}");
}

#[test]
fn a_wrong_dtype_is_refused() {
    let program = program("param x = 0\nloss x^2");
    let dir = scratch_dir("dtype");
    let path = dir.join("w.safetensors");
    let data = 1.0f64.to_le_bytes();
    let view = TensorView::new(Dtype::F64, vec![], &data).unwrap();
    fs::write(&path, safetensors::serialize([("x", view)], None).unwrap()).unwrap();
    let err = load_err(&path, &program);
    assert_eq!(err.kind, WeightsErrorKind::Dtype);
    assert_eq!(err.message, format!("`x` in {} has dtype F64 but nnc weights are F32", path.display()));
}

#[test]
fn an_extra_tensor_means_another_model() {
    let program = program(&example("iris.nn"));
    let dir = scratch_dir("extra");
    let path = dir.join("w.safetensors");
    let mut tensors = good_tensors(&program);
    tensors.push(("h2.w".to_string(), vec![8, 8], vec![0.0; 64]));
    write_tensors(&path, &tensors);
    let err = load_err(&path, &program);
    assert_eq!(err.kind, WeightsErrorKind::ExtraTensor);
    assert_eq!(err.tensor.as_deref(), Some("h2.w"));
    assert!(err.message.contains("has a tensor `h2.w` that the model does not have"), "{err}");
    assert!(err.message.contains("h.w, h.b, out.w, out.b"), "{err}");
    assert!(err.to_string().contains("help: the file was probably saved from a different model"));
}

#[test]
fn non_finite_values_name_tensor_and_index() {
    let program = program(&example("iris.nn"));
    let dir = scratch_dir("load-nan");
    let path = dir.join("w.safetensors");
    for (value, word) in [(f32::NAN, "NaN"), (f32::INFINITY, "+infinity"), (f32::NEG_INFINITY, "-infinity")] {
        let mut tensors = good_tensors(&program);
        tensors[2].2[3 * 3 + 1] = value; // out.w is [8, 3]: row 3, column 1
        write_tensors(&path, &tensors);
        let err = load_err(&path, &program);
        assert_eq!(err.kind, WeightsErrorKind::NonFinite);
        assert_eq!(err.message, format!("`out.w` in {} holds {word} at [3, 1]", path.display()));
    }
}

#[test]
fn a_newer_format_is_refused_but_foreign_formats_load() {
    let program = program(&example("iris.nn"));
    let dir = scratch_dir("format");
    let path = dir.join("w.safetensors");
    let tensors = good_tensors(&program);
    let borrowed: Vec<(&str, Vec<usize>, Vec<f32>)> =
        tensors.iter().map(|(n, s, v)| (n.as_str(), s.clone(), v.clone())).collect();
    let meta = |v: &str| Some(HashMap::from([(FORMAT_KEY.to_string(), v.to_string())]));
    write_raw(&path, &borrowed, meta("nnc-weights-2"));
    let err = load_err(&path, &program);
    assert_eq!(err.kind, WeightsErrorKind::UnknownFormat);
    assert!(err.message.contains("`nnc-weights-2`"), "{err}");
    // PyTorch's `save_file` writes "format": "pt".
    write_raw(&path, &borrowed, meta("pt"));
    assert_eq!(weights::load(&path, &program).unwrap().1["format"], "pt");
}

// ---- Python interop ------------------------------------------------------------------

fn python_has_safetensors() -> bool {
    match Command::new("python3").args(["-c", "import safetensors.numpy, numpy"]).output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "note: skipping the Python interop check, safetensors/numpy are missing: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("note: skipping the Python interop check, no python3: {e}");
            false
        }
    }
}

fn python(script: &str, args: &[&Path]) -> String {
    let out = Command::new("python3").arg("-c").arg(script).args(args).output().unwrap();
    assert!(out.status.success(), "python failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

const PY_READ: &str = r#"
import json, sys, numpy, safetensors, safetensors.numpy
path = sys.argv[1]
tensors = safetensors.numpy.load_file(path)
with safetensors.safe_open(path, "np") as f:
    metadata = f.metadata()
print(json.dumps({
    "tensors": {name: {"shape": list(a.shape), "dtype": str(a.dtype),
                       "sum": float(a.astype(numpy.float64).sum()),
                       "values": [float(x) for x in a.ravel()]}
                for name, a in tensors.items()},
    "metadata": metadata,
}))
"#;

const PY_WRITE: &str = r#"
import sys, numpy, safetensors.numpy
f = numpy.float32
safetensors.numpy.save_file({
    "x": numpy.array(1.5, dtype=f),
    "h.w": numpy.arange(3, dtype=f).reshape(1, 3) / 4,
    "h.b": numpy.array([0.5, -0.5, 2.0], dtype=f),
    "g.w": numpy.linspace(-1, 1, 12, dtype=f).reshape(3, 4),
    "out.w": numpy.full((4, 2), 0.125, dtype=f),
    "out.b": numpy.array([1.0, -1.0], dtype=f),
}, sys.argv[1], metadata={"nnc.source_hash": "0123456789abcdef", "who": "python"})
"#;

#[test]
fn python_interop_numpy_reads_what_nnc_writes_and_back() {
    if !python_has_safetensors() {
        return;
    }
    let program = program(MIXED);
    let params = Params::init(&program, 11);
    let dir = scratch_dir("python");
    let path = dir.join("from-rust.safetensors");
    let metadata = BTreeMap::from([(SOURCE_HASH_KEY.to_string(), weights::source_hash(MIXED))]);
    weights::save(&path, &program, &params, &metadata).unwrap();

    let report: serde_json::Value = serde_json::from_str(&python(PY_READ, &[&path])).unwrap();
    let tensors = report["tensors"].as_object().unwrap();
    assert_eq!(tensors.len(), program.graph.params.len());
    for (i, param) in program.graph.params.iter().enumerate() {
        let t = &tensors[&param.name];
        let shape: Vec<usize> = t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        assert_eq!(shape, weights::disk_shape(param), "{}", param.name);
        assert_eq!(t["dtype"], "float32", "{}", param.name);
        let ours = params.get(i);
        let theirs: Vec<f32> = t["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(
            theirs.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            ours.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            "{}",
            param.name
        );
        let sum: f64 = ours.iter().map(|&x| x as f64).sum();
        let py_sum = t["sum"].as_f64().unwrap();
        assert!((sum - py_sum).abs() <= 1e-12 * (1.0 + sum.abs()), "{}: {sum} vs {py_sum}", param.name);
    }
    assert_eq!(report["metadata"][SOURCE_HASH_KEY], weights::source_hash(MIXED));
    assert_eq!(report["metadata"][FORMAT_KEY], FORMAT);

    // And nnc reads what numpy writes.
    let path = dir.join("from-python.safetensors");
    python(PY_WRITE, &[&path]);
    let (loaded, metadata) = weights::load(&path, &program).unwrap();
    assert_eq!(loaded.get(0), [1.5]);
    assert_eq!(loaded.get(1), [0.0, 0.25, 0.5]);
    assert_eq!(loaded.get(2), [0.5, -0.5, 2.0]);
    assert_eq!(loaded.get(3).len(), 12);
    assert_eq!((loaded.get(3)[0], loaded.get(3)[11]), (-1.0, 1.0));
    assert_eq!(loaded.get(4), [0.125; 8]);
    assert_eq!(loaded.get(5), [1.0, -1.0]);
    assert_eq!(metadata["who"], "python");
    assert_eq!(metadata[SOURCE_HASH_KEY], "0123456789abcdef");
}
