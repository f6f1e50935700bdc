//! A small SVG writer: elements appended as text, numbers printed with a
//! fixed number of decimals, so the same picture is always the same bytes.

use std::fmt::Write;

/// An SVG document being written.
pub struct Svg {
    width: f64,
    height: f64,
    body: String,
}

/// Text alignment: SVG's `text-anchor`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    fn name(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// A number as SVG text: at most two decimals, no trailing zeros, no `-0`.
pub fn num(x: f64) -> String {
    let rounded = (x * 100.0).round() / 100.0;
    let text = format!("{:.2}", if rounded == 0.0 { 0.0 } else { rounded });
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Escape text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Width of `text` at `size` in DejaVu Sans, estimated (its glyphs average
/// about 0.6 em; a little more so that estimates err on the roomy side).
pub fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.62
}

impl Svg {
    pub fn new(width: f64, height: f64) -> Svg {
        Svg { width, height, body: String::new() }
    }

    /// Raw markup (already escaped), for what the helpers do not cover.
    pub fn raw(&mut self, markup: &str) {
        self.body.push_str(markup);
        self.body.push('\n');
    }

    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, style: &str) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{}" y="{}" width="{}" height="{}" {style}/>"#,
            num(x),
            num(y),
            num(w),
            num(h)
        );
    }

    pub fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), style: &str) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" {style}/>"#,
            num(x1),
            num(y1),
            num(x2),
            num(y2)
        );
    }

    /// A line with a tooltip (`<title>`), shown by browsers on hover.
    pub fn line_titled(&mut self, from: (f64, f64), to: (f64, f64), style: &str, title: &str) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" {style}><title>{}</title></line>"#,
            num(from.0),
            num(from.1),
            num(to.0),
            num(to.1),
            escape(title)
        );
    }

    pub fn circle(&mut self, (x, y): (f64, f64), r: f64, style: &str, title: Option<&str>) {
        let open = format!(r#"<circle cx="{}" cy="{}" r="{}" {style}"#, num(x), num(y), num(r));
        match title {
            Some(t) => {
                let _ = writeln!(self.body, "{open}><title>{}</title></circle>", escape(t));
            }
            None => {
                let _ = writeln!(self.body, "{open}/>");
            }
        }
    }

    /// A polyline through `points`.
    pub fn polyline(&mut self, points: &[(f64, f64)], style: &str) {
        let mut coords = String::new();
        for (i, (x, y)) in points.iter().enumerate() {
            if i > 0 {
                coords.push(' ');
            }
            let _ = write!(coords, "{},{}", num(*x), num(*y));
        }
        let _ = writeln!(self.body, r#"<polyline points="{coords}" fill="none" {style}/>"#);
    }

    pub fn path(&mut self, d: &str, style: &str) {
        let _ = writeln!(self.body, r#"<path d="{d}" {style}/>"#);
    }

    pub fn text(&mut self, (x, y): (f64, f64), size: f64, anchor: Anchor, style: &str, text: &str) {
        let _ = writeln!(
            self.body,
            r#"<text x="{}" y="{}" font-size="{}" text-anchor="{}" {style}>{}</text>"#,
            num(x),
            num(y),
            num(size),
            anchor.name(),
            escape(text)
        );
    }

    /// The document: a white background, the font named once at the root.
    pub fn finish(self) -> String {
        let (w, h) = (num(self.width), num(self.height));
        format!(
            concat!(
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" "#,
                r#"font-family="{font}, sans-serif">"#,
                "\n",
                r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" "#,
                r##"markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>"##,
                "\n",
                r#"<rect x="0" y="0" width="{w}" height="{h}" fill="white"/>"#,
                "\n{body}</svg>\n"
            ),
            w = w,
            h = h,
            font = super::FONT_FAMILY,
            body = self.body
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_short_and_stable() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(1.256), "1.26");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(-2.5), "-2.5");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a < b & \"c\""), "a &lt; b &amp; &quot;c&quot;");
    }
}
