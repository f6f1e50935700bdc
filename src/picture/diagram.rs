//! The textbook network diagram of `nnc draw`: neurons as circles in
//! columns, left to right in the order the model defines them.
//!
//! Input neurons carry their column names; each hidden or output neuron
//! carries its own activation (a per-neuron list reads neuron by neuron).
//! Under each column: the layer as `f(x · W + b)`, its weight shapes and
//! the `.nn` line it came from. Columns wider than [`MAX_SLOTS`] show their
//! first and last neurons around `⋮ N more`. A `dense` layer is wired to its
//! source neuron to neuron; a sum (skip connection) and a `concat` are
//! wired one to one, and a source that is not the previous column is drawn
//! as one arc over the columns between. With weights, each edge is coloured
//! by the sign of its weight and as wide as its magnitude, with the exact
//! value as a tooltip.

use super::svg::{Anchor, Svg, num, text_width};
use crate::ir::program::{Binding, Columns, Program};
use crate::ir::{Binary, Graph, NodeId, Op};
use crate::runtime::train::Params;
use std::collections::HashMap;

/// At most this many neurons are drawn per column: wider ones show the
/// first `MAX_SLOTS - 2`, a `⋮ N more` slot and the last one.
pub const MAX_SLOTS: usize = 9;

const RADIUS: f64 = 21.0;
const PITCH: f64 = 54.0;
const CAPTION_SIZE: f64 = 11.0;
const CAPTION_PITCH: f64 = 15.0;
const GAP: f64 = 70.0;
const ARC_PITCH: f64 = 18.0;

/// What a column of neurons is.
#[derive(Clone, Debug)]
enum Kind {
    Input,
    Dense,
    Sum(Vec<NodeId>),
    Concat,
    /// Any other expression of earlier values.
    Other,
}

#[derive(Clone, Debug)]
struct Column {
    name: String,
    kind: Kind,
    width: usize,
    /// One label per neuron (column names, activations, `+`).
    labels: Vec<String>,
    caption: Vec<String>,
}

/// A visible place in a column: neuron `i`, or the collapsed middle.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Slot {
    Neuron(usize),
    More(usize),
}

fn slots(width: usize) -> Vec<Slot> {
    if width <= MAX_SLOTS {
        (0..width).map(Slot::Neuron).collect()
    } else {
        let mut out: Vec<Slot> = (0..MAX_SLOTS - 2).map(Slot::Neuron).collect();
        out.push(Slot::More(width - (MAX_SLOTS - 1)));
        out.push(Slot::Neuron(width - 1));
        out
    }
}

/// How two columns are wired.
#[derive(Clone, Debug)]
enum Link {
    /// Source neurons `at..at + width` to every neuron of a `dense` layer,
    /// through rows `row..row + width` of the weight matrix `param`.
    Dense { from: usize, to: usize, param: usize, at: usize, width: usize, row: usize },
    /// Source neuron `at + i` to neuron `offset + i`, for `i < width`.
    OneToOne { from: usize, to: usize, at: usize, width: usize, offset: usize },
    /// A source that is not the previous column: one arc.
    Arc { from: usize, to: usize, label: String },
}

/// The diagram of `program` as SVG. `source` is the model's text (for the
/// `.nn` lines), `input_labels` the column names each input binding
/// resolved to (from a data file; positions are used without one),
/// `weights` colour the edges.
pub fn draw(
    program: &Program,
    source: &str,
    input_labels: Option<&[Vec<String>]>,
    weights: Option<&Params>,
) -> Result<String, String> {
    if program.named.is_empty() {
        return Err(
            "the model has no layers to draw (it has no `model` block); `nnc plot` draws a model without data".into()
        );
    }
    let graph = &program.graph;
    let (inputs, input_nodes) = input_column(program, source, input_labels);
    let mut columns = vec![inputs];
    // Where each value's neurons are: a column, and the first neuron's place in it.
    let mut column_of: HashMap<NodeId, (usize, usize)> = HashMap::new();
    let mut names: HashMap<NodeId, String> = HashMap::new();
    for (node, name, offset) in input_nodes {
        column_of.insert(node, (0, offset));
        names.insert(node, name);
    }
    let mut links = Vec::new();
    for (name, id) in &program.named {
        let index = columns.len();
        let column = model_column(program, source, name, *id, &column_of, &names, &mut links, index);
        column_of.entry(*id).or_insert((index, 0));
        names.entry(*id).or_insert(name.clone());
        columns.push(column);
    }
    Ok(render(program, graph, source, &columns, &links, weights))
}

/// Every input binding in one column, in binding order (as `concat` of
/// them would lay them out), and where each binding's neurons start.
fn input_column(
    program: &Program,
    source: &str,
    input_labels: Option<&[Vec<String>]>,
) -> (Column, Vec<(NodeId, String, usize)>) {
    let mut inputs: Vec<&Binding> = program.data.iter().filter(|b| !b.is_target).collect();
    inputs.sort_by_key(|b| b.index);
    let mut position = 0;
    let mut labels = Vec::new();
    let mut caption = Vec::new();
    let mut nodes = Vec::new();
    for (k, binding) in inputs.iter().enumerate() {
        let width = binding.width() as usize;
        let own = match (input_labels.and_then(|l| l.get(k)), &binding.columns) {
            (Some(names), _) if names.len() == width => names.clone(),
            (_, Columns::List(refs)) if refs.len() == width => refs
                .iter()
                .map(|r| match r {
                    crate::ir::program::ColumnRef::Name(name, _) => name.clone(),
                    crate::ir::program::ColumnRef::Index(i, _) => format!("column {}", i + 1),
                })
                .collect(),
            (_, Columns::Positional) if binding.column_count() == width => {
                (0..width).map(|i| format!("column {}", position + i + 1)).collect()
            }
            _ => (0..width).map(|i| format!("{}[{i}]", binding.name)).collect(),
        };
        if let Some(node) = program.graph.nodes.iter().position(|n| n.op == Op::Input(binding.index)) {
            nodes.push((NodeId(node as u32), binding.name.clone(), labels.len()));
        }
        labels.extend(own);
        position += binding.column_count();
        let mut line = format!("{}: [B, {width}]", binding.name);
        if binding.scale != 1.0 {
            line.push_str(&format!(", × {}", binding.scale));
        }
        if binding.standardize {
            line.push_str(", standardized");
        }
        if matches!(binding.encoding, crate::ir::program::Encoding::OneHot { .. }) {
            line.push_str(", one-hot");
        }
        caption.push(line);
        if inputs.len() == 1 {
            caption.push(line_of(source, binding.span.start as usize));
        }
    }
    let name = match inputs.as_slice() {
        [one] => one.name.clone(),
        _ => "inputs".to_string(),
    };
    let width = labels.len();
    (Column { name, kind: Kind::Input, width, labels, caption }, nodes)
}

/// `line 9: h = dense(x, 2, tanh)`: the source line at `offset`, without
/// its comment, shortened.
fn line_of(source: &str, offset: usize) -> String {
    let (line, _) = crate::span::line_col(source, offset);
    let text = source.lines().nth(line - 1).unwrap_or("");
    let code = text.split('#').next().unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" ");
    format!("line {line}: {}", shorten(&code, 52))
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut out: String = text.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

/// A column and the place of a value's first neuron in it.
type Place = (usize, usize);
/// An op a value passes through on its way to a layer (`dropout`, its rate).
type Via = (&'static str, f64);

/// The column a value comes from, and what it passes through on the way
/// (`dropout 0.2`); `None` for an expression that is not one.
fn resolve(graph: &Graph, mut node: NodeId, column_of: &HashMap<NodeId, (usize, usize)>) -> Option<(Place, Vec<Via>)> {
    let mut via = Vec::new();
    loop {
        if let Some(&place) = column_of.get(&node) {
            return Some((place, via));
        }
        match graph.node(node).op {
            Op::Dropout { rate, .. } => {
                via.push(("dropout", rate));
                node = graph.node(node).args[0];
            }
            _ => return None,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn model_column(
    program: &Program,
    source: &str,
    name: &str,
    id: NodeId,
    column_of: &HashMap<NodeId, (usize, usize)>,
    names: &HashMap<NodeId, String>,
    links: &mut Vec<Link>,
    index: usize,
) -> Column {
    let graph = &program.graph;
    let node = graph.node(id);
    let width = node.shape.width().unwrap_or(1) as usize;
    let span_start = node.origin.span.map_or(0, |s| s.start as usize);
    let formula = |n: NodeId| crate::ir::math::formula(graph, n, names);
    let mut link = |from: usize, make: Link| {
        if from + 1 == index {
            links.push(make);
        } else {
            let label = match &make {
                Link::Dense { param, .. } => format!("· {}", graph.params[*param].name),
                Link::OneToOne { offset, .. } if *offset > 0 => format!("at {offset}"),
                _ => String::new(),
            };
            links.push(Link::Arc { from, to: index, label });
        }
    };
    if let Some(layer) = program.layers.iter().find(|l| l.name == name) {
        let weight = graph.params.iter().position(|p| p.name == format!("{name}.w"));
        let matmul_source = weight.and_then(|p| {
            let param_node = graph.nodes.iter().position(|n| n.op == Op::Param(p as u32))?;
            graph
                .nodes
                .iter()
                .find(|n| matches!(n.op, Op::MatMul { .. }) && n.args.get(1) == Some(&NodeId(param_node as u32)))
                .map(|n| n.args[0])
        });
        let mut input_text = "…".to_string();
        if let (Some(param), Some(src)) = (weight, matmul_source) {
            let src_width = graph.shape(src).width().unwrap_or(1) as usize;
            let parts: Option<Vec<(NodeId, usize)>> = match &graph.node(src).op {
                _ if resolve(graph, src, column_of).is_some() => Some(vec![(src, src_width)]),
                Op::ConcatCols if graph.node(src).args.iter().all(|a| resolve(graph, *a, column_of).is_some()) => Some(
                    graph.node(src).args.iter().map(|a| (*a, graph.shape(*a).width().unwrap_or(1) as usize)).collect(),
                ),
                _ => None,
            };
            match parts {
                Some(parts) => {
                    let mut row = 0;
                    let mut texts = Vec::new();
                    // Parts side by side in one column merge into one link.
                    let mut merged: Vec<(usize, usize, usize, usize)> = Vec::new();
                    for (part, part_width) in parts {
                        let Some(((from, at), via)) = resolve(graph, part, column_of) else { continue };
                        let base = names.get(&graph_node_of(graph, part, column_of)).cloned().unwrap_or_default();
                        texts.push(via.iter().rev().fold(base, |acc, (op, rate)| format!("{op}({acc}, {rate})")));
                        match merged.last_mut() {
                            Some(last) if last.0 == from && last.1 + last.2 == at && last.3 + last.2 == row => {
                                last.2 += part_width
                            }
                            _ => merged.push((from, at, part_width, row)),
                        }
                        row += part_width;
                    }
                    for (from, at, width, row) in merged {
                        link(from, Link::Dense { from, to: index, param, at, width, row });
                    }
                    input_text = if texts.len() == 1 { texts.remove(0) } else { format!("[{}]", texts.join(" | ")) };
                }
                None => input_text = formula(src),
            }
        }
        let bias = if layer.bias { format!(" + {name}.b") } else { String::new() };
        let distinct: Vec<&String> = {
            let mut seen = Vec::new();
            for a in &layer.activations {
                if !seen.contains(&a) {
                    seen.push(a);
                }
            }
            seen
        };
        let f = if distinct.len() == 1 {
            format!("f = {}", distinct[0])
        } else {
            shorten(&format!("f = [{}], neuron by neuron", layer.activations.join(", ")), 52)
        };
        let mut shapes = format!("{name}.w: [{}, {}]", layer.inputs, layer.units);
        if layer.bias {
            shapes.push_str(&format!("   {name}.b: [1, {}]", layer.units));
        }
        let caption = vec![
            shorten(&format!("{name} = f({input_text} · {name}.w{bias})"), 52),
            f,
            shapes,
            line_of(source, layer.span.start as usize),
        ];
        return Column { name: name.to_string(), kind: Kind::Dense, width, labels: layer.activations.clone(), caption };
    }
    let caption_tail = line_of(source, span_start);
    match &node.op {
        Op::Binary(Binary::Add)
            if node.args.iter().all(|a| resolve(graph, *a, column_of).is_some())
                && node.args.iter().all(|a| graph.shape(*a) == node.shape) =>
        {
            for arg in &node.args {
                if let Some(((from, at), _)) = resolve(graph, *arg, column_of) {
                    link(from, Link::OneToOne { from, to: index, at, width, offset: 0 });
                }
            }
            Column {
                name: name.to_string(),
                kind: Kind::Sum(node.args.clone()),
                width,
                labels: vec!["+".into(); width],
                caption: vec![
                    shorten(&format!("{name} = {}", formula(id)), 52),
                    "a skip connection: the sum".into(),
                    caption_tail,
                ],
            }
        }
        Op::ConcatCols if node.args.iter().all(|a| resolve(graph, *a, column_of).is_some()) => {
            let mut offset = 0;
            let mut parts = Vec::new();
            for arg in &node.args {
                let part_width = graph.shape(*arg).width().unwrap_or(1) as usize;
                if let Some(((from, at), _)) = resolve(graph, *arg, column_of) {
                    link(from, Link::OneToOne { from, to: index, at, width: part_width, offset });
                }
                parts.push(format!(
                    "{} [{offset}:{}]",
                    names.get(arg).cloned().unwrap_or_default(),
                    offset + part_width
                ));
                offset += part_width;
            }
            Column {
                name: name.to_string(),
                kind: Kind::Concat,
                width,
                labels: vec![String::new(); width],
                caption: vec![shorten(&format!("{name} = concat: {}", parts.join(", ")), 52), caption_tail],
            }
        }
        _ => Column {
            name: name.to_string(),
            kind: Kind::Other,
            width,
            labels: vec![String::new(); width],
            caption: vec![shorten(&format!("{name} = {}", formula(id)), 52), caption_tail],
        },
    }
}

/// The node a resolved source names (through its dropouts).
fn graph_node_of(graph: &Graph, mut node: NodeId, column_of: &HashMap<NodeId, (usize, usize)>) -> NodeId {
    while !column_of.contains_key(&node) {
        node = graph.node(node).args[0];
    }
    node
}

/// Half the width of a column's name and caption.
fn caption_half(column: &Column) -> f64 {
    let widest = column.caption.iter().map(|l| text_width(l, CAPTION_SIZE)).fold(2.0 * RADIUS, f64::max);
    widest.max(text_width(&column.name, 15.0)) / 2.0
}

/// Where column `c`'s slots are.
struct Placed {
    x: f64,
    ys: Vec<f64>,
    slots: Vec<Slot>,
}

impl Placed {
    fn y_of(&self, neuron: usize) -> Option<f64> {
        self.slots.iter().position(|s| *s == Slot::Neuron(neuron)).map(|i| self.ys[i])
    }
}

fn render(
    program: &Program,
    graph: &Graph,
    source: &str,
    columns: &[Column],
    links: &[Link],
    weights: Option<&Params>,
) -> String {
    let arcs = links.iter().filter(|l| matches!(l, Link::Arc { .. })).count();
    let max_slots = columns.iter().map(|c| slots(c.width).len()).max().unwrap_or(1);
    let top = 64.0 + arcs as f64 * ARC_PITCH;
    let body = max_slots as f64 * PITCH;
    // Input labels sit left of the first column.
    let label_room = columns
        .iter()
        .filter(|c| matches!(c.kind, Kind::Input))
        .flat_map(|c| c.labels.iter())
        .map(|l| text_width(l, 12.0))
        .fold(0.0, f64::max);
    let mut placed = Vec::new();
    let first_half = columns.first().map_or(0.0, caption_half);
    let mut x = (20.0 + label_room + RADIUS + 10.0).max(10.0 + first_half);
    let mut half_widths = Vec::new();
    for column in columns {
        let half = caption_half(column);
        if let Some(prev) = half_widths.last() {
            x += prev + half.max(RADIUS + GAP / 2.0) + 20.0;
        }
        let slots = slots(column.width);
        let first = top + (body - slots.len() as f64 * PITCH) / 2.0 + PITCH / 2.0;
        let ys = (0..slots.len()).map(|k| first + k as f64 * PITCH).collect();
        placed.push(Placed { x, ys, slots });
        half_widths.push(half.max(RADIUS + GAP / 2.0));
    }
    let loss_text = graph
        .output("loss")
        .and_then(|id| graph.node(id).origin.span)
        .map(|span| line_of(source, span.start as usize))
        .unwrap_or_default();
    let last_x = placed.last().map_or(0.0, |p| p.x);
    let loss_x = last_x + RADIUS + 60.0;
    let width = (loss_x + text_width(&loss_text, CAPTION_SIZE).max(text_width("loss", 13.0)) + 20.0)
        .max(last_x + half_widths.last().copied().unwrap_or(0.0) + 20.0);
    let caption_lines = columns.iter().map(|c| c.caption.len()).max().unwrap_or(0);
    let legend = weights
        .is_some()
        .then_some("weights: blue ≥ 0, red < 0, line width ∝ |w| (per layer); hover over an edge for its value");
    let height =
        top + body + 24.0 + caption_lines as f64 * CAPTION_PITCH + 16.0 + if legend.is_some() { 18.0 } else { 0.0 };
    let mut svg = Svg::new(width.ceil(), height.ceil());

    // Edges first, under the neurons.
    let mut arc_level = 0;
    for link in links {
        match link {
            Link::Dense { from, to, param, at, width, row } => {
                let (a, b) = (&placed[*from], &placed[*to]);
                let values = weights.map(|w| w.get(*param));
                let units = columns[*to].width;
                let max = values.map_or(1.0, |v| v.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-12));
                let pname = &graph.params[*param].name;
                for k in 0..*width {
                    let Some(ya) = a.y_of(at + k) else { continue };
                    let i = row + k;
                    for (j, yb) in b.slots.iter().zip(&b.ys) {
                        let Slot::Neuron(j) = *j else { continue };
                        let from_pt = (a.x + RADIUS, ya);
                        let to_pt = (b.x - RADIUS, *yb);
                        match values {
                            Some(v) => {
                                let w = v[i * units + j];
                                let colour = if w >= 0.0 { "#2b6cb0" } else { "#c53030" };
                                let stroke = 0.4 + 3.6 * (w.abs() / max) as f64;
                                let style = format!(
                                    r#"stroke="{colour}" stroke-width="{}" stroke-opacity="0.75""#,
                                    num(stroke)
                                );
                                svg.line_titled(from_pt, to_pt, &style, &format!("{pname}[{i},{j}] = {w}"));
                            }
                            None => svg.line(from_pt, to_pt, r##"stroke="#9aa5b1" stroke-width="1""##),
                        }
                    }
                }
            }
            Link::OneToOne { from, to, at, width, offset } => {
                let (a, b) = (&placed[*from], &placed[*to]);
                for k in 0..*width {
                    let (Some(ya), Some(yb)) = (a.y_of(at + k), b.y_of(offset + k)) else { continue };
                    {
                        svg.line(
                            (a.x + RADIUS, ya),
                            (b.x - RADIUS, yb),
                            r##"stroke="#718096" stroke-width="1.2" stroke-dasharray="4 3""##,
                        );
                    }
                }
            }
            Link::Arc { from, to, label } => {
                let (a, b) = (&placed[*from], &placed[*to]);
                let level = top - 22.0 - arc_level as f64 * ARC_PITCH;
                arc_level += 1;
                let (y_a, y_b) = (a.ys[0] - RADIUS, b.ys[0] - RADIUS);
                let d = format!(
                    "M{},{} C{},{} {},{} {},{}",
                    num(a.x),
                    num(y_a),
                    num(a.x),
                    num(level),
                    num(b.x),
                    num(level),
                    num(b.x),
                    num(y_b - 2.0)
                );
                svg.path(&d, r##"fill="none" stroke="#718096" stroke-width="1.5" stroke-dasharray="5 3" marker-end="url(#arrow)""##);
                let text = format!("{}{}{}", columns[*from].name, if label.is_empty() { "" } else { " " }, label);
                // Over the curve's highest point (a cubic Bézier's midpoint).
                let apex = (y_a + 6.0 * level + y_b - 2.0) / 8.0;
                svg.text(((a.x + b.x) / 2.0, apex - 4.0), 10.0, Anchor::Middle, r##"fill="#4a5568""##, &text);
            }
        }
    }

    let last = columns.len() - 1;
    for (c, (column, place)) in columns.iter().zip(&placed).enumerate() {
        let (fill, stroke) = match column.kind {
            Kind::Input => ("#e8f0fe", "#3c64a0"),
            _ if c == last => ("#e6f4ea", "#2f855a"),
            Kind::Dense => ("#fff5d6", "#b7791f"),
            _ => ("#f1f1f1", "#718096"),
        };
        let heading = match &column.kind {
            Kind::Input => format!("input · {}", plural(column.width, "value")),
            Kind::Dense if c == last => format!("output · {}", plural(column.width, "neuron")),
            Kind::Dense => format!("dense · {}", plural(column.width, "neuron")),
            Kind::Sum(args) => format!("sum of {}", args.len()),
            Kind::Concat => format!("concat · {}", column.width),
            Kind::Other => format!("{} values", column.width),
        };
        svg.text((place.x, 22.0), 15.0, Anchor::Middle, r#"font-weight="bold""#, &column.name);
        svg.text((place.x, 38.0), 11.0, Anchor::Middle, r##"fill="#4a5568""##, &heading);
        // One size for every label of a column, so that neurons read alike.
        let longest = column.labels.iter().map(|l| neuron_label(l).0.chars().count()).max().unwrap_or(1);
        let label_size = ((2.0 * RADIUS - 5.0) / (longest.max(1) as f64 * 0.6)).clamp(8.0, 12.0);
        for (slot, y) in place.slots.iter().zip(&place.ys) {
            match *slot {
                Slot::More(hidden) => {
                    svg.text((place.x, y + 2.0), 20.0, Anchor::Middle, r##"fill="#4a5568""##, "⋮");
                    svg.text(
                        (place.x, y + 18.0),
                        10.0,
                        Anchor::Middle,
                        r##"fill="#4a5568""##,
                        &format!("{hidden} more"),
                    );
                }
                Slot::Neuron(i) => {
                    let label = &column.labels[i];
                    let dash = if matches!(column.kind, Kind::Concat) { r#" stroke-dasharray="3 2""# } else { "" };
                    let style = format!(r#"fill="{fill}" stroke="{stroke}" stroke-width="1.6"{dash}"#);
                    let title = match column.kind {
                        Kind::Input => format!("input {i}: {label}"),
                        Kind::Dense => format!("{}[{i}]: {label}", column.name),
                        _ => format!("{}[{i}]", column.name),
                    };
                    svg.circle((place.x, *y), RADIUS, &style, Some(&title));
                    match column.kind {
                        Kind::Input => svg.text((place.x - RADIUS - 6.0, y + 4.0), 12.0, Anchor::End, "", label),
                        _ => {
                            let (name, args) = neuron_label(label);
                            match args {
                                Some(args) => {
                                    svg.text((place.x, y - 1.0), label_size, Anchor::Middle, "", &name);
                                    svg.text((place.x, y + 10.0), 9.0, Anchor::Middle, r##"fill="#4a5568""##, &args);
                                }
                                None => {
                                    svg.text((place.x, y + label_size * 0.36), label_size, Anchor::Middle, "", &name)
                                }
                            }
                        }
                    }
                }
            }
        }
        let mut y = top + body + 24.0;
        for (k, line) in column.caption.iter().enumerate() {
            let style = if k == 0 { r##"fill="#1a202c""## } else { r##"fill="#4a5568""## };
            svg.text((place.x, y), CAPTION_SIZE, Anchor::Middle, style, line);
            y += CAPTION_PITCH;
        }
    }
    if let Some(legend) = legend {
        svg.text((12.0, height - 12.0), CAPTION_SIZE, Anchor::Start, r##"fill="#4a5568""##, legend);
    }
    // The output feeds the loss.
    if let Some(place) = placed.last() {
        let y = top + body / 2.0;
        svg.line(
            (place.x + RADIUS + 8.0, y),
            (loss_x - 6.0, y),
            r##"stroke="#555" stroke-width="1.5" marker-end="url(#arrow)""##,
        );
        svg.text((loss_x, y + 5.0), 13.0, Anchor::Start, r#"font-weight="bold""#, "loss");
        svg.text((loss_x, y + 22.0), CAPTION_SIZE, Anchor::Start, r##"fill="#4a5568""##, &loss_text);
        if let Some(t) = program.data.iter().find(|b| b.is_target) {
            svg.text(
                (loss_x, y + 37.0),
                CAPTION_SIZE,
                Anchor::Start,
                r##"fill="#4a5568""##,
                &format!("target {}: [B, {}]", t.name, t.width()),
            );
        }
    }
    svg.finish()
}

/// What fits in a circle: the activation's name, shortened where it is
/// long (`leaky_relu` reads `lrelu`; the tooltip has it whole), and its
/// arguments for a second line (`leaky_relu(0.2)` gives `0.2`).
fn neuron_label(activation: &str) -> (String, Option<String>) {
    let (name, args) = match activation.split_once('(') {
        Some((name, rest)) => (name, Some(rest.trim_end_matches(')').to_string())),
        None => (activation, None),
    };
    let name = match name {
        "leaky_relu" => "lrelu",
        other => other,
    };
    (shorten(name, 8), args)
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_columns_collapse_to_first_and_last() {
        assert_eq!(slots(3), vec![Slot::Neuron(0), Slot::Neuron(1), Slot::Neuron(2)]);
        let wide = slots(64);
        assert_eq!(wide.len(), MAX_SLOTS);
        assert_eq!(wide[MAX_SLOTS - 2], Slot::More(56));
        assert_eq!(wide[MAX_SLOTS - 1], Slot::Neuron(63));
    }
}
