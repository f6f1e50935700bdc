//! The article's figure for a model without data: the loss as a function
//! of its parameter with the gradient-descent path walking down it (one
//! parameter), or a contour plot with the path (two parameters).
//!
//! The path is computed by stepping the training graph (forward, gradient
//! and optimizer update, as `nnc run` compiles it) on the reference
//! interpreter in f64, one step at a time, so every point of the path is
//! known; the curve and the derivative are the interpreter's values of the
//! loss and of `grad.<param>`.

use super::chart::{self, COLOURS, Frame, Note, Panel, Series};
use super::svg::{Anchor, Svg, num};
use crate::ir::interp::{self, Env, Tensor};
use crate::ir::program::{Program, Schedule};
use crate::ir::{Graph, NodeId};
use crate::pipeline::Graphs;

/// A descent: the parameters (by name) at every step, from the start, and
/// the loss at each of those points.
#[derive(Clone, Debug)]
pub struct Path {
    pub names: Vec<String>,
    /// `points[k]` holds every parameter after `k` steps.
    pub points: Vec<Vec<f64>>,
    pub losses: Vec<f64>,
}

/// Step `graphs.train` on the interpreter `steps` times from `start` with
/// base rate `learning_rate`.
pub fn descend(program: &Program, graphs: &Graphs, start: &[f64], steps: u64, learning_rate: f64) -> Path {
    let train = &graphs.train;
    let names: Vec<String> = train.params.iter().map(|p| p.name.clone()).collect();
    let mut values = start.to_vec();
    let mut state: Vec<Tensor> =
        train.states.iter().map(|s| Tensor::filled(s.shape.rows.resolve(1), s.shape.cols.resolve(1), 0.0)).collect();
    let schedule: Schedule = program.train.schedule.value.resolved(steps);
    let mut points = vec![values.clone()];
    let mut losses = Vec::new();
    let update_ids: Vec<Option<NodeId>> = names.iter().map(|n| train.output(&format!("update.{n}"))).collect();
    let state_ids: Vec<Option<NodeId>> =
        train.states.iter().map(|s| train.output(&format!("update.{}", s.name))).collect();
    for step in 0..steps {
        let env = Env {
            params: values.iter().map(|&v| Tensor::scalar(v)).collect(),
            learning_rate,
            state: state.clone(),
            step,
            schedule,
            ..Env::default()
        };
        let out = interp::eval(train, &env);
        losses.push(train.output("loss").map_or(f64::NAN, |id| out[id.index()].data[0]));
        for (value, id) in values.iter_mut().zip(&update_ids) {
            if let Some(id) = id {
                *value = out[id.index()].data[0];
            }
        }
        for (tensor, id) in state.iter_mut().zip(&state_ids) {
            if let Some(id) = id {
                *tensor = out[id.index()].clone();
            }
        }
        points.push(values.clone());
        if values.iter().any(|v| !v.is_finite()) {
            break;
        }
    }
    losses.push(loss_at(&program.graph, &values));
    Path { names, points, losses }
}

/// The loss of a data-free model at these parameter values.
pub fn loss_at(graph: &Graph, values: &[f64]) -> f64 {
    output_at(graph, "loss", values)
}

fn output_at(graph: &Graph, output: &str, values: &[f64]) -> f64 {
    let env = Env { params: values.iter().map(|&v| Tensor::scalar(v)).collect(), ..Env::default() };
    let out = interp::eval(graph, &env);
    graph.output(output).map_or(f64::NAN, |id| out[id.index()].data[0])
}

/// `[lo, hi]` around the path: its range with half its width (at least 1)
/// on either side.
fn around(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return (-1.0, 1.0);
    }
    let pad = (hi - lo).max(1.0) * 0.5;
    (lo - pad, hi + pad)
}

/// What the figure says about the run (for its subtitle).
pub struct Caption {
    pub title: String,
    /// `loss = x^3 / 3 - x` and `d loss/d x = x^2 - 1`, as `nnc grad` prints them.
    pub formulas: Vec<String>,
    pub settings: String,
}

/// One parameter: the curve, its derivative and the path; below, the loss
/// and the parameter per step.
pub fn one_parameter(program: &Program, graphs: &Graphs, path: &Path, caption: &Caption) -> String {
    let name = &path.names[0];
    let xs: Vec<f64> = path.points.iter().map(|p| p[0]).collect();
    let (lo, hi) = around(xs.iter().copied());
    let samples = 240;
    let grid: Vec<f64> = (0..=samples).map(|k| lo + (hi - lo) * k as f64 / samples as f64).collect();
    let curve: Vec<(f64, f64)> = grid.iter().map(|&x| (x, loss_at(&program.graph, &[x]))).collect();
    let grad_name = format!("grad.{name}");
    let slope: Vec<(f64, f64)> = grid.iter().map(|&x| (x, output_at(&graphs.grad, &grad_name, &[x]))).collect();
    let walk: Vec<(f64, f64)> = xs.iter().zip(&path.losses).map(|(&x, &l)| (x, l)).collect();
    let steps = xs.len() - 1;
    let last = *xs.last().unwrap_or(&f64::NAN);
    let loss_formula = caption.formulas.first().cloned().unwrap_or_else(|| "loss".into());
    let grad_formula = caption.formulas.get(1).cloned().unwrap_or_else(|| format!("d loss/d {name}"));
    let mut walk_series = Series::line(&format!("path ({steps} steps)"), walk.clone(), "#c53030");
    walk_series.dots = true;
    let mut slope_series = Series::line(&grad_formula, slope, COLOURS[1]);
    slope_series.dashed = true;
    let figure = Panel {
        title: format!("{loss_formula} and its gradient descent"),
        x_label: name.clone(),
        y_label: "value".into(),
        series: vec![Series::line(&loss_formula, curve, COLOURS[0]), slope_series, walk_series],
        notes: vec![
            Note { at: walk[0], label: format!("start {name} = {}", fmt(xs[0])), below: false },
            Note {
                at: *walk.last().unwrap_or(&walk[0]),
                label: format!("{name} = {:.3} after {steps} steps", last),
                below: true,
            },
        ],
        zero_line: true,
        ..Panel::default()
    };
    let by_step = Panel {
        title: format!("{name} and the loss per step"),
        x_label: "step".into(),
        y_label: "value".into(),
        series: vec![
            Series::line(name, xs.iter().enumerate().map(|(k, &x)| (k as f64, x)).collect(), "#c53030"),
            Series::line("loss", path.losses.iter().enumerate().map(|(k, &l)| (k as f64, l)).collect(), COLOURS[0]),
        ],
        zero_line: true,
        ..Panel::default()
    };
    let subtitle = format!("{}\n{}", caption.formulas.join("; "), caption.settings);
    chart::render(&caption.title, &subtitle, &[figure, by_step])
}

fn fmt(x: f64) -> String {
    let text = format!("{x:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Two parameters: contour lines of the loss over the plane around the
/// path, and the path on top.
pub fn two_parameters(program: &Program, path: &Path, caption: &Caption) -> String {
    let (a, b) = (&path.names[0], &path.names[1]);
    let x_range = around(path.points.iter().map(|p| p[0]));
    let y_range = around(path.points.iter().map(|p| p[1]));
    const N: usize = 80;
    let at = |i: usize, range: (f64, f64)| range.0 + (range.1 - range.0) * i as f64 / N as f64;
    let mut values = vec![0.0; (N + 1) * (N + 1)];
    for j in 0..=N {
        for i in 0..=N {
            values[j * (N + 1) + i] = loss_at(&program.graph, &[at(i, x_range), at(j, y_range)]);
        }
    }
    let levels = levels(&values, 14);
    let side = 520.0;
    let mut header = caption.formulas.clone();
    header.push(caption.settings.clone());
    let (left, top) = (74.0, 52.0 + 16.0 * header.len() as f64);
    let frame = Frame { left, top, width: side, height: side, x: x_range, y: y_range, log_y: false };
    let mut svg = Svg::new(left + side + 230.0, top + side + 56.0);
    svg.text((left, 26.0), 16.0, Anchor::Start, r#"font-weight="bold""#, &caption.title);
    for (k, line) in header.iter().enumerate() {
        svg.text((left, 44.0 + 16.0 * k as f64), 11.0, Anchor::Start, r##"fill="#4a5568""##, line);
    }
    frame.axes(&mut svg, a, b);
    for (k, level) in levels.iter().enumerate() {
        let shade = 200 - (k * 150 / levels.len().max(1)) as u32;
        let colour = format!("rgb({shade},{shade},{})", 230u32.min(shade + 40));
        let mut d = String::new();
        for ((x0, y0), (x1, y1)) in contour(&values, N, *level) {
            let p = frame.point((at_f(x0, x_range, N), at_f(y0, y_range, N)));
            let q = frame.point((at_f(x1, x_range, N), at_f(y1, y_range, N)));
            d.push_str(&format!("M{},{}L{},{}", num(p.0), num(p.1), num(q.0), num(q.1)));
        }
        if !d.is_empty() {
            svg.path(&d, &format!(r#"fill="none" stroke="{colour}" stroke-width="1.2""#));
        }
    }
    let walk: Vec<(f64, f64)> = path.points.iter().map(|p| frame.point((p[0], p[1]))).collect();
    svg.polyline(&walk, r##"stroke="#c53030" stroke-width="1.8""##);
    for p in &walk {
        svg.circle(*p, 2.2, r##"fill="#c53030""##, None);
    }
    svg.circle(walk[0], 5.0, r##"fill="white" stroke="#c53030" stroke-width="2""##, Some("start"));
    if let Some(end) = walk.last() {
        svg.circle(*end, 5.0, r##"fill="#c53030" stroke="white" stroke-width="1""##, Some("end"));
    }
    let steps = path.points.len() - 1;
    let first = &path.points[0];
    let last = path.points.last().unwrap_or(first);
    let legend_x = left + side + 16.0;
    let lines = [
        format!("start ({}, {})", fmt(first[0]), fmt(first[1])),
        format!("after {steps} steps:"),
        format!("{a} = {:.3}, {b} = {:.3}", last[0], last[1]),
        format!("loss = {:.4}", path.losses.last().copied().unwrap_or(f64::NAN)),
        String::new(),
        format!("{} contour levels of the loss", levels.len()),
    ];
    for (k, line) in lines.iter().enumerate() {
        svg.text((legend_x, top + 16.0 + 16.0 * k as f64), 11.0, Anchor::Start, "", line);
    }
    svg.finish()
}

fn at_f(index: f64, range: (f64, f64), n: usize) -> f64 {
    range.0 + (range.1 - range.0) * index / n as f64
}

/// `count` levels at evenly spaced quantiles of the finite values, so that
/// contours crowd neither the floor of a valley nor its walls.
fn levels(values: &[f64], count: usize) -> Vec<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<f64> = (1..=count).map(|k| sorted[(k * (sorted.len() - 1)) / (count + 1)]).collect();
    out.dedup();
    out
}

/// Marching squares over an `(n+1)²` grid (row `j`, column `i`): the
/// segments where the values cross `level`, in grid coordinates.
fn contour(values: &[f64], n: usize, level: f64) -> Vec<((f64, f64), (f64, f64))> {
    let at = |i: usize, j: usize| values[j * (n + 1) + i];
    let mut segments = Vec::new();
    for j in 0..n {
        for i in 0..n {
            let corners = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)];
            let v: Vec<f64> = corners.iter().map(|&(x, y)| at(x, y)).collect();
            if v.iter().any(|x| !x.is_finite()) {
                continue;
            }
            // Crossing points on the four edges, in order.
            let mut crossings = Vec::new();
            for e in 0..4 {
                let (p, q) = (corners[e], corners[(e + 1) % 4]);
                let (a, b) = (v[e], v[(e + 1) % 4]);
                if (a < level) != (b < level) {
                    let t = (level - a) / (b - a);
                    crossings
                        .push((p.0 as f64 + t * (q.0 as f64 - p.0 as f64), p.1 as f64 + t * (q.1 as f64 - p.1 as f64)));
                }
            }
            match crossings.len() {
                2 => segments.push((crossings[0], crossings[1])),
                4 => {
                    segments.push((crossings[0], crossings[1]));
                    segments.push((crossings[2], crossings[3]));
                }
                _ => {}
            }
        }
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contour_of_a_plane_is_a_straight_line() {
        // v = i on a 2×2-cell grid: the level 0.5 crosses at i = 0.5 in each row of cells.
        let n = 2;
        let values: Vec<f64> = (0..=n).flat_map(|_| (0..=n).map(|i| i as f64)).collect();
        let segments = contour(&values, n, 0.5);
        assert_eq!(segments.len(), 2);
        for ((x0, _), (x1, _)) in segments {
            assert_eq!((x0, x1), (0.5, 0.5));
        }
    }
}
