//! Hostile CSV files, through the `nnc` binary: each one is either read
//! (and `nnc check` says how many rows) or refused with exit code 1 and a
//! message that names the file, the 1-based line and (where one cell is at
//! fault) the 1-based column, `file:LINE:COL: ...`.
//!
//! The files are written by the test into a scratch directory, so the
//! corpus is readable here, byte for byte.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Three inputs and a target, by position.
const BY_POSITION: &str = "\
data { input x[3] target y[1] }
model { out = dense(x, 1) }
loss mse(out, y)
train { epochs = 1 }
";

/// Columns by header name.
const BY_NAME: &str = "\
data {
  input  x = columns(a, b)
  target y = column(y)
}
model { out = dense(x, 1) }
loss mse(out, y)
train { epochs = 1 }
";

/// Two inputs and a class 0, 1 or 2.
const CLASSES: &str = "\
data { input x[2] target y = one_hot(3) }
model { out = dense(x, 3, softmax) }
loss cross_entropy(out, y)
train { epochs = 1 }
";

fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("csv_corpus").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn nnc(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("the nnc binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `nnc <command> model.nn data.csv` on `model` and `csv` in a fresh
/// directory; returns the exit code and stderr.
fn run(test: &str, command: &str, model: &str, csv: &[u8]) -> (Option<i32>, String, String) {
    let dir = scratch(test);
    std::fs::write(dir.join("model.nn"), model).unwrap();
    std::fs::write(dir.join("data.csv"), csv).unwrap();
    let mut args = vec![command, "model.nn", "data.csv"];
    if command == "run" {
        args.push("--quiet");
    }
    let output = nnc(&dir, &args);
    (output.status.code(), text(&output.stdout), text(&output.stderr))
}

/// The file is read: `nnc check` succeeds with `rows` rows.
#[track_caller]
fn accepted(test: &str, model: &str, csv: &[u8], rows: usize) {
    let (code, stdout, stderr) = run(test, "check", model, csv);
    assert_eq!(code, Some(0), "{test}: expected success, got\n{stderr}");
    assert!(stdout.contains(&format!("data.csv: ok — {rows} rows")), "{test}: {stdout}");
}

/// The file is refused with exit code 1 and `error: data.csv:LOCATION: ...`
/// containing `fragment`, where LOCATION is `LINE:COL`, `LINE` or nothing.
#[track_caller]
fn refused(test: &str, command: &str, model: &str, csv: &[u8], location: &str, fragment: &str) -> String {
    let (code, _, stderr) = run(test, command, model, csv);
    assert_eq!(code, Some(1), "{test}: expected exit 1, got {code:?}\n{stderr}");
    let prefix =
        if location.is_empty() { "error: data.csv: ".to_string() } else { format!("error: data.csv:{location}: ") };
    assert!(stderr.starts_with(&prefix), "{test}: expected `{prefix}...`, got\n{stderr}");
    assert!(stderr.contains(fragment), "{test}: expected `{fragment}` in\n{stderr}");
    assert!(!stderr.contains("panicked"), "{test}: {stderr}");
    stderr
}

#[test]
fn empty_and_blank_files() {
    refused("empty", "check", BY_POSITION, b"", "", "the data file is empty");
    refused("blank", "check", BY_POSITION, b"\n\n   \n\r\n", "", "the data file is empty");
    refused("bom_only", "check", BY_POSITION, b"\xEF\xBB\xBF", "", "the data file is empty");
}

#[test]
fn header_only() {
    refused("header_only", "check", BY_POSITION, b"a,b,c,y\n", "", "has a header but no rows");
    refused("header_only_run", "run", BY_POSITION, b"a,b,c,y", "", "has a header but no rows");
}

#[test]
fn ragged_rows_name_the_line_and_the_first_missing_or_extra_field() {
    let short = refused("short", "check", BY_POSITION, b"a,b,c,y\n1,2,3,4\n1,2,3\n", "3:4", "this row has 3 fields");
    assert!(short.contains("the header has 4"), "{short}");
    refused("long", "check", BY_POSITION, b"a,b,c,y\n1,2,3,4\n1,2,3,4,5\n", "3:5", "this row has 5 fields");
    refused("one", "check", BY_POSITION, b"1,2,3,4\n1\n", "2:2", "this row has 1 field but the first row has 4");
    refused("trailing_comma", "check", BY_POSITION, b"a,b,c,y\n1,2,3,4,\n", "2:5", "this row has 5 fields");
}

#[test]
fn an_unclosed_quote_is_a_ragged_row_with_a_hint() {
    let err = refused("quote", "check", BY_POSITION, b"a,b,c,y\n1,2,3,4\n\"1,2,3,4\n1,2,3,4\n", "3:2", "1 field");
    assert!(err.contains("never closed"), "{err}");
}

#[test]
fn cells_that_are_not_numbers() {
    refused("word", "check", BY_POSITION, b"a,b,c,y\n1,2,3,4\n1,x,3,4\n", "3:2", "`x` in column `b` is not a number");
    // A bad cell says how many more the column has.
    let err =
        refused("words", "check", BY_POSITION, b"a,b,c,y\n1,x,3,4\n1,y,3,4\n1,z,3,4\n", "2:2", "`x` in column `b`");
    assert!(err.contains("(and 2 more cells in this column)"), "{err}");
    refused("comma_decimal", "check", BY_POSITION, b"a,b,c,y\n1,2,3,\"4,5\"\n", "2:4", "`4,5` in column `y`");
    // Without a header the column is named by its number.
    refused("no_header", "run", BY_POSITION, b"1,2,3,4\n1,2,3,four\n", "2:4", "`four` in column 4 is not a number");
}

#[test]
fn missing_cells_are_counted_per_column_and_located() {
    for (i, cell) in ["", "NA", "NaN", "nan", "?", "N/A", "NULL"].iter().enumerate() {
        let csv = format!("a,b,c,y\n1,2,3,4\n1,2,3,4\n1,{cell},3,4\n");
        let err = refused(&format!("missing{i}"), "check", BY_POSITION, csv.as_bytes(), "4:2", "1 missing cell");
        assert!(err.contains("`b` 1"), "{err}");
        assert!(err.contains("missing = drop") && err.contains("fill(mean)"), "names the options: {err}");
    }
    let err =
        refused("missing_many", "run", BY_POSITION, b"a,b,c,y\n1,,3,\n1,2,NA,4\n,2,3,4\n", "2:2", "4 missing cells");
    assert!(err.contains("`a` 1, `b` 1, `c` 1, `y` 1"), "{err}");
    refused("nan_target", "run", BY_POSITION, b"a,b,c,y\n1,2,3,NaN\n", "2:4", "1 missing cell");
}

#[test]
fn infinity_is_refused_with_its_place() {
    for (i, cell) in ["inf", "-inf", "infinity", "1e999", "-1e400"].iter().enumerate() {
        let csv = format!("a,b,c,y\n1,2,3,4\n1,2,3,4\n1,{cell},3,4\n");
        let err = refused(&format!("nonfinite{i}"), "check", BY_POSITION, csv.as_bytes(), "4:2", "not a finite number");
        assert!(err.contains(&format!("`{cell}`")), "{err}");
        assert!(err.contains("help:"), "{err}");
    }
}

#[test]
fn a_missing_named_column_is_a_diagnostic_in_the_model() {
    let (code, _, err) = run("missing_name", "check", BY_NAME, b"a,c,y\n1,2,3\n");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("error[E0305]: data.csv has no column `b`"), "{err}");
    assert!(err.contains("--> model.nn:2:25"), "points at `b` in the model: {err}");
    assert!(err.contains("its columns are: a, c, y"), "{err}");
    // A near miss gets a suggestion.
    let (code, _, err) = run("near_miss", "run", BY_NAME, b"a,bb,y\n1,2,3\n");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("did you mean `bb`?"), "{err}");
}

#[test]
fn columns_by_name_ignore_quotes_bom_spaces_and_crlf() {
    accepted("names_plain", BY_NAME, b"a,b,y\n1,2,3\n", 1);
    accepted("names_quoted", BY_NAME, b"\"a\",\"b\",\"y\"\n\"1.5\",2,3\n", 1);
    accepted("names_bom_crlf", BY_NAME, b"\xEF\xBB\xBFa,b,y\r\n1,2,3\r\n4,5,6\r\n", 2);
    accepted("names_spaces", BY_NAME, b" a , b ,y\n 1 , 2 ,3\n", 1);
    accepted("names_extra_columns", BY_NAME, b"id,a,note,b,y\n7,1,9,2,3\n", 1);
}

#[test]
fn one_hot_classes_out_of_range() {
    let header = "u,v,class\n0.1,0.2,0\n0.3,0.4,1\n";
    for (i, (class, shown)) in [("3", "3"), ("-1", "-1"), ("1.5", "1.5"), ("7e0", "7e0")].iter().enumerate() {
        let csv = format!("{header}0.5,0.6,{class}\n");
        let err = refused(&format!("class{i}"), "check", CLASSES, csv.as_bytes(), "4:3", "is not a class from 0 to 2");
        assert!(err.contains(&format!("class `{shown}`")), "{err}");
        assert!(err.contains("one_hot(.., 3)"), "{err}");
    }
    refused("class_run", "run", CLASSES, format!("{header}0,0,3\n").as_bytes(), "4:3", "is not a class from 0 to 2");
    accepted("classes_ok", CLASSES, format!("{header}0.5,0.6,2\n0.5,0.6,2.0\n").as_bytes(), 4);
}

#[test]
fn a_width_that_does_not_match_the_model() {
    let err = refused("narrow", "check", BY_POSITION, b"a,b,c\n1,2,3\n", "1", "the file has 3 columns");
    assert!(err.contains("binds 4 by position"), "{err}");
    refused("wide", "run", BY_POSITION, b"a,b,c,d,y\n1,2,3,4,5\n", "1", "the file has 5 columns");
}

#[test]
fn delimiters_are_detected() {
    accepted("semicolons", BY_POSITION, b"a;b;c;y\n1;2;3;4\n", 1);
    accepted("tabs", BY_POSITION, b"a\tb\tc\ty\n1\t2\t3\t4\n5\t6\t7\t8\n", 2);
    accepted("pipes", BY_POSITION, b"a|b|c|y\n1|2|3|4\n", 1);
    // A quoted field may hold the delimiter.
    accepted("quoted_delimiter", BY_NAME, b"a;b;note;y\n1;2;\"x; y\";3\n", 1);
    // Commas inside the fields of a `;` file do not fool the detection.
    accepted("comma_in_fields", BY_NAME, b"a;b;note;y\n1;2;\"p, q\";3\n4;5;\"r, s, t\";6\n", 2);
}

#[test]
fn quoted_fields_bom_crlf_and_no_header_are_read() {
    accepted("quoted_numbers", BY_POSITION, b"a,b,c,y\n\"1.5\",\"2\",\" 3 \",4\n", 1);
    accepted("bom", BY_POSITION, b"\xEF\xBB\xBFa,b,c,y\n1,2,3,4\n", 1);
    accepted("crlf", BY_POSITION, b"a,b,c,y\r\n1,2,3,4\r\n5,6,7,8\r\n", 2);
    accepted("cr_only", BY_POSITION, b"a,b,c,y\r1,2,3,4\r5,6,7,8\r", 2);
    accepted("no_header", BY_POSITION, b"1,2,3,4\n5,6,7,8\n", 2);
    accepted("no_trailing_newline", BY_POSITION, b"1,2,3,4\n5,6,7,8", 2);
    accepted("blank_lines", BY_POSITION, b"a,b,c,y\n\n1,2,3,4\n\n\n5,6,7,8\n\n", 2);
    accepted("exponents_and_signs", BY_POSITION, b"1e-3,+2,-3.5E2,.5\n", 1);
}

#[test]
fn lines_are_counted_as_an_editor_counts_them() {
    // Blank lines, CRLF and a quoted field spanning two lines all count.
    let csv = b"a,b,c,y\r\n\r\n1,2,3,4\r\n\"1\n\",2,3,4\r\n1,2,oops,4\r\n";
    refused("line_numbers", "check", BY_POSITION, csv, "6:3", "`oops`");
    refused("crlf_blank", "check", BY_POSITION, b"a,b,c,y\r\n\r\n1,2,3,4\r\n1,2,oops,4\r\n", "4:3", "`oops`");
    refused("cr_only_lines", "check", BY_POSITION, b"a,b,c,y\r1,2,3,4\r1,2,oops,4\r", "3:3", "`oops`");
    refused("lf", "check", BY_POSITION, b"a,b,c,y\n\n1,2,3,4\n1,2,oops,4\n", "4:3", "`oops`");
    refused("crlf_ragged", "check", BY_POSITION, b"a,b,c,y\r\n1,2,3,4\r\n\r\n1,2\r\n", "4:3", "2 fields");
}

#[test]
fn invalid_utf8_names_line_and_field() {
    refused("utf8", "check", BY_POSITION, b"a,b,c,y\n1,2,3,4\n1,2,\xff,4\n", "3:3", "not valid UTF-8");
    refused("binary", "check", BY_POSITION, b"\x00\x01\x02,\xfe\xff\n", "1:2", "not valid UTF-8");
}

#[test]
fn a_huge_line_is_reported_briefly_and_quickly() {
    let start = Instant::now();
    // One 10 MB field: a number too large to be finite, then a word.
    let mut csv = b"a,b,c,y\n1,".to_vec();
    csv.extend(std::iter::repeat_n(b'9', 10 << 20));
    csv.extend_from_slice(b",3,4\n");
    let err = refused("huge_number", "check", BY_POSITION, &csv, "2:2", "is not a finite number");
    assert!(err.len() < 1000, "the message quotes the cell in full ({} bytes)", err.len());
    let mut csv = b"a,b,c,y\n1,2,3,".to_vec();
    csv.extend(std::iter::repeat_n(b'x', 10 << 20));
    csv.push(b'\n');
    let err = refused("huge_word", "check", BY_POSITION, &csv, "2:4", "is not a number");
    assert!(err.len() < 1000, "the message quotes the cell in full ({} bytes)", err.len());
    // A 10 MB header name: named in messages, shortened.
    let mut csv = b"a,b,c,".to_vec();
    csv.extend(std::iter::repeat_n(b'y', 10 << 20));
    csv.extend_from_slice(b"\n1,2,3,x\n");
    let err = refused("huge_header", "check", BY_POSITION, &csv, "2:4", "is not a number");
    assert!(err.len() < 1000, "the message quotes the header in full ({} bytes)", err.len());
    let (code, _, err) = run("huge_header_by_name", "check", BY_NAME, &csv);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.len() < 3000, "the help lists the header in full ({} bytes)", err.len());
    assert!(start.elapsed() < Duration::from_secs(60), "{:?}", start.elapsed());
}

#[test]
fn many_rows_and_columns() {
    // 200 columns by position, 2000 rows.
    let model = "data { input x[199] target y[1] }\nmodel { out = dense(x, 1) }\nloss mse(out, y)\n";
    let row: Vec<String> = (0..200).map(|i| format!("{}", i % 7)).collect();
    let row = row.join(",") + "\n";
    accepted("wide_and_long", model, row.repeat(2000).as_bytes(), 2000);
}
