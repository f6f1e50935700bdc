//! The README against the tables the code reads: the built-ins
//! (`nnc::check::builtins::BUILTINS`) and the optimizers
//! (`nnc::ir::program::OPTIMIZERS`). A built-in or optimizer added to a
//! table and not documented, or documented and not in a table, fails here.

use nnc::check::builtins::{BUILTINS, Kind};
use nnc::ir::program::OPTIMIZERS;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

/// The first cells of the README's table of built-ins (`| built-in | definition |`).
fn builtin_rows(readme: &str) -> Vec<String> {
    let mut lines = readme.lines().skip_while(|l| !l.starts_with("| built-in | definition |")).skip(2);
    let mut rows = Vec::new();
    while let Some(line) = lines.next().filter(|l| l.starts_with('|')) {
        rows.push(line.split(" | ").next().unwrap_or_default().trim_start_matches("| ").to_string());
    }
    rows
}

/// The signatures written in backticks in a first cell: `` `silu(z)`, `swish(z)` ``.
fn signatures(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

#[test]
fn the_readme_table_of_built_ins_is_the_checkers_table() {
    let readme = readme();
    let rows = builtin_rows(&readme);
    assert!(rows.len() > 10, "found the table of built-ins: {rows:?}");
    let documented: Vec<&str> = rows.iter().flat_map(|r| signatures(r)).collect();
    for def in BUILTINS {
        let signature = def.signature();
        if def.kind == Kind::Layer {
            assert!(readme.contains(&format!("`{signature}`")), "README does not write `{signature}`");
        } else {
            assert!(documented.contains(&signature.as_str()), "README's table of built-ins has no `{signature}`");
        }
    }
    for written in documented {
        let name = written.split('(').next().unwrap_or_default();
        let def = BUILTINS.iter().find(|d| d.name == name);
        assert!(def.is_some_and(|d| d.signature() == written), "README documents `{written}`, which is not a built-in");
    }
}

#[test]
fn every_activation_is_named_as_one_in_the_readme() {
    // The README says which built-ins a layer may use; each of them is
    // documented as a function of `z` (one value of the layer).
    for def in BUILTINS.iter().filter(|d| d.kind == Kind::Activation) {
        assert_eq!(def.params[0].name, "z", "`{}` is an activation of `z`", def.name);
    }
}

#[test]
fn the_readme_documents_every_optimizer_and_its_arguments() {
    let readme = readme();
    let settings: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `optimizer = ")).collect();
    for def in OPTIMIZERS {
        let rows: Vec<&&str> =
            settings.iter().filter(|l| l.starts_with(&format!("| `optimizer = {}(", def.name))).collect();
        assert!(!rows.is_empty(), "README's settings table has no `optimizer = {}(..)`", def.name);
        // adamw's row says "as `adam`": its arguments are adam's.
        for argument in def.arguments {
            let documented = rows.iter().any(|r| r.contains(argument))
                || (rows.iter().any(|r| r.contains("as `adam`"))
                    && settings.iter().any(|l| l.starts_with("| `optimizer = adam(") && l.contains(argument)));
            assert!(documented, "README does not document `{argument}` of `{}`", def.name);
        }
    }
}
