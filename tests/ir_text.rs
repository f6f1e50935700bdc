//! The graph IR's text form reads back: `print(parse(print(g))) == print(g)`
//! for generated graphs (proptest) and for every shipped example at every
//! graph stage, the parsed graph is the printed one (same ids, ops, shapes,
//! layers, declarations, outputs), and malformed text gets a located error.

mod common;

use nnc::ir::program::Categories;
use nnc::ir::{
    self, Binary, Compare, DataVar, Dim, Graph, Hyper, Init, NodeId, Op, Origin, ParamInfo, Shape, StateInfo, Unary,
    print,
};
use nnc::{autodiff, opt, pipeline};
use proptest::prelude::*;

/// The parsed graph equals `graph` in everything the text carries: each
/// printed node (op, arguments, shape, layer) at its id, every declaration,
/// and the outputs in order.
fn assert_rebuilt(graph: &Graph, what: &str) {
    let text = print::graph(graph);
    let parsed = ir::parse(&text).unwrap_or_else(|e| panic!("{what}: {e}\n{text}"));
    assert_eq!(print::graph(&parsed), text, "{what}: the text does not read back");
    let live = graph.live();
    assert_eq!(parsed.nodes.len(), graph.live().iter().rposition(|l| *l).map_or(0, |i| i + 1), "{what}");
    for (i, node) in graph.nodes.iter().enumerate().filter(|(i, _)| live[*i]) {
        let got = &parsed.nodes[i];
        let same_op = match (&got.op, &node.op) {
            // NaN constants compare unequal; the bits say they are the same.
            (Op::Const(a), Op::Const(b)) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            (a, b) => a == b,
        };
        assert!(same_op, "{what}: %{i} is {:?}, not {:?}", got.op, node.op);
        assert_eq!(got.args, node.args, "{what}: arguments of %{i}");
        assert_eq!(got.shape, node.shape, "{what}: shape of %{i}");
        assert_eq!(got.origin.layer, node.origin.layer, "{what}: layer of %{i}");
    }
    assert_eq!(parsed.inputs, graph.inputs, "{what}");
    assert_eq!(parsed.targets, graph.targets, "{what}");
    assert_eq!(parsed.states, graph.states, "{what}");
    assert_eq!(parsed.params.len(), graph.params.len(), "{what}");
    for (got, want) in parsed.params.iter().zip(&graph.params) {
        let same_init = match (got.init, want.init) {
            (Init::Value(a), Init::Value(b)) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            (a, b) => a == b,
        };
        assert!(same_init && got.name == want.name && got.shape == want.shape && got.layer == want.layer, "{what}");
    }
    assert_eq!(parsed.outputs, graph.outputs, "{what}");
}

/// Every shipped example's program (penguins with the category counts of
/// its data, which `nnc` would count when reading it).
fn examples() -> Vec<(String, nnc::ir::program::Program)> {
    let mut names: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
        .expect("the examples folder")
        .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".nn").map(str::to_string))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{names:?}");
    let categories: Categories = [("island", 3), ("sex", 2), ("y", 3)].map(|(k, v)| (k.to_string(), v)).into();
    names
        .into_iter()
        .map(|name| {
            let text = common::example(&format!("{name}.nn"));
            let front = pipeline::frontend(&text)
                .or_else(|_| pipeline::frontend_with(&text, &categories))
                .unwrap_or_else(|_| panic!("{name} checks"));
            (name, front.program)
        })
        .collect()
}

#[test]
fn every_example_reads_back_at_every_graph_stage() {
    for (name, program) in examples() {
        let graphs = pipeline::graphs(&program);
        assert_rebuilt(&program.graph, &format!("{name} graph"));
        assert_rebuilt(&graphs.grad, &format!("{name} grad"));
        assert_rebuilt(&graphs.train, &format!("{name} opt"));
        assert_rebuilt(&graphs.eval, &format!("{name} eval"));
        for function in &program.functions {
            assert_rebuilt(&function.graph, &format!("{name} fn {}", function.name));
        }
    }
}

/// A parsed graph is as good as the built one: the passes give the same text
/// (the builder reuses the parsed nodes as it would the original ones).
#[test]
fn passes_on_a_parsed_graph_give_the_same_text() {
    for (name, program) in examples() {
        let mut built = program.graph.clone();
        let mut parsed = ir::parse(&print::graph(&built)).expect("reads back");
        autodiff::grad(&mut built);
        autodiff::grad(&mut parsed);
        assert_eq!(print::graph(&parsed), print::graph(&built), "{name}: autodiff");
        assert_eq!(print::graph(&opt::simplify(&parsed)), print::graph(&opt::simplify(&built)), "{name}: simplify");
    }
}

// ---- generated graphs ---------------------------------------------------------------

/// A graph as numbers, turned into a valid graph by [`build`].
#[derive(Debug, Clone)]
struct Recipe {
    inputs: Vec<u32>,
    targets: Vec<u32>,
    params: Vec<(bool, u32, u32, Option<f64>, u8)>,
    steps: Vec<(u8, usize, usize, usize, f64, u8)>,
    outputs: Vec<usize>,
}

const LAYERS: &[Option<&str>] = &[None, Some("h"), Some("out"), Some("loss"), Some("adam"), Some("layer_2")];

fn recipe() -> impl Strategy<Value = Recipe> {
    (
        prop::collection::vec(1u32..5, 0..3),
        prop::collection::vec(1u32..4, 0..2),
        prop::collection::vec((any::<bool>(), 1u32..4, 1u32..4, prop::option::of(any::<f64>()), any::<u8>()), 0..4),
        prop::collection::vec(
            (any::<u8>(), any::<usize>(), any::<usize>(), any::<usize>(), any::<f64>(), any::<u8>()),
            0..40,
        ),
        prop::collection::vec(any::<usize>(), 1..4),
    )
        .prop_map(|(inputs, targets, params, steps, outputs)| Recipe { inputs, targets, params, steps, outputs })
}

/// Declarations (some unused), then ops on earlier nodes wherever their
/// shapes fit, then a few outputs, so some nodes are dead.
fn build(recipe: &Recipe) -> Graph {
    let mut graph = Graph::default();
    let origin = |layer: u8| Origin { span: None, layer: LAYERS[layer as usize % LAYERS.len()].map(str::to_string) };
    let mut nodes = Vec::new();
    for (i, &width) in recipe.inputs.iter().enumerate() {
        graph.inputs.push(DataVar { name: format!("x{i}"), width });
        if i % 2 == 0 {
            nodes.push(graph.add_declared(Op::Input(i as u32), &[], Shape::batch(width), origin(0)).unwrap());
        }
    }
    for (i, &width) in recipe.targets.iter().enumerate() {
        graph.targets.push(DataVar { name: format!("y{i}"), width });
        nodes.push(graph.add_declared(Op::Target(i as u32), &[], Shape::batch(width), origin(3)).unwrap());
    }
    for (i, &(batch, rows, cols, value, layer)) in recipe.params.iter().enumerate() {
        let shape = Shape::new(if batch { Dim::Batch } else { Dim::Fixed(rows) }, Dim::Fixed(cols));
        let init = value.map_or(Init::XavierUniform, Init::Value);
        let layer = origin(layer).layer;
        graph.params.push(ParamInfo { name: format!("p{i}.w"), shape, init, layer: layer.clone() });
        nodes.push(graph.add_declared(Op::Param(i as u32), &[], shape, Origin { span: None, layer }).unwrap());
        if value.is_some() {
            graph.states.push(StateInfo { name: format!("p{i}.w.momentum"), shape, param: i as u32 });
            let state = graph.states.len() as u32 - 1;
            nodes.push(graph.add_declared(Op::State(state), &[], shape, origin(4)).unwrap());
        }
    }
    nodes.push(graph.add(Op::BatchSize, &[], origin(3)).unwrap());
    for &(choice, a, b, c, value, layer) in &recipe.steps {
        let pick = |k: usize| nodes[k % nodes.len()];
        // The first argument is one of the latest nodes, for long chains.
        let x = nodes[nodes.len() - 1 - a % nodes.len().min(3)];
        let (y, z) = (pick(b), pick(c));
        let sx = graph.shape(x);
        let small = (c % 3) as u32;
        let attempt = match choice % 30 {
            k @ 0..=9 => {
                let unary = if k == 9 { Unary::Pow(value) } else { Unary::PLAIN[k as usize] };
                graph.add(Op::Unary(unary), &[x], origin(layer))
            }
            10..=13 => {
                let binary = Binary::ALL[choice as usize % 4];
                graph.add(Op::Binary(binary), &[x, y], origin(layer))
            }
            14 => graph.add(Op::Compare(Compare::ALL[c % 6]), &[x, y], origin(layer)),
            15 => graph.add(Op::MatMul { trans_a: a % 2 == 0, trans_b: b % 2 == 0 }, &[x, y], origin(layer)),
            16 => graph.add(Op::Sum { rows: a % 2 == 0, cols: b % 2 == 0 }, &[x], origin(layer)),
            17 => graph.add_declared(Op::Broadcast, &[x], Shape::new(Dim::Batch, sx.cols), origin(layer)),
            18 => graph.add(Op::Softmax, &[x], origin(layer)),
            19 => graph.add(Op::LogSoftmax, &[x], origin(layer)),
            20 => {
                let width = sx.width().unwrap_or(1).saturating_sub(small).max(1);
                graph.add_declared(
                    Op::SliceCols { start: small },
                    &[x],
                    Shape::new(sx.rows, Dim::Fixed(width)),
                    origin(layer),
                )
            }
            21 => {
                let width = sx.width().unwrap_or(1) + small + (b % 2) as u32;
                graph.add_declared(
                    Op::PadCols { start: small },
                    &[x],
                    Shape::new(sx.rows, Dim::Fixed(width)),
                    origin(layer),
                )
            }
            22 => graph.add(Op::ConcatCols, &[x, y, z][..1 + c % 3], origin(layer)),
            23 => graph.add(Op::Select, &[x, y, z], origin(layer)),
            24 => {
                let step = graph.add(Op::Hyper(Hyper::Step), &[], origin(layer)).unwrap();
                let rate = if value.is_finite() { value.abs().fract() } else { 0.5 };
                graph.add(Op::Dropout { rate, site: c as u32 }, &[x, step], origin(layer))
            }
            25 => graph.add_declared(Op::Const(value), &[], Shape::SCALAR, origin(layer)),
            26 => graph.add_declared(Op::Const(value), &[], Shape::fixed(1, 1 + small), origin(layer)),
            27 => {
                let hyper = [Hyper::LearningRate, Hyper::Step, Hyper::Schedule, Hyper::BiasCorrection(value)];
                graph.add(Op::Hyper(hyper[c % 4]), &[], origin(layer))
            }
            _ => graph.add(Op::BatchSize, &[], origin(layer)),
        };
        if let Ok(id) = attempt {
            nodes.push(id);
        }
    }
    let names = ["loss", "predict", "grad.p0.w", "update.p0.w", "update.p0.w.momentum"];
    // The last node first, so that most of the graph is live; the others
    // anywhere, so that some of it is dead.
    for (k, &pick) in recipe.outputs.iter().enumerate() {
        let node = if k == 0 { nodes[nodes.len() - 1] } else { nodes[pick % nodes.len()] };
        graph.set_output(names[k % names.len()], node);
    }
    graph
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn generated_graphs_read_back(recipe in recipe()) {
        let graph = build(&recipe);
        assert_rebuilt(&graph, &format!("{recipe:?}"));
    }

    /// Damaged text — characters deleted, replaced or inserted — never
    /// panics the reader: it gives an error on a line of the text, or a
    /// graph that `verify` and the printer handle (broken or not).
    #[test]
    fn damaged_text_never_panics(recipe in recipe(), edits in prop::collection::vec((any::<usize>(), 0u8..3, prop::sample::select(DAMAGE)), 1..6)) {
        let mut text: Vec<char> = print::graph(&build(&recipe)).chars().collect();
        for (at, kind, c) in edits {
            let at = at % (text.len() + 1);
            match kind {
                0 if at < text.len() => { text.remove(at); }
                1 if at < text.len() => text[at] = c,
                _ => text.insert(at, c),
            }
        }
        let text: String = text.into_iter().collect();
        match ir::parse(&text) {
            Ok(graph) => {
                let _ = ir::verify::verify(&graph);
                let _ = print::graph(&graph);
            }
            Err(err) => {
                let lines = text.lines().count().max(1);
                prop_assert!(err.line >= 1 && err.line <= lines && err.col >= 1, "{err} in\n{text}");
            }
        }
    }
}

/// What damage inserts: the text's own punctuation, digits, letters and a
/// character wider than one byte.
const DAMAGE: &[char] =
    &['%', ':', '=', ',', ';', '[', ']', '{', '}', ' ', '\n', '0', '9', 'B', 'x', 'f', '.', '-', 'é'];

// ---- malformed text -------------------------------------------------------------------

/// The error for `text`, as `line:col: message`.
fn error(text: &str) -> String {
    match ir::parse(text) {
        Ok(graph) => panic!("parsed:\n{}", print::graph(&graph)),
        Err(err) => err.to_string(),
    }
}

const HEAD: &str = "graph {\n  input x: f32[B,2]\n  param w: f32[2,3] = xavier ; h\n";

#[test]
fn malformed_text_gets_a_located_error() {
    let cases = [
        ("grph {\n}\n", "1:1: expected `graph`, found `grph`"),
        ("graph {\n  %0: f32[B,2] = input x\n  return\n}\n", "2:24: input `x` is not declared"),
        (&format!("{HEAD}  %0: f32[B,2] = input x\n  return loss = %0\n"), "the text ends without a closing `}`"),
        (&format!("{HEAD}  %0: f32[B,2] = input z\n  return loss = %0\n}}\n"), "4:24: input `z` is not declared"),
        (&format!("{HEAD}  %0: f32[B,2] = inptu x\n  return loss = %0\n}}\n"), "4:18: unknown op `inptu`"),
        (
            &format!("{HEAD}  %0: f32[B,x] = input x\n  return loss = %0\n}}\n"),
            "4:13: expected a size or `B`, found `x]`",
        ),
        (
            &format!("{HEAD}  %0: f32[B,2] = input x\n  %1: f32[B,2] = relu %7\n  return loss = %1\n}}\n"),
            "5:23: %7 is not defined",
        ),
        (&format!("{HEAD}  %0: f32[B,2] = input x\n  return loss = %3\n}}\n"), "5:17: %3 is not defined"),
        (
            &format!("{HEAD}  %1: f32[B,2] = input x\n  %0: f32[B,2] = relu %1\n  return loss = %0\n}}\n"),
            "5:3: %0 comes after %1",
        ),
        (
            &format!("{HEAD}  %0: f32[B,2] = input x\n  %1: f32[B,2] = pow %0\n  return loss = %1\n}}\n"),
            "5:22: `pow` needs its exponent",
        ),
        (
            &format!("{HEAD}  %0: f32[B,2] = input x\n  %1: f32[B,2] = relu[2] %0\n  return loss = %1\n}}\n"),
            "5:22: `relu` takes no attributes",
        ),
        (
            &format!("{HEAD}  %0: f32[B,2] = input x\n  %1: f32[1,2] = sum[rowz] %0\n  return loss = %1\n}}\n"),
            "5:22: expected `rows`, `cols` (in this order), found `rowz`",
        ),
        (
            &format!("{HEAD}  %0: f32[B,1] = slice_cols[begin=1] %0\n  return loss = %0\n}}\n"),
            "4:29: expected `start=..`, found `begin=1`",
        ),
        (
            &format!("{HEAD}  %0: f32[1,1] = const one\n  return loss = %0\n}}\n"),
            "4:24: expected a number, found `one`",
        ),
        (
            &format!("{HEAD}  %0: f32[B,2] = input x\n  return loss = %0\n}}\nmore\n"),
            "7:1: text after the graph's closing `}` (line 6)",
        ),
        (&format!("{HEAD}  %0: f32[B,2] = input x\n}}\n"), "5:1: the graph has no `return` line"),
        (
            &format!("{HEAD}  %4000000000: f32[B,2] = input x\n  return\n}}\n"),
            "4:3: %4000000000 is too large: ids go up to %1048575",
        ),
        (
            &format!("{HEAD}  %0: f32[B,2] = input x\n  return loss = %0, loss = %0\n}}\n"),
            "5:28: output `loss` is returned twice",
        ),
        ("graph {\n  input x: f32[2,2]\n  return\n}\n", "2:12: input is f32[B,width], not f32[2,2]"),
        (
            "graph {\n  param w: f32[2,2] = 0\n  param w: f32[2,2] = 0\n  return\n}\n",
            "3:1: param `w` is declared twice",
        ),
        (
            "graph {\n  state w.momentum: f32[2,2] for w\n  return\n}\n",
            "2:34: state `w.momentum` is for an undeclared param",
        ),
        ("graph {\n  input x: f32[B,2] ; h\n  return\n}\n", "2:21: a `input` line takes no layer comment"),
        (
            "graph {\n  frobnicate\n}\n",
            "2:3: expected `%n: ..`, `input`, `target`, `param`, `state`, `return` or `}`, found `frobnicate`",
        ),
    ];
    let mut failures = Vec::new();
    for (text, want) in cases {
        let got = error(text);
        if !got.contains(want) {
            failures.push(format!("{text}\n  want: {want}\n  got:  {got}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// Comments, blank lines and layer comments are where a reader writes them;
/// a hand-written graph with shapes that do not fit still parses (checking
/// it is `verify`'s work).
#[test]
fn comments_and_unchecked_shapes_parse() {
    let text = "; pass: simplify\n\ngraph {\n  input x: f32[B,2]\n  ; a comment\n  %0: f32[B,2] = input x\n  %1: f32[B,5] = relu %0 ; h\n  return loss = %1\n}\n; check: relu\n";
    let graph = ir::parse(text).unwrap();
    assert_eq!(graph.nodes[1].shape, Shape::batch(5));
    assert_eq!(graph.nodes[1].origin.layer.as_deref(), Some("h"));
    assert_eq!(graph.output("loss"), Some(NodeId(1)));
    assert!(ir::verify::verify(&graph).is_err());
}

// ---- the verifier's report ------------------------------------------------------------

/// A hand-broken graph: `%1` declares the wrong shape, `%3` (dead) reads a
/// later node, and an output names a node that does not exist. Each error is
/// marked under its node's line, dead nodes included, as Cranelift's
/// verifier does, and the pipeline's message names the pass.
#[test]
fn verify_marks_each_broken_node_in_place() {
    let text = "\
graph {
  input x: f32[B,2]
  %0: f32[B,2] = input x
  %1: f32[B,5] = relu %0                        ; h
  %2: f32[1,1] = sum[rows,cols] %1              ; loss
  %3: f32[B,2] = exp %4
  %4: f32[B,2] = tanh %0
  return loss = %2, predict = %1
}
";
    let mut graph = ir::parse(text).expect("a broken graph still parses");
    graph.set_output("grad.w", NodeId(9));
    let want = "\
graph {
  input x: f32[B,2]
  %0: f32[B,2] = input x
  %1: f32[B,5] = relu %0                        ; h
; ^~~~~~~~~~~~~~~~~~~~~~
; error: %1: shape [B,5] but its arguments give [B,2]
  %2: f32[1,1] = sum[rows,cols] %1              ; loss
  %3: f32[B,2] = exp %4
; ^~~~~~~~~~~~~~~~~~~~~
; error: %3 (a dead node): argument %4 does not precede its use
  return loss = %2, predict = %1, grad.w = %9
; ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
; error: output `grad.w` is %9, which does not exist
}
";
    assert_eq!(ir::verify::verify(&graph).unwrap_err(), want);
    let message = pipeline::verify_after("simplify", &graph).unwrap_err();
    assert!(message.starts_with("IR verification failed after `simplify` (a compiler bug):\n"), "{message}");
    assert!(message.ends_with(want), "{message}");
}

/// A parameter has its declaration's shape, and an input its width.
#[test]
fn verify_checks_leaves_against_their_declarations() {
    let text = "graph {\n  input x: f32[B,2]\n  param w: f32[2,3] = 0\n  %0: f32[3,2] = param w\n  %1: f32[B,3] = input x\n  return loss = %0, predict = %1\n}\n";
    let err = ir::verify::verify(&ir::parse(text).unwrap()).unwrap_err();
    assert!(err.contains("; error: %0: shape [3,2] but the declaration gives [2,3]"), "{err}");
    assert!(err.contains("; error: %1: shape [B,3] but the declaration gives [B,2]"), "{err}");
}
