//! The report page of `nnc run --report`: one self-contained HTML file (no
//! scripts, no fonts or styles from elsewhere; the pictures are inline SVG)
//! with the settings as `nnc run` echoed them, the network diagram with the
//! trained weights, the training curves, the final metrics, the confusion
//! matrix for classification, and the model's source.

use super::svg::escape;

/// Counts of (true class, predicted class) over a data set, with the
/// classes' names (computed by `runtime::metrics`).
#[derive(Clone, Debug, PartialEq)]
pub struct Confusion {
    pub classes: Vec<String>,
    /// `counts[t][p]`: rows of class `t` predicted as `p`.
    pub counts: Vec<Vec<usize>>,
}

/// Everything on the page.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub title: String,
    /// `(setting, value)` as `nnc run` echoes them.
    pub settings: Vec<(String, String)>,
    /// `(metric, value)`, final weights.
    pub metrics: Vec<(String, String)>,
    pub diagram: Option<String>,
    pub curves: Option<String>,
    pub confusion: Option<Confusion>,
    pub source: String,
}

const STYLE: &str = "body{font-family:'DejaVu Sans',Verdana,sans-serif;margin:24px auto;max-width:1100px;color:#1a202c;padding:0 16px}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #e2e8f0;padding-bottom:4px}\
table{border-collapse:collapse;font-size:13px}td,th{padding:4px 10px;text-align:left}\
table.kv td:first-child{color:#4a5568}table.confusion td,table.confusion th{text-align:center;border:1px solid #e2e8f0;min-width:48px}\
figure{margin:0;overflow-x:auto}figure svg{max-width:100%;height:auto}\
pre{background:#f7fafc;border:1px solid #e2e8f0;padding:10px;font-size:12px;overflow-x:auto}\
.note{color:#4a5568;font-size:12px}";

fn key_values(rows: &[(String, String)]) -> String {
    let mut out = String::from("<table class=\"kv\">\n");
    for (k, v) in rows {
        out.push_str(&format!("<tr><td>{}</td><td>{}</td></tr>\n", escape(k), escape(v)));
    }
    out.push_str("</table>\n");
    out
}

fn confusion_table(c: &Confusion) -> String {
    let mut out = String::from("<table class=\"confusion\">\n<tr><th>true \\ predicted</th>");
    for name in &c.classes {
        out.push_str(&format!("<th>{}</th>", escape(name)));
    }
    out.push_str("<th>recall</th></tr>\n");
    for (t, row) in c.counts.iter().enumerate() {
        let total: usize = row.iter().sum();
        out.push_str(&format!("<tr><th>{}</th>", escape(&c.classes[t])));
        for (p, &n) in row.iter().enumerate() {
            // The share of the true class, as the cell's shade: green on the diagonal, red off it.
            let share = if total > 0 { n as f64 / total as f64 } else { 0.0 };
            let colour = if t == p { (47, 133, 90) } else { (197, 48, 48) };
            let alpha = if n == 0 { 0.0 } else { 0.12 + 0.6 * share };
            out.push_str(&format!(
                "<td style=\"background:rgba({},{},{},{:.2})\">{n}</td>",
                colour.0, colour.1, colour.2, alpha
            ));
        }
        let recall = if total > 0 { format!("{:.3}", row[t] as f64 / total as f64) } else { "–".into() };
        out.push_str(&format!("<td>{recall}</td></tr>\n"));
    }
    out.push_str("</table>\n");
    out
}

/// The page.
pub fn html(report: &Report) -> String {
    let title = escape(&report.title);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>nnc report: {title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>nnc report: {title}</h1>\n"
    );
    out.push_str("<h2>Settings</h2>\n");
    out.push_str(&key_values(&report.settings));
    out.push_str("<h2>Final metrics</h2>\n");
    out.push_str(&key_values(&report.metrics));
    if let Some(c) = &report.confusion {
        out.push_str("<h2>Confusion matrix</h2>\n<p class=\"note\">Training rows, final weights; each row is a true class, each column the predicted one (the most probable).</p>\n");
        out.push_str(&confusion_table(c));
    }
    if let Some(svg) = &report.diagram {
        out.push_str("<h2>Network</h2>\n<p class=\"note\">Trained weights: blue ≥ 0, red &lt; 0, line width by magnitude within a layer.</p>\n<figure>\n");
        out.push_str(svg);
        out.push_str("</figure>\n");
    }
    if let Some(svg) = &report.curves {
        out.push_str("<h2>Training</h2>\n<figure>\n");
        out.push_str(svg);
        out.push_str("</figure>\n");
    }
    out.push_str("<h2>Model</h2>\n<pre>");
    out.push_str(&escape(&report.source));
    out.push_str("</pre>\n<p class=\"note\">Written by nnc run --report.</p>\n</body>\n</html>\n");
    out
}
