//! Repository hygiene: every Rust file opens with a `//!` doc saying what it is for.

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
