//! UI tests: every `tests/ui/NAME.nn` is checked with
//! `nnc check NAME.nn [NAME.csv]` (the CSV when one sits beside it), with
//! `NO_COLOR=1`, from inside `tests/ui/`; the exit code and the exact stderr
//! must equal `tests/ui/NAME.stderr`, whose first line is `exit: N`.
//!
//! One file per class of mistake, so the rendered diagnostics of each are
//! reviewed as text. To accept intended changes, run
//! `UPDATE_UI=1 cargo test --test ui`, then read every changed `.stderr`
//! file before keeping it.
//!
//! Besides the exact text, every model diagnostic must be located: a
//! `--> NAME.nn:LINE:COL` line under each `error[E....]` header, and a label
//! drawn under the source (miette's `╰── label`); only an empty file, with
//! no line to draw, is excused from the label.

use std::path::{Path, PathBuf};
use std::process::Command;

fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("ui")
}

fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("tests/ui exists")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// `exit: N` and the stderr of `nnc check`.
fn run(model: &Path) -> String {
    let name = model.file_name().unwrap().to_str().unwrap();
    let csv = model.with_extension("csv");
    let mut command = Command::new(env!("CARGO_BIN_EXE_nnc"));
    command.arg("check").arg(name);
    if csv.exists() {
        command.arg(csv.file_name().unwrap());
    }
    let output = command.current_dir(ui_dir()).env("NO_COLOR", "1").output().expect("the nnc binary runs");
    let code = output.status.code().map_or("signal".to_string(), |c| c.to_string());
    format!("exit: {code}\n{}", String::from_utf8_lossy(&output.stderr))
}

/// Every `error[E....]` is followed by `  --> NAME.nn:LINE:COL` and, before
/// the next error, a drawn label.
fn assert_located(name: &str, text: &str) -> Result<(), String> {
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with("error[E") {
            continue;
        }
        let location = lines.get(i + 1).copied().unwrap_or_default();
        let ok = location.strip_prefix("  --> ").and_then(|l| l.strip_prefix(name)).is_some_and(|rest| {
            let parts: Vec<&str> = rest.split(':').collect();
            parts.len() == 3 && parts[0].is_empty() && parts[1..].iter().all(|p| p.parse::<usize>().is_ok())
        });
        if !ok {
            return Err(format!("`{line}` is not followed by `  --> {name}:LINE:COL` but by `{location}`"));
        }
        let block = lines[i + 1..].iter().take_while(|l| !l.starts_with("error"));
        if !block.clone().any(|l| l.contains("╰── ")) {
            return Err(format!("`{line}` has no label drawn under the source"));
        }
    }
    Ok(())
}

#[test]
fn ui() {
    let dir = ui_dir();
    let update = std::env::var_os("UPDATE_UI").is_some_and(|v| v != "0");
    let models = files_with(&dir, "nn");
    assert!(models.len() >= 20, "the UI corpus is missing: {} files in {}", models.len(), dir.display());
    let mut failures = Vec::new();
    for model in &models {
        let name = model.file_name().unwrap().to_str().unwrap();
        let actual = run(model);
        // An empty file has no source line to draw a label under.
        let empty = std::fs::metadata(model).unwrap().len() == 0;
        if let Err(why) = assert_located(name, &actual).or_else(|why| if empty { Ok(()) } else { Err(why) }) {
            failures.push(format!("{name}: {why}\n{actual}"));
        }
        let expected_path = model.with_extension("stderr");
        if update {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            failures.push(format!(
                "{name}: output differs from {}\n{}",
                expected_path.display(),
                diff(&expected, &actual)
            ));
        }
    }
    // Expectations whose model is gone would silently stop being tested.
    for stale in files_with(&dir, "stderr") {
        if !stale.with_extension("nn").exists() {
            failures.push(format!("{} has no .nn file", stale.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} UI test(s) failed (UPDATE_UI=1 rewrites the expectations):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// A line diff good enough to see what changed: `-` expected, `+` actual.
fn diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let prefix = e.iter().zip(&a).take_while(|(x, y)| x == y).count();
    let suffix = e[prefix..].iter().rev().zip(a[prefix..].iter().rev()).take_while(|(x, y)| x == y).count();
    let mut out = String::new();
    for line in &e[prefix..e.len() - suffix] {
        out.push_str(&format!("- {line}\n"));
    }
    for line in &a[prefix..a.len() - suffix] {
        out.push_str(&format!("+ {line}\n"));
    }
    format!("first difference at line {}:\n{out}", prefix + 1)
}
