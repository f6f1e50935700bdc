//! Pass filetests, Cranelift style: every `tests/passes/<pass>/*.ir` file is
//! one case — a graph in IR text (read with `ir::parse`), a header naming
//! what to run, and directives matched against the printed result.
//!
//! ```text
//! ; pass: simplify
//! graph {
//!   ..
//! }
//! ; check: %5: f32[B,3] = relu %4
//! ; next:  return loss = %5
//! ; not:   const 0
//! ```
//!
//! Header lines: `; pass: autodiff | optimizer | simplify | softmax |
//! inference | lower | vectorize` (required); for `optimizer`, `; optimizer: sgd | momentum 0.9 |
//! nesterov 0.9 | adam | adamw` (default sgd) and `; schedule: constant |
//! exponential 0.9` (default constant); for `lower` and `vectorize`, `; kernel:
//! train | eval | predict` (default train) and `; batch: N` (default 32).
//! The graph passes print the graph (`ir::print`); `lower` prints the kernel
//! IR before vectorisation, `vectorize` after it (`kernel::print`). Every
//! graph result is verified (`ir::verify`) before it is matched.
//!
//! Directives, in order, each from where the last match ended:
//! - `check: P` — `P` occurs later (on the same line or after it);
//! - `next: P` — the line right after the last match's line contains `P`;
//! - `not: P` — `P` does not occur between the last match and the next
//!   `check`/`next` match (or the end).
//!
//! Patterns are literal text: ids in the printed IR are deterministic, so
//! the variables and regular expressions of the `filecheck` crate are not
//! needed, and ~80 lines here give a failure message that shows the
//! output with the place matching stopped.
//!
//! A failing file is reported with the directive, its line in the file and
//! the output; every file is run and all failures are reported together.
//! To write a new case, `PASSES_SHOW=1 cargo test --test passes -- --nocapture`
//! prints every file's output.

use nnc::ir::program::{AdamConfig, Optimizer, Schedule};
use nnc::ir::{self, Graph};
use nnc::kernel::{self, KernelKind};
use nnc::{autodiff, opt, optimizer};
use std::path::{Path, PathBuf};

const PASSES: &[&str] = &["autodiff", "optimizer", "simplify", "softmax", "inference", "lower", "vectorize", "shard"];

#[test]
fn pass_filetests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/passes");
    let mut failures = Vec::new();
    let mut counts = Vec::new();
    for pass in PASSES {
        let files = ir_files(&root.join(pass));
        counts.push(format!("{pass}: {}", files.len()));
        assert!(files.len() >= 3, "tests/passes/{pass} has {} cases, want 3 or more", files.len());
        for file in files {
            let text = std::fs::read_to_string(&file).expect("readable");
            if let Err(message) = run_file(&text, pass) {
                failures.push(format!("{}: {message}", file.strip_prefix(&root).unwrap_or(&file).display()));
            }
        }
    }
    assert!(failures.is_empty(), "{} failing file(s):\n\n{}", failures.len(), failures.join("\n\n"));
    eprintln!("pass filetests: {}", counts.join(", "));
}

/// The directives fail with a message naming the unmatched one and showing
/// the output, so that a failing case says what went wrong.
#[test]
fn a_failing_case_says_which_directive_and_shows_the_output() {
    let text = "; pass: simplify\ngraph {\n  input x: f32[B,2]\n  %0: f32[B,2] = input x\n  %1: f32[1,1] = const 1\n  %2: f32[B,2] = mul %0, %1\n  return loss = %2\n}\n; check: return loss = %0\n; check: mul\n";
    let message = run_file(text, "simplify").unwrap_err();
    assert!(message.contains("line 10: `; check: mul` does not match"), "{message}");
    assert!(message.contains("return loss = %0"), "the output is shown:\n{message}");
    assert!(message.contains("matching stopped"), "{message}");
    let text = "; pass: simplify\ngraph {\n  input x: f32[B,2]\n  %0: f32[B,2] = input x\n  %1: f32[B,2] = relu %0\n  return loss = %1\n}\n; not: relu\n; check: return\n";
    let message = run_file(text, "simplify").unwrap_err();
    assert!(message.contains("line 8: `; not: relu` matches output line 4"), "{message}");
    let message = run_file("; pass: simplify\ngraph {\n  %0: f32[1,1] = cnst 1\n}\n", "simplify").unwrap_err();
    assert!(message.contains("3:18: unknown op `cnst`"), "{message}");
    let message = run_file("; pass: simplfy\ngraph {\n  return\n}\n; check: x\n", "simplify").unwrap_err();
    assert!(message.contains("`; pass: simplfy`, but the file is under tests/passes/simplify"), "{message}");
}

fn ir_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ir"))
        .collect();
    files.sort();
    files
}

/// Run one file: parse its graph, run its pass, match its directives.
fn run_file(text: &str, folder: &str) -> Result<(), String> {
    let header = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(';')?.trim().strip_prefix(key)?.strip_prefix(':').map(str::trim))
    };
    let pass = header("pass").ok_or("no `; pass:` line")?;
    if pass != folder {
        return Err(format!("`; pass: {pass}`, but the file is under tests/passes/{folder}"));
    }
    let graph = ir::parse(text).map_err(|e| format!("{e}"))?;
    ir::verify::verify(&graph).map_err(|e| format!("the input graph does not verify:\n{e}"))?;
    let output = match pass {
        "shard" => {
            // A training kernel with every qualifying sum over rows cut into
            // chunks, whatever its size; `; gemm: yes` puts every product on
            // the library GEMM.
            let batch = header("batch").unwrap_or("32").parse().map_err(|_| "`; batch:` takes a number")?;
            let gemm_min_macs = if header("gemm") == Some("yes") { 0 } else { u64::MAX };
            let options = kernel::LowerOptions { gemm_min_macs, shard_min_work: 0 };
            kernel::print(&kernel::lower_with(&graph, KernelKind::Train, batch, options)?)
        }
        "lower" | "vectorize" => {
            let kind = match header("kernel").unwrap_or("train") {
                "train" => KernelKind::Train,
                "eval" => KernelKind::Eval,
                "predict" => KernelKind::Predict,
                other => return Err(format!("unknown kernel `{other}`")),
            };
            let batch = header("batch").unwrap_or("32").parse().map_err(|_| "`; batch:` takes a number")?;
            let mut kernel = kernel::lower(&graph, kind, batch)?;
            // `lower` ends by vectorising; undo its choices to show the loops
            // as lowered, then (for `vectorize`) make them again.
            kernel.vector_loops.clear();
            kernel.blocked_rows.clear();
            kernel.written_out.clear();
            kernel.paired_loops.clear();
            kernel.written_out.clear();
            kernel.paired_loops.clear();
            if pass == "vectorize" {
                kernel::vectorize::vectorize(&mut kernel);
            }
            kernel::print(&kernel)
        }
        _ => {
            let out = graph_pass(&graph, pass, &header)?;
            ir::verify::verify(&out).map_err(|e| format!("`{pass}` gives a graph that does not verify:\n{e}"))?;
            ir::print::graph(&out)
        }
    };
    if std::env::var_os("PASSES_SHOW").is_some() {
        eprintln!("=== {folder}\n{output}");
    }
    match_directives(text, &output)
}

fn graph_pass<'t>(graph: &Graph, pass: &str, header: &dyn Fn(&str) -> Option<&'t str>) -> Result<Graph, String> {
    Ok(match pass {
        "autodiff" => {
            let mut graph = graph.clone();
            autodiff::grad(&mut graph);
            graph
        }
        "optimizer" => {
            let mut graph = graph.clone();
            let optimizer = optimizer_named(header("optimizer").unwrap_or("sgd"))?;
            let schedule = match header("schedule").unwrap_or("constant").split_whitespace().collect::<Vec<_>>()[..] {
                ["constant"] => Schedule::Constant,
                ["exponential", gamma] => Schedule::Exponential { gamma: number(gamma)? },
                _ => return Err("`; schedule:` is `constant` or `exponential <gamma>`".into()),
            };
            optimizer::step(&mut graph, optimizer, schedule);
            graph
        }
        "simplify" => opt::simplify(graph),
        "softmax" => opt::share_softmax(graph),
        "inference" => opt::inference(graph),
        other => return Err(format!("unknown pass `{other}`")),
    })
}

fn optimizer_named(text: &str) -> Result<Optimizer, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    Ok(match words[..] {
        ["sgd"] => Optimizer::SGD,
        ["momentum", m] => Optimizer::Sgd { momentum: number(m)?, nesterov: false, weight_decay: 0.0 },
        ["nesterov", m] => Optimizer::Sgd { momentum: number(m)?, nesterov: true, weight_decay: 0.0 },
        ["adam"] => Optimizer::adam(),
        ["adamw"] => Optimizer::adamw(),
        ["adam", "decay", wd] => {
            Optimizer::Adam(AdamConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: number(wd)? })
        }
        _ => return Err(format!("unknown optimizer `{text}`")),
    })
}

fn number(text: &str) -> Result<f64, String> {
    text.parse().map_err(|_| format!("`{text}` is not a number"))
}

#[derive(Clone, Copy, PartialEq)]
enum Directive {
    Check,
    Next,
    Not,
}

/// Match the file's `; check:`, `; next:` and `; not:` lines against `output`.
fn match_directives(text: &str, output: &str) -> Result<(), String> {
    let mut directives = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let Some(rest) = line.trim().strip_prefix(';') else { continue };
        for (name, kind) in [("check:", Directive::Check), ("next:", Directive::Next), ("not:", Directive::Not)] {
            if let Some(pattern) = rest.trim().strip_prefix(name) {
                directives.push((number + 1, kind, line.trim(), pattern.trim()));
            }
        }
    }
    if !directives.iter().any(|d| d.1 != Directive::Not) {
        return Err("no `; check:` or `; next:` line: the case tests nothing".into());
    }
    // `pos` is where the last match ended (a byte offset in `output`),
    // `line_end` the end of its line; `nots` wait for the next positive
    // match, which bounds the text they must not match.
    let (mut pos, mut line_end) = (0, 0);
    let mut nots: Vec<(usize, &str, &str)> = Vec::new();
    let line_of = |at: usize| output[..at].matches('\n').count() + 1;
    let fail = |number: usize, directive: &str, what: &str, stopped: usize| {
        let shown: Vec<String> = output
            .lines()
            .enumerate()
            .map(|(i, l)| format!("{:>4} {} {l}", i + 1, if i + 1 == stopped { ">" } else { "|" }))
            .collect();
        format!("line {number}: `{directive}` {what}\noutput (> where matching stopped):\n{}", shown.join("\n"))
    };
    let check_nots = |nots: &mut Vec<(usize, &str, &str)>, from: usize, to: usize| {
        for (number, directive, pattern) in nots.drain(..) {
            if let Some(at) = output[from..to].find(pattern) {
                let line = line_of(from + at);
                return Err(fail(number, directive, &format!("matches output line {line}"), line));
            }
        }
        Ok(())
    };
    for (number, kind, directive, pattern) in directives {
        let found = match kind {
            Directive::Not => {
                nots.push((number, directive, pattern));
                continue;
            }
            Directive::Check => output[pos..].find(pattern).map(|at| pos + at),
            Directive::Next => {
                let start = (line_end + 1).min(output.len());
                let end = output[start..].find('\n').map_or(output.len(), |at| start + at);
                if pos == 0 { None } else { output[start..end].find(pattern).map(|at| start + at) }
            }
        };
        let Some(at) = found else {
            let what = if kind == Directive::Next { "does not match the next line" } else { "does not match" };
            let stopped = if kind == Directive::Next { line_of(line_end) + 1 } else { line_of(pos) };
            return Err(fail(number, directive, what, stopped));
        };
        check_nots(&mut nots, pos, at)?;
        pos = at + pattern.len();
        line_end = output[pos..].find('\n').map_or(output.len(), |at| pos + at);
    }
    check_nots(&mut nots, pos, output.len())
}
