//! The progress bar of `nnc run` (stderr, only when it is a terminal):
//! the epoch, rows done within it, the speed in rows per second, an ETA,
//! and the last epoch's figures. Drawn at most [`Meter::INTERVAL`]-often,
//! so a run of many tiny epochs spends no time formatting.

use super::rate;
use indicatif::{ProgressBar, ProgressStyle};
use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

pub struct Meter {
    bar: ProgressBar,
    /// `epoch` or `step`.
    unit: &'static str,
    epochs: u64,
    /// Rows per epoch (1 for a model without data: a step is the unit).
    rows: u64,
    start: Instant,
    last_draw: Cell<Option<Instant>>,
    /// Where training is: the epoch and the rows done within it.
    at: Cell<(u64, u64)>,
    /// The last finished epoch's loss and metrics.
    figures: RefCell<String>,
}

impl Meter {
    /// How often the bar is redrawn, at most.
    pub const INTERVAL: Duration = Duration::from_millis(100);

    pub fn new(unit: &'static str, epochs: u64, rows: Option<usize>) -> Meter {
        let rows = rows.map_or(1, |r| r.max(1) as u64);
        let bar = ProgressBar::new(epochs.saturating_mul(rows));
        bar.set_style(ProgressStyle::with_template("{bar:30} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()));
        Meter {
            bar,
            unit,
            epochs,
            rows,
            start: Instant::now(),
            last_draw: Cell::new(None),
            at: Cell::new((0, 0)),
            figures: RefCell::new(String::new()),
        }
    }

    /// Rows done within `epoch` (from inside the epoch).
    pub fn rows_done(&self, epoch: u64, rows: usize) {
        self.at.set((epoch, rows as u64));
        self.draw(false);
    }

    /// `epoch` finished with these figures; `last` forces a redraw.
    pub fn epoch_done(&self, epoch: u64, figures: String, last: bool) {
        self.at.set((epoch, self.rows));
        *self.figures.borrow_mut() = figures;
        self.draw(last);
    }

    /// A message instead of the figures (the final evaluation).
    pub fn say(&self, text: String) {
        self.bar.set_message(text);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn draw(&self, force: bool) {
        let now = Instant::now();
        if !force && self.last_draw.get().is_some_and(|t| now - t < Self::INTERVAL) {
            return;
        }
        self.last_draw.set(Some(now));
        let (epoch, rows) = self.at.get();
        let done = epoch.saturating_sub(1) * self.rows + rows;
        self.bar.set_position(done);
        let seconds = (now - self.start).as_secs_f64();
        let mut text = format!("{} {epoch}/{}", self.unit, self.epochs);
        if self.rows > 1 {
            text.push_str(&format!("  {rows}/{} rows", self.rows));
        }
        if done > 0 && seconds > 0.0 {
            let per_second = done as f64 / seconds;
            let what = if self.rows > 1 { "rows" } else { "steps" };
            text.push_str(&format!("  {}", rate(per_second, what)));
            let left = (self.epochs * self.rows).saturating_sub(done) as f64 / per_second;
            text.push_str(&format!("  ETA {}", duration(left)));
        }
        let figures = self.figures.borrow();
        if !figures.is_empty() {
            text.push_str("  ");
            text.push_str(&figures);
        }
        self.bar.set_message(text);
    }
}

/// `45 s`, `3 min 05 s`, `2 h 07 min`: whole units a person reads at a glance.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {:02} s", s / 60, s % 60),
        s => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn durations_read_in_whole_units() {
        assert_eq!(duration(0.4), "0 s");
        assert_eq!(duration(59.4), "59 s");
        assert_eq!(duration(185.0), "3 min 05 s");
        assert_eq!(duration(7625.0), "2 h 07 min");
        assert_eq!(duration(f64::NAN), "0 s");
    }
}
