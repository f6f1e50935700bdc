//! Repository hygiene: every Rust file opens with a `//!` doc saying what
//! it is for, and no module of `src/` uses a module that comes later in the
//! pipeline (ARCHITECTURE.md, "One direction").

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_file_has_a_module_doc() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 30, "found the sources");
    let missing: Vec<_> =
        files.iter().filter(|f| !std::fs::read_to_string(f).expect("UTF-8 source").starts_with("//!")).collect();
    assert!(missing.is_empty(), "files without a `//!` doc: {missing:?}");
}

/// The modules of `src/` in pipeline order (ARCHITECTURE.md, "One
/// direction"): a module may use its own submodules and the modules of
/// earlier levels, never a later level nor another module of its own level.
const LEVELS: &[&[&str]] = &[
    &["span", "threads"],
    &["diag"],
    &["ir"],
    &["syntax"],
    &["check"],
    &["autodiff"],
    &["optimizer"],
    &["opt"],
    &["kernel"],
    &["codegen"],
    &["runtime"],
    &["pipeline"],
    &["export", "picture"],
    &["commands"],
    &["main"],
];

/// The stages proper, in order: each uses only the shared modules (the
/// first three levels) and the stage just before it — `runtime` sees the
/// kernel only as `codegen` compiled it. The modules after `runtime` may
/// use any earlier one.
const STAGES: &[&str] = &["syntax", "check", "autodiff", "optimizer", "opt", "kernel", "codegen", "runtime"];

fn level(module: &str) -> Option<usize> {
    LEVELS.iter().position(|level| level.contains(&module))
}

/// `text` without `//` comments (line structure kept) and without its unit
/// tests: a `#[cfg(test)]` module may drive the whole pipeline, as the
/// integration tests do.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines().map(|line| line.find("//").map_or(line, |at| &line[..at])).collect::<Vec<_>>().join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The top-level modules that `code` names through a path: `crate::m`,
/// `crate::{m, n::x}`, `nnc::m` (the binary's name for the library), and
/// `super::…::m` when the `super`s climb out of `path` (the file's module
/// path) to the crate root; with the line of each.
fn used_modules(code: &str, path: &[String]) -> Vec<(String, usize)> {
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let ident_at = |at: usize| code[at..].chars().take_while(|c| is_ident(*c)).collect::<String>();
    let mut out = Vec::new();
    for root in ["crate::", "nnc::", "super::"] {
        for (at, _) in code.match_indices(root) {
            if code[..at].chars().next_back().is_some_and(|c| is_ident(c) || c == ':') {
                continue;
            }
            let mut rest = at + root.len();
            if root == "super::" {
                let mut ups = 1;
                while code[rest..].starts_with("super::") {
                    ups += 1;
                    rest += "super::".len();
                }
                if ups < path.len() {
                    continue;
                }
            }
            if code[rest..].starts_with('{') {
                // A group: the first name of each top-level item.
                let mut depth = 0;
                let mut item_start = true;
                for (k, c) in code[rest..].char_indices() {
                    match c {
                        '{' => {
                            depth += 1;
                            item_start = depth == 1;
                        }
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        ',' if depth == 1 => item_start = true,
                        c if item_start && is_ident(c) => {
                            item_start = false;
                            out.push((ident_at(rest + k), line_of(at)));
                        }
                        _ => {}
                    }
                }
            } else {
                out.push((ident_at(rest), line_of(at)));
            }
        }
    }
    out
}

/// Every use of a later (or sibling) module under `root/src`, and every use
/// by a stage of a stage other than the one before it, one line each.
fn back_imports(root: &Path) -> Vec<String> {
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src");
        let mut path: Vec<String> =
            relative.iter().map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
        if path.last().is_some_and(|last| last == "mod") {
            path.pop();
        }
        let module = path[0].clone();
        if module == "lib" {
            continue;
        }
        let own = level(&module)
            .unwrap_or_else(|| panic!("src/{module} has no place in LEVELS: add it, and to ARCHITECTURE.md"));
        let code = code_of(&std::fs::read_to_string(&file).expect("UTF-8 source"));
        for (used, line) in used_modules(&code, &path) {
            if used == module {
                continue;
            }
            // Names that are not modules (`crate::Foo` re-exports) have no level.
            if let Some(theirs) = level(&used)
                && theirs >= own
            {
                out.push(format!(
                    "src/{}:{line}: {module} uses {used}, which does not come before it",
                    relative.display()
                ));
            } else if let (Some(stage), Some(theirs)) =
                (STAGES.iter().position(|s| *s == module), STAGES.iter().position(|s| *s == used))
                && theirs + 1 != stage
            {
                out.push(format!(
                    "src/{}:{line}: {module} uses {used}, not the stage just before it",
                    relative.display()
                ));
            }
        }
    }
    out
}

#[test]
fn no_stage_uses_a_later_one() {
    // TIDY_ROOT checks another checkout (an older tree, say) instead.
    let root =
        std::env::var_os("TIDY_ROOT").map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf(), Into::into);
    let found = back_imports(&root);
    assert!(found.is_empty(), "imports against the pipeline's direction:\n{}", found.join("\n"));
}

#[test]
fn a_back_import_is_caught() {
    // The cycle this test was written after: the vectorizer read codegen's
    // unroll limit while codegen walked statements with the vectorizer's walk.
    let root = std::env::temp_dir().join(format!("nnc-tidy-{}", std::process::id()));
    let write = |path: &str, text: &str| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("temp dir");
        std::fs::write(path, text).expect("temp file");
    };
    write("src/kernel/vectorize.rs", "//! x\nfn f(n: u32) -> bool {\n    n > crate::codegen::UNROLL_LIMIT\n}\n");
    write("src/codegen/mod.rs", "//! x\nuse crate::kernel::{Kernel, vectorize::walk};\n");
    write("src/runtime/train.rs", "//! x\nuse crate::{codegen::Compiled, kernel::KernelKind, pipeline};\n");
    write("src/runtime/data/read.rs", "//! x\nuse super::super::autodiff;\nuse super::table;\n// crate::pipeline\n");
    write("src/opt/mod.rs", "//! x\n#[cfg(test)]\nmod tests {\n    use crate::pipeline;\n}\n");
    write("src/runtime/gradcheck.rs", "//! x\nfn f() {\n    crate::kernel::lower();\n}\n");
    let found = back_imports(&root);
    std::fs::remove_dir_all(&root).expect("temp dir removed");
    assert_eq!(
        found,
        [
            "src/kernel/vectorize.rs:3: kernel uses codegen, which does not come before it",
            "src/runtime/gradcheck.rs:3: runtime uses kernel, not the stage just before it",
            "src/runtime/train.rs:2: runtime uses kernel, not the stage just before it",
            "src/runtime/train.rs:2: runtime uses pipeline, which does not come before it",
        ],
        "what the fixture's files import"
    );
}
