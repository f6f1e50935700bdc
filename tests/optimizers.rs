//! nnc's optimizers against PyTorch's update rules, on a fixed sequence of
//! gradients; optimizer state saved and resumed; the optimizer examples.
//!
//! The expected numbers come from `peers/optimizers.py` (PyTorch's formulas
//! in numpy float64, checked against torch.optim when it is installed),
//! stored in `tests/data/optimizers.json`; nothing here computes them. The
//! model makes every step's gradient its data row, whatever the weights:
//!
//! ```text
//! data  { input x[3]  target t[5] }
//! param s = 0.5
//! model { h = dense(x, 5, identity) }     # d/d h.w = outer(x, t), d/d h.b = t
//! loss sum(h * t) + s * sum(x)            # d/d s = sum(x)
//! ```
//!
//! For each case (sgd, momentum, Nesterov with weight decay, Adam with
//! default and other constants, AdamW, and the step, exponential and cosine
//! schedules) the training kernel is called once per step, one row at a time,
//! and every parameter is compared with the script's after every step, to f32
//! tolerance; the reference interpreter (f64) must match to 1e-9. Then the
//! same through `runtime::train` over two epochs in one run, and in two runs
//! with the optimizer state saved to a weights file and loaded in between:
//! final parameters, final state tensors and the step count must match.

mod common;
use common::nnc;

use common::{assert_all_close, to_f64};
use nnc::codegen::{KernelArgs, Options};
use nnc::ir::interp::{self, Env, Tensor};
use nnc::ir::program::{HyperContext, Program};
use nnc::pipeline::{self, Graphs, Native};
use nnc::runtime::data::Dataset;
use nnc::runtime::train::{self, Params, RunConfig};
use nnc::runtime::weights;
use serde_json::Value;
use std::collections::BTreeMap;

/// f32 kernels against float64 numbers: the largest error seen is 2.2e-7
/// (printed with `--nocapture`), so this leaves a margin of ten.
const RTOL: f64 = 2e-6;
const ATOL: f64 = 2e-6;
/// The f64 interpreter against float64 numbers written the other way round.
const INTERP_TOL: f64 = 1e-9;

fn reference() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/optimizers.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e} (run peers/optimizers.py)"));
    serde_json::from_str(&text).expect("valid JSON")
}

fn numbers(value: &Value) -> Vec<f64> {
    value.as_array().expect("a list").iter().map(|v| v.as_f64().expect("a number")).collect()
}

fn source(case: &Value) -> String {
    format!(
        "data {{ input x[3]  target t[5] }}
        param s = 0.5
        model {{ h = dense(x, 5, identity) }}
        loss sum(h * t) + s * sum(x)
        train {{ optimizer = {}  schedule = {}  batch = 1  epochs = 2 }}",
        case["optimizer"].as_str().unwrap(),
        case["schedule"].as_str().unwrap()
    )
}

struct Model {
    program: Program,
    graphs: Graphs,
    native: Native,
}

fn compile(source: &str, rows: usize) -> Model {
    let program = common::program(source);
    let graphs = pipeline::graphs(&program);
    let kernels = pipeline::kernels(&graphs, 1, rows).expect("lowers");
    let native =
        pipeline::compile(&program, &kernels, Options { verify: true, ..Options::default() }).expect("compiles");
    Model { program, graphs, native }
}

/// The data rows, as the model binds them.
fn dataset(data: &Value) -> Dataset {
    let rows =
        |key: &str| -> Vec<f32> { data[key].as_array().unwrap().iter().flat_map(numbers).map(|x| x as f32).collect() };
    let n = data["rows"].as_u64().unwrap() as usize;
    Dataset { rows: n, inputs: vec![rows("x")], targets: vec![rows("t")], has_targets: true }
}

/// The script's initial parameters in nnc's packed layout, with fresh state.
fn initial(model: &Model, data: &Value) -> Params {
    let mut params = Params::init(&model.program, 0);
    for (i, param) in model.program.graph.params.iter().enumerate() {
        let values = numbers(&data["init"][&param.name]);
        params.get_mut(i).copy_from_slice(&values.iter().map(|&x| x as f32).collect::<Vec<_>>());
    }
    params
}

/// Every parameter by name, unpadded.
fn by_name(model: &Model, params: &Params) -> BTreeMap<String, Vec<f64>> {
    let names = model.program.graph.params.iter().map(|p| p.name.clone());
    names.enumerate().map(|(i, name)| (name, to_f64(params.get(i)))).collect()
}

fn expected(step: &Value) -> BTreeMap<String, Vec<f64>> {
    step.as_object().unwrap().iter().map(|(name, values)| (name.clone(), numbers(values))).collect()
}

fn assert_params(what: &str, got: &BTreeMap<String, Vec<f64>>, want: &BTreeMap<String, Vec<f64>>, tol: f64) {
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{what}: parameter names");
    for (name, values) in want {
        assert_all_close(&format!("{what}: {name}"), &got[name], values, tol, tol);
    }
}

/// One call of the training kernel on data row `row`: one optimizer step.
fn kernel_step(model: &Model, data: &Dataset, params: &mut Params, row: usize) -> f32 {
    let hypers = HyperContext {
        learning_rate: model.program.train.learning_rate.value as f32 as f64,
        schedule: model.program.train.schedule.value,
    };
    let mut scratch = vec![f32::NAN; model.native.train.kernel.scratch_len.max(1)];
    let mut loss = [f32::NAN];
    let inputs = [data.inputs[0][row * 3..].as_ptr()];
    let targets = [data.targets[0][row * 5..].as_ptr()];
    let args = KernelArgs {
        params: params.values.as_mut_ptr(),
        scratch: scratch.as_mut_ptr(),
        losses: loss.as_mut_ptr(),
        inputs: inputs.as_ptr(),
        targets: targets.as_ptr(),
        rows: 1,
        batch: 1,
        learning_rate: model.program.train.learning_rate.value as f32,
        state: params.state.values.as_mut_ptr(),
        step: params.state.step as i64,
        hypers: &hypers,
        ..KernelArgs::default()
    };
    // SAFETY: the parameters and state are packed as the program declares,
    // the scratch is the kernel's size, one loss for one batch of one row,
    // and the data pointers point at a whole row of each matrix.
    unsafe { model.native.train.call(&args) };
    params.state.step += 1;
    loss[0]
}

#[test]
fn every_optimizer_follows_pytorchs_formulas_step_by_step() {
    let data = reference();
    let rows = data["rows"].as_u64().unwrap() as usize;
    let cases = data["cases"].as_array().unwrap();
    assert!(cases.len() >= 6, "sgd, momentum, nesterov, adam, adamw and a schedule at least");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let model = compile(&source(case), rows);
        let table = dataset(&data);
        let trajectory = case["trajectory"].as_array().unwrap();
        assert_eq!(trajectory.len(), rows * data["epochs"].as_u64().unwrap() as usize);

        // The compiled kernel, one step per call.
        let mut params = initial(&model, &data);
        let mut largest: f64 = 0.0;
        for (step, want) in trajectory.iter().enumerate() {
            kernel_step(&model, &table, &mut params, step % rows);
            let what = format!("{name} (kernel), after step {}", step + 1);
            let (got, want) = (by_name(&model, &params), expected(want));
            assert_params(&what, &got, &want, RTOL.max(ATOL));
            for (name, values) in &want {
                let diffs = values.iter().zip(&got[name]).map(|(w, g)| (g - w).abs() / (1.0 + w.abs()));
                largest = diffs.fold(largest, f64::max);
            }
        }
        eprintln!("{name}: largest kernel error |got - want| / (1 + |want|) = {largest:.2e}");

        // The reference interpreter, in f64, on the same graph, from the
        // script's f64 initial values.
        let tensors = model.program.graph.params.iter().map(|p| {
            let (rows, cols) = (p.shape.rows.resolve(1), p.shape.cols.resolve(1));
            Tensor::new(rows, cols, numbers(&data["init"][&p.name]))
        });
        let mut env = Env {
            params: tensors.collect(),
            learning_rate: model.program.train.learning_rate.value,
            schedule: model.program.train.schedule.value,
            ..Env::default()
        };
        for (step, want) in trajectory.iter().enumerate() {
            let row = step % rows;
            let (x, t) = (&table.inputs[0][row * 3..row * 3 + 3], &table.targets[0][row * 5..row * 5 + 5]);
            env.inputs = vec![Tensor::new(1, 3, to_f64(x))];
            env.targets = vec![Tensor::new(1, 5, to_f64(t))];
            interp::train_step(&model.graphs.train, &mut env);
            let got = model.program.graph.params.iter().zip(&env.params).map(|(p, t)| (p.name.clone(), t.data.clone()));
            let what = format!("{name} (interpreter), after step {}", step + 1);
            assert_params(&what, &got.collect(), &expected(want), INTERP_TOL);
        }
        assert_eq!(env.step, trajectory.len() as u64);
    }
}

fn state_by_name(params: &Params) -> BTreeMap<String, Vec<f64>> {
    let state = &params.state;
    state.names.iter().enumerate().map(|(i, name)| (name.clone(), to_f64(state.get(i)))).collect()
}

#[test]
fn runtime_training_saves_and_resumes_the_state() {
    let data = reference();
    let rows = data["rows"].as_u64().unwrap() as usize;
    for case in data["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let model = compile(&source(case), rows);
        let table = dataset(&data);
        let trajectory = case["trajectory"].as_array().unwrap();
        let want = expected(trajectory.last().unwrap());
        let want_state = expected(&case["final_state"]);
        let config = |epochs| RunConfig {
            epochs,
            batch: 1,
            learning_rate: model.program.train.learning_rate.value as f32,
            seed: 0,
            shuffle: false,
        };
        let run = |epochs, init| {
            train::train(&model.program, &model.native.train, Some(&table), &config(epochs), init, |_, _, _| {})
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .params
        };

        // Two epochs in one run: the step counter continues across kernel calls.
        let both = run(2, initial(&model, &data));
        assert_params(&format!("{name}: two epochs"), &by_name(&model, &both), &want, RTOL.max(ATOL));
        assert_params(&format!("{name}: final state"), &state_by_name(&both), &want_state, RTOL.max(ATOL));
        assert_eq!(both.state.step, 2 * rows as u64, "{name}: steps taken");

        // One epoch, saved (with the state and the step), loaded, one more.
        let first = run(1, initial(&model, &data));
        let bytes = weights::to_bytes("resume.safetensors", &model.program, &first, &BTreeMap::new())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (loaded, metadata) =
            weights::from_bytes("resume.safetensors", &bytes, &model.program).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(loaded, first, "{name}: weights and state survive the file");
        assert_eq!(metadata.get(weights::STEP_KEY).map(String::as_str), Some("8"));
        let resumed = run(1, loaded);
        assert_params(&format!("{name}: resumed"), &by_name(&model, &resumed), &want, RTOL.max(ATOL));
        assert_params(&format!("{name}: resumed state"), &state_by_name(&resumed), &want_state, RTOL.max(ATOL));
    }
}

#[test]
fn state_tensors_are_named_and_all_or_nothing() {
    let data = reference();
    let case = data["cases"].as_array().unwrap().iter().find(|c| c["name"] == "adam").unwrap();
    let model = compile(&source(case), 8);
    let mut params = initial(&model, &data);
    params.state.values.iter_mut().enumerate().for_each(|(i, x)| *x = i as f32 / 100.0);
    params.state.step = 5;
    let bytes = weights::to_bytes("w", &model.program, &params, &BTreeMap::new()).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = file.names();
    names.sort_unstable();
    assert_eq!(
        names,
        ["h.b", "h.b.adam_m", "h.b.adam_v", "h.w", "h.w.adam_m", "h.w.adam_v", "s", "s.adam_m", "s.adam_v"]
    );
    assert_eq!(file.tensor("h.b.adam_v").unwrap().shape(), [5], "state is stored like its parameter");
    assert_eq!(file.tensor("s.adam_m").unwrap().shape(), [0usize; 0]);

    // Without state (the weights of a plain sgd run): the state starts at zero, at step 0.
    let sgd = compile(&source(&data["cases"][0]), 8);
    let plain = weights::to_bytes("w", &sgd.program, &initial(&sgd, &data), &BTreeMap::new()).unwrap();
    let (loaded, _) = weights::from_bytes("w", &plain, &model.program).unwrap();
    assert!(loaded.state.values.iter().all(|&x| x == 0.0));
    assert_eq!((loaded.state.step, loaded.state.names.len()), (0, 6));
    // Adam's state in a file loaded by a plain sgd model: ignored.
    let (loaded, _) = weights::from_bytes("w", &bytes, &sgd.program).unwrap();
    assert_eq!(loaded.values, params.values);
    // Part of the state: refused, naming what is missing.
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for name in file.names() {
        if name != "s.adam_v" {
            let view = file.tensor(name).unwrap();
            tensors.push((name.to_string(), view.shape().to_vec(), view.data().to_vec()));
        }
    }
    let views: Vec<_> = tensors
        .iter()
        .map(|(n, s, d)| {
            (n.as_str(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap())
        })
        .collect();
    let partial = safetensors::serialize(views, None).unwrap();
    let err = weights::from_bytes("w", &partial, &model.program).unwrap_err();
    assert_eq!(err.kind, weights::WeightsErrorKind::MissingTensor);
    assert!(err.message.contains("`s.adam_v`"), "{}", err.message);
}

// ---- the examples, end to end through the binary -------------------------------------

fn run_json(args: &[&str]) -> (Value, String) {
    let output = nnc(args);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "nnc {args:?} failed:\n{stderr}");
    (serde_json::from_slice(&output.stdout).expect("one JSON object"), stderr)
}

#[test]
fn adam_example_learns_digits() {
    let (json, stderr) = run_json(&["run", "examples/adam.nn", "examples/digits.csv", "--json"]);
    assert!(stderr.contains("optimizer  adam, lr 0.003, betas (0.9, 0.999), eps 1e-8"), "{stderr}");
    assert!(stderr.contains("schedule   cosine over 900 steps down to 0.0001"), "{stderr}");
    assert!(json["accuracy"].as_f64().unwrap() > 0.95, "{json}");
    assert!(json["validation"]["accuracy"].as_f64().unwrap() > 0.85, "{json}");
    assert_eq!(json["optimizer"], "adam");
    assert_eq!(json["step"], 900);
}

#[test]
fn adamw_example_fits_diabetes() {
    let (json, stderr) = run_json(&["run", "examples/adamw.nn", "examples/diabetes.csv", "--json"]);
    assert!(stderr.contains("optimizer  adamw, lr 0.01, betas (0.9, 0.999), eps 1e-8, weight decay 0.01"), "{stderr}");
    assert!(stderr.contains("schedule   exponential, × 0.999 per step"), "{stderr}");
    assert!(json["metrics"]["r2"].as_f64().unwrap() > 0.6, "{json}");
}

#[test]
fn momentum_example_saves_and_resumes_its_state() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("optimizers");
    std::fs::create_dir_all(&dir).unwrap();
    let (first, second, whole) = (dir.join("first.safetensors"), dir.join("second.safetensors"), dir.join("whole"));
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let base = ["run", "examples/momentum.nn", "examples/iris.csv", "--json", "--no-shuffle"];
    let (json, stderr) = run_json(&[&base[..], &["--save-weights", &s(&whole)]].concat());
    assert!(stderr.contains("optimizer  sgd, lr 0.02, momentum 0.9, nesterov"), "{stderr}");
    assert!(stderr.contains("schedule   step, × 0.5 every 200 steps; this run takes steps 1 to 1000"), "{stderr}");
    assert!(json["accuracy"].as_f64().unwrap() > 0.95, "{json}");

    // 50 epochs, then 50 more from the saved weights and momentum buffers.
    run_json(&[&base[..], &["--epochs", "50", "--save-weights", &s(&first)]].concat());
    let (_, stderr) = run_json(
        &[&base[..], &["--epochs", "50", "--init-weights", &s(&first), "--save-weights", &s(&second)]].concat(),
    );
    assert!(stderr.contains("with optimizer state after step 500"), "{stderr}");
    assert!(stderr.contains("this run takes steps 501 to 1000"), "{stderr}");
    let program = common::program(&common::example("momentum.nn"));
    let (resumed, metadata) = weights::load(&second, &program).unwrap();
    let (straight, _) = weights::load(&whole, &program).unwrap();
    assert_eq!(metadata.get(weights::STEP_KEY).map(String::as_str), Some("1000"));
    assert_eq!(resumed.state.step, 1000);
    // In file order the two halves make exactly the straight run's steps.
    assert_eq!(resumed, straight, "50 + 50 epochs, resumed, are the 100 epochs of one run");
    assert!(resumed.state.values.iter().any(|&x| x != 0.0), "the momentum buffers are saved");
}
