//! Training curves from a `--log` CSV (or the same rows from a run): one
//! panel per quantity — the loss, then each metric, then anything else the
//! log holds (per-layer gradient statistics) — with the training and
//! validation values together and the best epoch marked.

use super::chart::{self, COLOURS, Mark, Panel, Series};

/// A log: its step column's name (`epoch` or `step`), the other columns,
/// and one row of values per epoch (empty cells are `None`).
#[derive(Clone, Debug, PartialEq)]
pub struct Log {
    pub unit: String,
    pub columns: Vec<String>,
    pub steps: Vec<f64>,
    pub rows: Vec<Vec<Option<f64>>>,
}

/// Read a log's text; `file` names it in errors (`run.csv:3: ...`).
pub fn parse(file: &str, text: &str) -> Result<Log, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(format!("{file}: the file is empty; expected a log written by `nnc run --log`"));
    };
    let names: Vec<String> = header.split(',').map(|c| c.trim().to_string()).collect();
    if names.len() < 2 || !(names[0] == "epoch" || names[0] == "step") {
        return Err(format!(
            "{file}:1: the header must start with `epoch` or `step` and name at least one column (as `nnc run --log` writes), found `{}`",
            shorten(header)
        ));
    }
    let mut steps = Vec::new();
    let mut rows = Vec::new();
    for (index, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != names.len() {
            return Err(format!("{file}:{}: {} cells, but the header has {}", index + 1, cells.len(), names.len()));
        }
        let number = |k: usize| -> Result<Option<f64>, String> {
            let cell = cells[k];
            if cell.is_empty() {
                return Ok(None);
            }
            cell.parse::<f64>().map(Some).map_err(|_| {
                format!("{file}:{}:{}: `{}` in column `{}` is not a number", index + 1, k + 1, shorten(cell), names[k])
            })
        };
        let step = number(0)?.ok_or_else(|| format!("{file}:{}:1: the {} is missing", index + 1, names[0]))?;
        steps.push(step);
        rows.push((1..names.len()).map(number).collect::<Result<Vec<_>, _>>()?);
    }
    if rows.is_empty() {
        return Err(format!("{file}: the log has a header but no rows"));
    }
    Ok(Log { unit: names[0].clone(), columns: names[1..].to_vec(), steps, rows })
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(39).collect::<String>())
    } else {
        text.to_string()
    }
}

impl Log {
    pub fn column(&self, name: &str) -> Option<Vec<(f64, Option<f64>)>> {
        let k = self.columns.iter().position(|c| c == name)?;
        Some(self.steps.iter().zip(&self.rows).map(|(&s, r)| (s, r[k])).collect())
    }

    /// The best epoch: where a `best` column is set (non-zero), else the
    /// lowest `val_loss`, else the lowest `loss`; with the column used.
    pub fn best(&self) -> Option<(f64, String)> {
        if let Some(best) = self.column("best")
            && let Some((step, _)) = best.iter().rev().find(|(_, v)| v.is_some_and(|v| v != 0.0))
        {
            return Some((*step, "best".into()));
        }
        for name in ["val_loss", "loss"] {
            if let Some(values) = self.column(name) {
                let mut best: Option<(f64, f64)> = None;
                for (step, value) in values {
                    if let Some(v) = value.filter(|v| v.is_finite())
                        && best.is_none_or(|(_, b)| v < b)
                    {
                        best = Some((step, v));
                    }
                }
                if let Some((step, _)) = best {
                    return Some((step, name.into()));
                }
            }
        }
        None
    }
}

/// Which panel a column belongs to: `val_accuracy` with `accuracy`,
/// `grad_norm.h` with the other `grad_norm` columns.
fn group(column: &str) -> &str {
    let base = column.strip_prefix("val_").unwrap_or(column);
    base.split('.').next().unwrap_or(base)
}

/// The curves as SVG; `extra` panels (the learning rate) go last.
pub fn render(log: &Log, title: &str, extra: Vec<Panel>) -> String {
    let best = log.best();
    let mut groups: Vec<&str> = Vec::new();
    for column in &log.columns {
        let g = group(column);
        if column != "best" && !groups.contains(&g) {
            groups.push(g);
        }
    }
    let mut panels = Vec::new();
    for g in groups {
        let columns: Vec<&String> = log.columns.iter().filter(|c| group(c) == g && *c != "best").collect();
        let series: Vec<Series> = columns
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let points = log.column(name).unwrap_or_default();
                let points = points.into_iter().map(|(s, v)| (s, v.unwrap_or(f64::NAN))).collect();
                let mut series = Series::line(name, points, COLOURS[k % COLOURS.len()]);
                series.dashed = name.starts_with("val_");
                series
            })
            .collect();
        let values: Vec<f64> =
            series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).filter(|v| v.is_finite()).collect();
        let (lo, hi) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
        let log_y = lo > 0.0 && hi / lo > 30.0;
        let marks = best
            .iter()
            .map(|(step, by)| match by.as_str() {
                "best" => Mark { x: *step, label: format!("kept {} {step}", log.unit) },
                _ => Mark { x: *step, label: format!("best {} {step} (by {by})", log.unit) },
            })
            .collect();
        panels.push(Panel {
            title: g.to_string(),
            x_label: log.unit.clone(),
            y_label: if log_y { format!("{g} (log scale)") } else { g.to_string() },
            series,
            marks,
            log_y,
            ..Panel::default()
        });
    }
    panels.extend(extra);
    let (n, unit) = (log.steps.len(), &log.unit);
    let subtitle = match &best {
        // The run wrote which epoch's weights it kept (the best one, with early stopping).
        Some((step, by)) if by == "best" => format!("{n} {unit}s; the weights kept are {unit} {step}'s"),
        Some((step, by)) => format!("{n} {unit}s; best {unit} {step} (lowest {by})"),
        None => format!("{n} {unit}s"),
    };
    chart::render(title, &subtitle, &panels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_epoch_is_the_lowest_validation_loss() {
        let log = parse("t.csv", "epoch,loss,val_loss\n1,3,4\n2,2,1\n3,1,2\n").unwrap();
        assert_eq!(log.best(), Some((2.0, "val_loss".into())));
        let log = parse("t.csv", "epoch,loss\n1,3\n2,2\n3,1\n").unwrap();
        assert_eq!(log.best(), Some((3.0, "loss".into())));
    }

    #[test]
    fn bad_logs_are_located() {
        assert!(parse("t.csv", "").unwrap_err().contains("empty"));
        assert!(parse("t.csv", "a,b\n1,2\n").unwrap_err().starts_with("t.csv:1:"));
        assert_eq!(parse("t.csv", "epoch,loss\n1,x\n").unwrap_err(), "t.csv:2:2: `x` in column `loss` is not a number");
        assert!(parse("t.csv", "epoch,loss\n1\n").unwrap_err().starts_with("t.csv:2: 1 cells"));
    }
}
