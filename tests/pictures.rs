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
fn several_inputs_share_a_column_named_from_the_data() {
    // penguins.nn: dense(concat(size, island, sex), 16, tanh), two one-hot inputs.
    let svg = draw("penguins", &["examples/penguins.nn", "examples/penguins.csv"]);
    let t = texts(&svg);
    let want = [
        "bill_length_mm",
        "body_mass_g",
        "island=Biscoe",
        "island=Dream",
        "island=Torgersen",
        "sex=female",
        "sex=male",
    ];
    for label in want {
        assert!(t.iter().any(|x| x == label), "{label}: {t:?}");
    }
    assert!(t.iter().any(|x| x == "h = f([size | island | sex] · h.w + h.b)"), "{t:?}");
    // 9 inputs to the 8 hidden neurons drawn, 8 to 3 outputs, and the arrow to the loss.
    assert_eq!(svg.matches("<line ").count(), 9 * 8 + 8 * 3 + 1);
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

/// `nnc plot ARGS -o DIR/plot.svg`, the SVG text.
fn plot(test: &str, args: &[&str]) -> String {
    let dir = scratch(test);
    let out = dir.join("plot.svg");
    let mut all = vec!["plot"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", s(&out)]);
    succeeds(&all);
    std::fs::read_to_string(&out).unwrap()
}

#[test]
fn minimize_descends_to_one_with_the_derivative_as_grad_prints_it() {
    let svg = plot("minimize", &["examples/minimize.nn"]);
    insta::assert_snapshot!("plot_minimize", svg);
    let t = texts(&svg);
    assert!(t.iter().any(|x| x == "x = 1.000 after 200 steps"), "{t:?}");
    assert!(t.iter().any(|x| x == "start x = 0"), "{t:?}");
    // The derivative's legend is the line `nnc grad` prints.
    let grad = String::from_utf8(succeeds(&["grad", "examples/minimize.nn"]).stdout).unwrap();
    let printed = grad.lines().find(|l| l.starts_with("d loss/d x = ")).unwrap();
    assert_eq!(printed, "d loss/d x = x^2 - 1");
    assert!(t.iter().any(|x| x == printed), "{t:?}");
    assert!(t.iter().any(|x| x == "loss = x^3 / 3 - x"), "{t:?}");
}

#[test]
fn the_descent_path_is_the_optimizers_steps() {
    use nnc::picture::descent;
    let program = common::program(&common::example("minimize.nn"));
    let graphs = nnc::pipeline::graphs(&program);
    let path = descent::descend(&program, &graphs, &[0.0], 200, 0.1);
    assert_eq!(path.points.len(), 201);
    // x ← x − 0.1 (x² − 1) from 0, by hand in f64.
    let mut x = 0.0f64;
    for (k, point) in path.points.iter().enumerate() {
        assert!((point[0] - x).abs() < 1e-12, "step {k}: {} vs {x}", point[0]);
        x -= 0.1 * (x * x - 1.0);
    }
    assert!((path.points[200][0] - 1.0).abs() < 1e-6);
    assert!((path.losses[200] + 2.0 / 3.0).abs() < 1e-9, "f(1) = -2/3");
    // The compiled kernel ends at the same place.
    let out = succeeds(&["run", "examples/minimize.nn", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let jit = json["params"]["x"].as_f64().unwrap();
    assert!((jit - path.points[200][0]).abs() < 1e-5, "kernel {jit}");
}

#[test]
fn two_parameters_draw_contours_and_the_path() {
    let dir = scratch("valley_model");
    let model = dir.join("valley.nn");
    std::fs::write(&model, "param a = -1.2\nparam b = 1\nloss (1 - a)^2 + 5 * (b - a^2)^2\ntrain { optimizer = sgd(lr = 0.02, momentum = 0.9)  steps = 300 }\n").unwrap();
    let svg = plot("valley", &[s(&model)]);
    let t = texts(&svg);
    assert!(t.iter().any(|x| x == "a = 1.000, b = 1.000"), "{t:?}");
    assert!(t.iter().any(|x| x == "d loss/d b = 10 * (b - a^2)"), "{t:?}");
    assert!(svg.matches("<path d=\"M").count() >= 10, "contour levels");
    // The path: one polyline through start and 300 steps.
    let poly = svg.split("<polyline points=\"").nth(1).unwrap().split('"').next().unwrap();
    assert_eq!(poly.split(' ').count(), 301);
}

const LOG: &str = "epoch,loss,accuracy,val_loss,val_accuracy\n1,1.2,0.3,1.3,0.2\n2,0.8,0.6,0.9,0.5\n3,0.5,0.8,0.7,0.7\n4,0.4,0.9,0.75,0.7\n5,0.3,0.95,0.8,0.6\n";

#[test]
fn a_log_plots_loss_and_metrics_with_the_best_epoch() {
    let dir = scratch("log_input");
    let log = dir.join("run.csv");
    std::fs::write(&log, LOG).unwrap();
    let svg = plot("log", &[s(&log)]);
    let t = texts(&svg);
    // Lowest val_loss: 0.7 at epoch 3.
    assert!(t.iter().any(|x| x == "best epoch 3 (by val_loss)"), "{t:?}");
    for name in ["loss", "val_loss", "accuracy", "val_accuracy"] {
        assert!(t.iter().any(|x| x == name), "legend {name}: {t:?}");
    }
    assert_eq!(svg.matches("<polyline ").count(), 4);
    let svg = svg.replace(s(&log), "run.csv");
    insta::assert_snapshot!("plot_log", svg);
}

#[test]
fn run_plot_draws_the_runs_log_and_learning_rate() {
    let dir = scratch("run_plot");
    let (log, picture) = (dir.join("run.csv"), dir.join("curves.svg"));
    succeeds(&[
        "run",
        "examples/momentum.nn",
        "examples/iris.csv",
        "--quiet",
        "--epochs",
        "30",
        "--validation",
        "0.2",
        "--log",
        s(&log),
        "--plot",
        s(&picture),
    ]);
    let svg = std::fs::read_to_string(&picture).unwrap();
    let t = texts(&svg);
    // Without early stopping the final weights are the last epoch's: the
    // log's `best` column is 1 on every row, and the plot marks epoch 30.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().next().unwrap().ends_with(",best"), "{text}");
    assert!(text.lines().skip(1).all(|l| l.ends_with(",1")), "{text}");
    assert!(t.iter().any(|x| x == "kept epoch 30"), "{t:?}");
    // momentum.nn halves the rate every 200 steps: 135 rows in batches of 16 are 9 steps an epoch.
    assert!(t.iter().any(|x| x.starts_with("learning rate: step, × 0.5 every 200 steps")), "{t:?}");
    let lr_line = svg.split("<polyline points=\"").last().unwrap().split('"').next().unwrap();
    assert_eq!(lr_line.split(' ').count(), 30, "one learning rate per epoch");
    // A PNG too, and a model without data plots its steps.
    succeeds(&["run", "examples/minimize.nn", "--quiet", "--plot", s(&dir.join("steps.png"))]);
    assert!(std::fs::read(dir.join("steps.png")).unwrap().starts_with(b"\x89PNG"));
}

#[test]
fn bad_plot_input_is_refused() {
    let dir = scratch("bad_plot");
    let out = dir.join("plot.svg");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let empty = write("empty.csv", "");
    let header = write("header.csv", "a,b\n1,2\n");
    let cell = write("cell.csv", "epoch,loss\n1,0.5\n2,oops\n");
    let ragged = write("ragged.csv", "epoch,loss\n1\n");
    let three = write("three.nn", "param a = 1\nparam b = 2\nparam c = 3\nloss a^2 + b^2 + c^2\n");
    fails(&["plot", s(&empty), "-o", s(&out)], 1, "empty");
    fails(&["plot", s(&header), "-o", s(&out)], 1, "header.csv:1: the header must start with `epoch` or `step`");
    fails(&["plot", s(&cell), "-o", s(&out)], 1, "cell.csv:3:2: `oops` in column `loss` is not a number");
    fails(&["plot", s(&ragged), "-o", s(&out)], 1, "ragged.csv:2: 1 cells, but the header has 2");
    fails(&["plot", s(&dir.join("none.csv")), "-o", s(&out)], 1, "cannot read");
    fails(&["plot", s(&three), "-o", s(&out)], 1, "one or two scalar parameters");
    fails(&["plot", "examples/iris.nn", "-o", s(&out)], 2, "--plot curves.svg");
    fails(&["plot", s(&cell), "--steps", "3", "-o", s(&out)], 2, "for a model file");
    fails(&["plot", "examples/minimize.nn", "--lr", "0", "-o", s(&out)], 2, "--lr must be a positive number");
    fails(&["plot", "examples/minimize.nn", "-o", s(&dir.join("plot.pdf"))], 2, "must be a .svg or .png");
    fails(&["plot", s(&cell), "-o", s(&cell)], 2, "would overwrite");
    fails(&["run", "examples/minimize.nn", "--plot", s(&dir.join("p.jpg"))], 2, "must be a .svg or .png");
    fails(&["run", "examples/minimize.nn", "--report", "examples/minimize.nn"], 2, "would overwrite");
    fails(&["run", "examples/minimize.nn", "--report", s(&dir.join("no/such/r.html"))], 1, "cannot write report");
    assert!(!out.exists());
}

#[test]
fn the_report_is_one_self_contained_page_with_the_confusion_matrix() {
    let dir = scratch("report");
    let (page, weights, predictions) = (dir.join("report.html"), dir.join("iris.safetensors"), dir.join("p.csv"));
    succeeds(&[
        "run",
        "examples/iris.nn",
        "examples/iris.csv",
        "--quiet",
        "--epochs",
        "20",
        "--report",
        s(&page),
        "--save-weights",
        s(&weights),
    ]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
    // Nothing is fetched: no scripts, links or remote addresses (only SVG's namespace).
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("src="));
    assert_eq!(html.matches("http").count(), html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count());
    assert_eq!(html.matches("<svg ").count(), 2, "the network and the curves");
    for section in ["Settings", "Final metrics", "Confusion matrix", "Network", "Training", "Model"] {
        assert!(html.contains(&format!("<h2>{section}</h2>")), "{section}");
    }
    assert!(html.contains("<td>optimizer</td><td>sgd, lr 0.05</td>"), "settings as echoed");
    // The confusion matrix against `nnc predict` with the same weights.
    succeeds(&["predict", "examples/iris.nn", "examples/iris.csv", "--weights", s(&weights), "--out", s(&predictions)]);
    let predicted: Vec<usize> = std::fs::read_to_string(&predictions)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    let truth: Vec<usize> = std::fs::read_to_string("examples/iris.csv")
        .unwrap()
        .lines()
        .filter_map(|l| l.rsplit(',').next()?.parse::<f64>().ok())
        .map(|c| c as usize)
        .collect();
    assert_eq!(predicted.len(), truth.len());
    let mut want = vec![vec![0usize; 3]; 3];
    for (t, p) in truth.iter().zip(&predicted) {
        want[*t][*p] += 1;
    }
    let table = html.split("<table class=\"confusion\">").nth(1).unwrap().split("</table>").next().unwrap();
    let got: Vec<Vec<usize>> = table
        .split("<tr>")
        .skip(2)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .take(3)
                .map(|c| c[c.find('>').unwrap() + 1..c.find("</td>").unwrap()].parse().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(got, want);
}
