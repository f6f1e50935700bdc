//! Line charts as SVG: panels stacked top to bottom, each with its axes,
//! "nice" ticks, a legend and optional vertical marks (the best epoch).
//! Used by `nnc plot` for training curves and by [`super::descent`].

use super::svg::{Anchor, Svg, num, text_width};

pub const WIDTH: f64 = 800.0;
const PLOT_HEIGHT: f64 = 230.0;
const LEFT: f64 = 74.0;
const RIGHT: f64 = 200.0;
const TITLE: f64 = 34.0;
const BOTTOM: f64 = 44.0;

/// Colours in legend order: train, validation, then others.
pub const COLOURS: &[&str] = &["#2b6cb0", "#dd6b20", "#2f855a", "#805ad5", "#c53030", "#319795", "#b7791f", "#4a5568"];

#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub colour: String,
    pub dashed: bool,
    /// Draw a dot at every point too.
    pub dots: bool,
}

impl Series {
    pub fn line(name: &str, points: Vec<(f64, f64)>, colour: &str) -> Series {
        Series { name: name.to_string(), points, colour: colour.to_string(), dashed: false, dots: false }
    }
}

/// A vertical line at `x` with a label (`best epoch 37`).
#[derive(Clone, Debug)]
pub struct Mark {
    pub x: f64,
    pub label: String,
}

/// A labelled point (`x = 1.000`).
#[derive(Clone, Debug)]
pub struct Note {
    pub at: (f64, f64),
    pub label: String,
    /// Write the label under the point rather than over it.
    pub below: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub marks: Vec<Mark>,
    pub notes: Vec<Note>,
    /// A logarithmic y axis (all values must be positive).
    pub log_y: bool,
    /// Fixed y range instead of the data's.
    pub y_range: Option<(f64, f64)>,
    /// A horizontal line at y = 0 when it is in range.
    pub zero_line: bool,
}

/// Round ticks covering `[lo, hi]`: 1, 2 or 5 times a power of ten apart.
pub fn ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|s| *s >= raw).unwrap_or(10.0 * power);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A tick label: short, without float noise.
pub fn tick_label(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if !(1e-3..1e5).contains(&a) {
        let text = format!("{x:.0e}");
        return text.replace("e-0", "e-").replace("e0", "e");
    }
    let text = format!("{x:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The range of the data with a little room, and never empty.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 * lo.abs().max(1.0) {
        // A constant: half its size either side (a unit around zero).
        let d = if lo != 0.0 { lo.abs() * 0.5 } else { 1.0 };
        return (lo - d, hi + d);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// Maps data to the plot area.
pub struct Frame {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
    pub x: (f64, f64),
    pub y: (f64, f64),
    pub log_y: bool,
}

impl Frame {
    pub fn px(&self, x: f64) -> f64 {
        self.left + (x - self.x.0) / (self.x.1 - self.x.0) * self.width
    }

    pub fn py(&self, y: f64) -> f64 {
        let (y, lo, hi) =
            if self.log_y { (y.log10(), self.y.0.log10(), self.y.1.log10()) } else { (y, self.y.0, self.y.1) };
        self.top + self.height - (y - lo) / (hi - lo) * self.height
    }

    pub fn point(&self, (x, y): (f64, f64)) -> (f64, f64) {
        (self.px(x), self.py(y))
    }

    /// Axes, grid, ticks and their labels.
    pub fn axes(&self, svg: &mut Svg, x_label: &str, y_label: &str) {
        let bottom = self.top + self.height;
        for t in ticks(self.x.0, self.x.1, 8) {
            let x = self.px(t);
            svg.line((x, self.top), (x, bottom), r##"stroke="#edf2f7" stroke-width="1""##);
            svg.line((x, bottom), (x, bottom + 4.0), r##"stroke="#4a5568" stroke-width="1""##);
            svg.text((x, bottom + 16.0), 10.0, Anchor::Middle, r##"fill="#4a5568""##, &tick_label(t));
        }
        let y_ticks = if self.log_y {
            let (lo, hi) = (self.y.0.log10().floor() as i32, self.y.1.log10().ceil() as i32);
            let decades: Vec<f64> =
                (lo..=hi).map(|e| 10f64.powi(e)).filter(|v| *v >= self.y.0 && *v <= self.y.1).collect();
            if decades.len() >= 2 {
                decades
            } else {
                ticks(self.y.0, self.y.1, 5).into_iter().filter(|v| *v > 0.0).collect()
            }
        } else {
            ticks(self.y.0, self.y.1, 5)
        };
        for t in y_ticks {
            let y = self.py(t);
            svg.line((self.left, y), (self.left + self.width, y), r##"stroke="#edf2f7" stroke-width="1""##);
            svg.line((self.left - 4.0, y), (self.left, y), r##"stroke="#4a5568" stroke-width="1""##);
            svg.text((self.left - 7.0, y + 3.5), 10.0, Anchor::End, r##"fill="#4a5568""##, &tick_label(t));
        }
        svg.rect(self.left, self.top, self.width, self.height, r##"fill="none" stroke="#4a5568" stroke-width="1""##);
        svg.text((self.left + self.width / 2.0, bottom + 34.0), 11.0, Anchor::Middle, "", x_label);
        let (x, y) = (16.0, self.top + self.height / 2.0);
        svg.raw(&format!(
            r#"<text x="{}" y="{}" font-size="11" text-anchor="middle" transform="rotate(-90 {} {})">{}</text>"#,
            num(x),
            num(y),
            num(x),
            num(y),
            super::svg::escape(y_label)
        ));
    }
}

/// The data range of a panel's series.
fn extent(panel: &Panel) -> ((f64, f64), (f64, f64)) {
    let points = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite() && (!panel.log_y || *y > 0.0));
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return ((0.0, 1.0), (0.0, 1.0));
    }
    let x = if x1 > x0 { (x0, x1) } else { (x0 - 0.5, x1 + 0.5) };
    let y = match panel.y_range {
        Some(range) => range,
        None if panel.log_y => (y0 / 1.15, y1 * 1.15),
        None => padded(y0, y1),
    };
    (x, y)
}

/// Panels stacked top to bottom under a title and the subtitle's lines,
/// as one SVG document.
pub fn render(title: &str, subtitle: &str, panels: &[Panel]) -> String {
    let lines: Vec<&str> = subtitle.lines().collect();
    let head = 40.0 + 16.0 * lines.len() as f64;
    let panel_height = TITLE + PLOT_HEIGHT + BOTTOM;
    let height = head + panels.len() as f64 * panel_height + 8.0;
    let mut svg = Svg::new(WIDTH, height);
    svg.text((LEFT, 26.0), 16.0, Anchor::Start, r#"font-weight="bold""#, title);
    for (k, line) in lines.iter().enumerate() {
        svg.text((LEFT, 44.0 + 16.0 * k as f64), 11.0, Anchor::Start, r##"fill="#4a5568""##, line);
    }
    for (k, panel) in panels.iter().enumerate() {
        let top = head + k as f64 * panel_height;
        draw_panel(&mut svg, panel, top);
    }
    svg.finish()
}

fn draw_panel(svg: &mut Svg, panel: &Panel, top: f64) {
    let (x, y) = extent(panel);
    let frame = Frame {
        left: LEFT,
        top: top + TITLE,
        width: WIDTH - LEFT - RIGHT,
        height: PLOT_HEIGHT,
        x,
        y,
        log_y: panel.log_y,
    };
    svg.text((LEFT, top + 22.0), 13.0, Anchor::Start, r#"font-weight="bold""#, &panel.title);
    frame.axes(svg, &panel.x_label, &panel.y_label);
    if panel.zero_line && y.0 < 0.0 && y.1 > 0.0 {
        let y0 = frame.py(0.0);
        svg.line((frame.left, y0), (frame.left + frame.width, y0), r##"stroke="#a0aec0" stroke-width="1""##);
    }
    for series in &panel.series {
        draw_series(svg, &frame, series);
    }
    for mark in &panel.marks {
        let x = frame.px(mark.x);
        svg.line(
            (x, frame.top),
            (x, frame.top + frame.height),
            r##"stroke="#2f855a" stroke-width="1.5" stroke-dasharray="6 4""##,
        );
        let anchor = if x > frame.left + frame.width * 0.75 { Anchor::End } else { Anchor::Start };
        let dx = if anchor == Anchor::End { -4.0 } else { 4.0 };
        let halo = r##"fill="#2f855a" stroke="white" stroke-width="3" paint-order="stroke""##;
        svg.text((x + dx, frame.top + 13.0), 10.0, anchor, halo, &mark.label);
    }
    for note in &panel.notes {
        let (px, py) = frame.point(note.at);
        svg.circle((px, py), 4.5, r##"fill="#c53030" stroke="white" stroke-width="1""##, None);
        let anchor = if px > frame.left + frame.width * 0.7 { Anchor::End } else { Anchor::Start };
        let dx = if anchor == Anchor::End { -8.0 } else { 8.0 };
        let dy = if note.below { 20.0 } else { -8.0 };
        svg.text((px + dx, py + dy), 11.0, anchor, r##"fill="#c53030" font-weight="bold""##, &note.label);
    }
    // The legend, right of the plot.
    let mut ly = frame.top + 10.0;
    let lx = frame.left + frame.width + 14.0;
    for series in &panel.series {
        let dash = if series.dashed { r#" stroke-dasharray="6 3""# } else { "" };
        svg.line((lx, ly), (lx + 22.0, ly), &format!(r#"stroke="{}" stroke-width="2"{dash}"#, series.colour));
        let name = if text_width(&series.name, 11.0) > RIGHT - 40.0 {
            let keep = ((RIGHT - 40.0) / (11.0 * 0.62)) as usize;
            format!("{}…", series.name.chars().take(keep.saturating_sub(1)).collect::<String>())
        } else {
            series.name.clone()
        };
        svg.text((lx + 28.0, ly + 4.0), 11.0, Anchor::Start, "", &name);
        ly += 18.0;
    }
}

fn draw_series(svg: &mut Svg, frame: &Frame, series: &Series) {
    let dash = if series.dashed { r#" stroke-dasharray="6 3""# } else { "" };
    let style = format!(r#"stroke="{}" stroke-width="1.8"{dash} stroke-linejoin="round""#, series.colour);
    // Runs of finite points (a NaN or a non-positive value on a log axis breaks the line).
    let mut run: Vec<(f64, f64)> = Vec::new();
    let ok = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!frame.log_y || y > 0.0);
    for p in &series.points {
        if ok(p) {
            run.push(frame.point(*p));
        } else if !run.is_empty() {
            svg.polyline(&run, &style);
            run.clear();
        }
    }
    if !run.is_empty() {
        svg.polyline(&run, &style);
    }
    if series.dots {
        for p in series.points.iter().filter(|p| ok(p)) {
            svg.circle(frame.point(*p), 2.2, &format!(r#"fill="{}""#, series.colour), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]);
        assert_eq!(ticks(1.0, 200.0, 8), vec![50.0, 100.0, 150.0, 200.0]);
        assert_eq!(tick_label(0.6000000000000001), "0.6");
        assert_eq!(tick_label(1e-5), "1e-5");
        assert_eq!(tick_label(-2.5), "-2.5");
    }
}
