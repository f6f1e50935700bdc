//! Pictures: the network diagram (`nnc draw`), charts (`nnc plot`) and the
//! report page (`nnc run --report`).
//!
//! Every picture is deterministic SVG text, written by hand with [`svg::Svg`]
//! (the same model and numbers give the same bytes, so pictures are
//! snapshot-tested like the IR). [`png`] rasterises that SVG with `resvg`
//! and the DejaVu Sans font bundled in the binary (`assets/`, its licence in
//! `assets/LICENSE_DEJAVU`), so no system library or installed font is
//! needed. This module reads the checked `Program`, the reference
//! interpreter and run results; no compiler stage depends on it.

pub mod chart;
pub mod curves;
pub mod descent;
pub mod diagram;
pub mod report;
pub mod svg;

/// DejaVu Sans (Bitstream Vera licence, see `assets/LICENSE_DEJAVU`): the
/// one font every picture names and every PNG is rendered with.
pub const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
pub const FONT_FAMILY: &str = "DejaVu Sans";

/// Render SVG text to PNG bytes at `scale` pixels per SVG unit, with the
/// bundled font.
pub fn png(svg_text: &str, scale: f32) -> Result<Vec<u8>, String> {
    use resvg::{tiny_skia, usvg};
    let mut options = usvg::Options { font_family: FONT_FAMILY.to_string(), ..usvg::Options::default() };
    options.fontdb_mut().load_font_data(FONT.to_vec());
    let tree = usvg::Tree::from_str(svg_text, &options).map_err(|e| format!("the picture is not valid SVG: {e}"))?;
    let size = tree.size().to_int_size().scale_by(scale).ok_or("the picture is too large to render")?;
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).ok_or("the picture is too large to render")?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(&tree, tiny_skia::Transform::from_scale(scale, scale), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| format!("cannot encode PNG: {e}"))
}
