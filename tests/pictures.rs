//! Pictures end to end: `nnc draw` and `nnc plot` write deterministic SVG
//! (snapshot-tested) with the content the issue asks for, PNG through the
//! bundled font, and refuse bad input with the documented exit codes.

mod common;
use common::nnc;

use std::path::{Path, PathBuf};
use std::process::Output;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pictures").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[track_caller]
fn succeeds(args: &[&str]) -> Output {
    let output = nnc(args);
    assert_eq!(output.status.code(), Some(0), "nnc {args:?}\n{}", stderr(&output));
    output
}

#[track_caller]
fn fails(args: &[&str], code: i32, fragment: &str) {
    let output = nnc(args);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(code), "nnc {args:?}: expected exit {code}\n{err}");
    assert!(err.contains(fragment), "nnc {args:?}: expected `{fragment}` in\n{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// `nnc draw ARGS -o DIR/name.svg`, the SVG text.
fn draw(test: &str, args: &[&str]) -> String {
    let dir = scratch(test);
    let out = dir.join("net.svg");
    let mut all = vec!["draw"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", s(&out)]);
    succeeds(&all);
    std::fs::read_to_string(&out).unwrap()
}

/// The text of every `<text>` element, in order.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text ")
        .skip(1)
        .map(|t| {
            let body = &t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()];
            body.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        })
        .collect()
}

#[test]
fn seed_is_the_articles_three_two_one_network() {
    let svg = draw("seed", &["examples/seed.nn"]);
    insta::assert_snapshot!("draw_seed", svg);
    assert_eq!(svg.matches("<circle ").count(), 3 + 2 + 1, "3 inputs, 2 hidden, 1 output");
    // Every input neuron reaches each hidden neuron, each hidden one the output.
    assert_eq!(svg.matches("<line ").count(), 3 * 2 + 2 + 1, "edges (and the arrow to the loss)");
    let t = texts(&svg);
    for want in ["tanh", "sigmoid", "identity", "column 1", "column 3", "h.w: [3, 2]", "y_hat.w: [2, 1]"] {
        assert!(t.iter().any(|x| x == want), "no text `{want}` in {t:?}");
    }
    assert!(t.iter().any(|x| x == "h = f(x · h.w)"), "{t:?}");
    assert!(t.iter().any(|x| x.starts_with("line 9: h = dense(x, 2, [tanh, sigmoid]")), "{t:?}");
    // The hidden neurons, top to bottom, are f1 = tanh and f2 = sigmoid.
    let tanh = svg.find(">tanh<").unwrap();
    let sigmoid = svg.find(">sigmoid<").unwrap();
    assert!(tanh < sigmoid);
}

#[test]
fn the_same_model_draws_the_same_bytes() {
    assert_eq!(draw("same_a", &["examples/skip.nn"]), draw("same_b", &["examples/skip.nn"]));
}

#[test]
fn data_headers_name_the_inputs_and_wide_layers_collapse() {
    let svg = draw("digits", &["examples/digits.nn", "examples/digits.csv"]);
    let t = texts(&svg);
    let header = std::fs::read_to_string("examples/digits.csv").unwrap();
    let names: Vec<&str> = header.lines().next().unwrap().split(',').collect();
    // rest(): every column but the target `digit`, in file order.
    let inputs: Vec<&str> = names.iter().copied().filter(|n| *n != "digit").collect();
    assert_eq!(inputs.len(), 64);
    for name in inputs[..7].iter().chain([&inputs[63]]) {
        assert!(t.iter().any(|x| x == name), "input `{name}` labelled: {t:?}");
    }
    assert!(!t.iter().any(|x| x == inputs[7]), "the 8th input is collapsed");
    assert!(t.iter().any(|x| x == "56 more"), "64 inputs: 7, ⋮ 56 more, the last");
    assert!(t.iter().any(|x| x == "24 more"), "32 hidden");
    assert!(t.iter().any(|x| x == "⋮"));
}

#[test]
fn skip_sums_and_concat_are_drawn_as_such() {
    let svg = draw("skip", &["examples/skip.nn"]);
    insta::assert_snapshot!("draw_skip", svg);
    let t = texts(&svg);
    assert!(t.iter().any(|x| x == "sum of 2"), "{t:?}");
    assert!(t.iter().any(|x| x == "concat · 20"), "{t:?}");
    assert!(t.iter().any(|x| x == "r = h1 + h2"), "{t:?}");
    assert!(t.iter().any(|x| x == "c = concat: x [0:4], r [4:20]"), "{t:?}");
    assert!(t.iter().any(|x| x == "h2 = f(dropout(h1, 0.2) · h2.w + h2.b)"), "{t:?}");
    // h1 skips h2 to reach r, and x skips three columns to reach c: arcs.
    assert_eq!(svg.matches("stroke-dasharray=\"5 3\"").count(), 2);
    assert!(t.iter().any(|x| x == "h1") && t.iter().any(|x| x == "x"));
    // The sum's neurons are `+`.
    assert_eq!(t.iter().filter(|x| *x == "+").count(), 8, "16 wide: 7, ⋮, the last");
}

#[test]
fn weights_colour_edges_by_sign_with_the_value_in_a_tooltip() {
    let dir = scratch("weights");
    let weights = dir.join("seed.safetensors");
    succeeds(&[
        "run",
        "examples/seed.nn",
        "examples/seed.csv",
        "--quiet",
        "--epochs",
        "5",
        "--save-weights",
        s(&weights),
    ]);
    let svg = draw("weights_draw", &["examples/seed.nn", "--weights", s(&weights)]);
    // The values as safetensors itself reads them.
    let bytes = std::fs::read(&weights).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let hw = file.tensor("h.w").unwrap();
    let values: Vec<f32> = hw.data().chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert_eq!(values.len(), 6);
    let max = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for i in 0..3 {
        for j in 0..2 {
            let w = values[i * 2 + j];
            let title = format!("<title>h.w[{i},{j}] = {w}</title>");
            let at = svg.find(&title).unwrap_or_else(|| panic!("no tooltip {title}"));
            let line = &svg[svg[..at].rfind("<line ").unwrap()..at];
            let colour = if w >= 0.0 { "#2b6cb0" } else { "#c53030" };
            assert!(line.contains(colour), "{line}");
            let width: f64 = line.split("stroke-width=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
            let want = 0.4 + 3.6 * (w.abs() / max) as f64;
            assert!((width - want).abs() <= 0.006, "{line}: width {width}, want {want}");
        }
    }
}

#[test]
fn png_is_rendered_with_the_bundled_font() {
    let dir = scratch("png");
    let png = dir.join("seed.png");
    let svg = dir.join("seed.svg");
    succeeds(&["draw", "examples/seed.nn", "-o", s(&png)]);
    succeeds(&["draw", "examples/seed.nn", "-o", s(&svg)]);
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let text = std::fs::read_to_string(&svg).unwrap();
    let svg_width: f64 = text.split("width=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
    assert_eq!(width as f64, (svg_width * 2.0).round(), "rendered at twice the SVG's size");
    // Text was drawn: a blank render of the same size compresses far smaller.
    assert!(bytes.len() > 20_000, "{} bytes", bytes.len());
}

#[test]
fn bad_draw_input_is_refused() {
    let dir = scratch("bad");
    let out = dir.join("net.svg");
    fails(&["draw", "examples/seed.nn", "-o", s(&dir.join("net.txt"))], 2, "must be a .svg or .png");
    fails(&["draw", "examples/minimize.nn", "-o", s(&out)], 1, "no layers to draw");
    fails(
        &["draw", "examples/seed.nn", "--weights", s(&dir.join("none.safetensors")), "-o", s(&out)],
        1,
        "cannot read",
    );
    fails(&["draw", "examples/seed.nn", "-o", s(&dir.join("no/such/dir.svg"))], 1, "cannot write");
    fails(&["draw", "examples/seed.nn", "-o", "examples/seed.nn"], 2, "would overwrite the model file");
    fails(&["draw", "examples/minimize.nn", "examples/seed.csv", "-o", s(&out)], 2, "has no data block");
    fails(&["draw", "examples/iris.nn", "examples/digits.csv", "-o", s(&out)], 1, "digits.csv");
    fails(&["draw", "examples/seed.nn", "--weights", "examples/seed.csv", "-o", s(&out)], 1, "seed.csv");
    assert!(!out.exists());
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
}
