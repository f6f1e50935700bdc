//! Threads never change the answer: `nnc run --threads N` gives bitwise the
//! same trained weights (and losses) for 1, 2 and 3 threads.
//!
//! Two ways threads are used, each tested here: the loop nests of a kernel
//! with enough work per batch are shared out between a team of threads
//! (`kernel::parallel`; `NNC_TEAM=always` makes every batch run on the team,
//! which otherwise runs only while it is faster than one thread), and large
//! library products are cut into blocks run on a pool.
//!
//! The model is wide enough that its large products go to the library GEMM
//! (`kernel::GEMM_MIN_MACS`), whose output is cut into several blocks (a
//! 512-wide layer: four), and large enough (64 × 1024 × 512 = 2²⁵
//! multiply-adds, `codegen::gemm`'s threshold) that the blocks are handed
//! to the pool's threads with 2 and 3 threads; the kernels are checked to
//! call the GEMM, so the test cannot pass by running everything in loop
//! nests on one thread.

mod common;

use common::{Rng, nnc};
use std::path::{Path, PathBuf};

const MODEL: &str = "data { input x[1024]  target y = one_hot(10) }
model {
  h   = dense(x, 512, relu)
  out = dense(h, 10, softmax)
}
loss cross_entropy(out, y)
train { optimizer = adam(lr = 0.01)  epochs = 2  batch = 64 }
";

fn tempdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `rows` rows of `inputs` uniform features in ±`range` and a class label
/// below `classes`, from `seed`.
fn data_csv(rows: usize, inputs: usize, range: f64, classes: usize, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let mut text = String::new();
    for _ in 0..rows {
        for _ in 0..inputs {
            text.push_str(&format!("{:.5},", rng.uniform(-range, range)));
        }
        text.push_str(&format!("{}\n", rng.below(classes)));
    }
    text
}

#[test]
fn weights_are_bitwise_the_same_for_1_2_and_3_threads() {
    let dir = tempdir("threads");
    let model = dir.join("wide.nn");
    let data = dir.join("wide.csv");
    std::fs::write(&model, MODEL).unwrap();
    // 200 rows: three full batches of 64 and a partial one.
    std::fs::write(&data, data_csv(200, 1024, 1.0, 10, 12)).unwrap();
    let (model, data) = (model.to_str().unwrap(), data.to_str().unwrap());

    let kernel = nnc(&["ir", model, "--stage", "kernel"]);
    let kernel = String::from_utf8_lossy(&kernel.stdout);
    assert!(kernel.contains("= gemm("), "the products should be library GEMM calls:\n{kernel}");

    let mut runs = Vec::new();
    for threads in ["1", "2", "3"] {
        let weights = dir.join(format!("weights-{threads}.safetensors"));
        let output = nnc(&["run", model, data, "--threads", threads, "--save-weights", weights.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "--threads {threads}: {stderr}");
        assert!(stderr.contains(&format!("threads    {threads} (flag)")), "the thread count is echoed:\n{stderr}");
        runs.push((threads, std::fs::read(&weights).unwrap(), String::from_utf8_lossy(&output.stdout).to_string()));
    }
    let (_, first_weights, first_stdout) = &runs[0];
    for (threads, weights, stdout) in &runs[1..] {
        assert!(weights == first_weights, "--threads {threads} trained other weights than --threads 1");
        assert_eq!(stdout, first_stdout, "--threads {threads} reported another loss than --threads 1");
    }
}

/// A model whose step is fused loop nests and 64-wide products, at batch
/// 256: enough work per batch for a team (`kernel::parallel::PARALLEL_MIN_WORK`).
const FUSED: &str = "data { input x[20]  target y = one_hot(3) }
model {
  h0  = dense(x, 64, relu)
  h1  = dense(h0, 64, tanh)
  out = dense(h1, 3, softmax)
}
loss cross_entropy(out, y)
train { optimizer = adam(lr = 0.01)  epochs = 2  batch = 256 }
";

#[test]
fn a_team_trains_bitwise_the_weights_one_thread_trains() {
    let dir = tempdir("threads-team");
    let model = dir.join("fused.nn");
    let data = dir.join("fused.csv");
    std::fs::write(&model, FUSED).unwrap();
    // 4500 rows: 17 full batches and a partial one of 148 rows, whose
    // share between threads ends mid-way through a vector loop; the final
    // evaluation runs in a chunk of 4096 rows (a kernel with blocked rows,
    // `vectorize::BLOCKED_EVAL_MIN_ROWS`) and one of 404.
    std::fs::write(&data, data_csv(4500, 20, 2.0, 3, 7)).unwrap();
    let (model, data) = (model.to_str().unwrap(), data.to_str().unwrap());
    let run = |threads: &str, team: &str| {
        let weights = dir.join(format!("weights-{threads}-{team}.safetensors"));
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_nnc"))
            .args(["run", model, data, "--threads", threads, "--save-weights", weights.to_str().unwrap()])
            .env("NNC_TEAM", team)
            .output()
            .expect("the nnc binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "--threads {threads}: {stderr}");
        if team == "always" {
            let share = format!("{threads} threads on 100% of batches");
            assert!(stderr.contains(&share), "every batch runs on the team:\n{stderr}");
        }
        (std::fs::read(&weights).unwrap(), String::from_utf8_lossy(&output.stdout).to_string())
    };
    let (weights, stdout) = run("1", "never");
    for (threads, team) in [("2", "always"), ("3", "always"), ("2", "auto")] {
        let (team_weights, team_stdout) = run(threads, team);
        assert!(team_weights == weights, "--threads {threads} (NNC_TEAM={team}) trained other weights");
        assert_eq!(team_stdout, stdout, "--threads {threads} (NNC_TEAM={team}) reported another loss");
    }
}

#[test]
fn zero_threads_is_a_usage_error() {
    let output = nnc(&["run", "examples/iris.nn", "examples/iris.csv", "--threads", "0"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--threads must be at least 1"));
}
