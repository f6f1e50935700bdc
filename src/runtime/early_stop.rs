//! Early stopping: watch one figure per epoch, remember the best epoch's
//! parameters (with the optimizer state), and say when the figure has not
//! improved for `patience` epochs — Keras' `EarlyStopping` with
//! `restore_best_weights`, where an improvement must beat the best by more
//! than `min_delta`.

use super::train::Params;
use crate::ir::program::{EarlyStop, Monitor};

/// The best epoch so far.
#[derive(Clone, Debug)]
pub struct Best {
    pub epoch: u64,
    pub value: f64,
    pub params: Params,
}

#[derive(Clone, Debug)]
pub struct EarlyStopper {
    pub monitor: Monitor,
    pub patience: u64,
    min_delta: f64,
    best: Option<Best>,
    /// Epochs since the last improvement.
    waited: u64,
}

impl EarlyStopper {
    /// The rule with its monitor resolved: `val_loss` with validation data,
    /// else `loss`. A validation figure without validation data is an error.
    pub fn new(rule: EarlyStop, has_validation: bool) -> Result<EarlyStopper, String> {
        let monitor = rule.monitor.unwrap_or(if has_validation { Monitor::ValLoss } else { Monitor::Loss });
        if monitor.needs_validation() && !has_validation {
            return Err(format!(
                "early stopping monitors `{}`, but there is no validation data: \
                 add `validation = 0.2` or --validation-data FILE, or monitor `loss`",
                monitor.name()
            ));
        }
        Ok(EarlyStopper { monitor, patience: rule.patience, min_delta: rule.min_delta, best: None, waited: 0 })
    }

    /// Record `epoch`'s figure; true when training should stop now.
    pub fn observe(&mut self, epoch: u64, value: f64, params: &Params) -> bool {
        let improved = match &self.best {
            _ if !value.is_finite() => false,
            None => true,
            Some(best) if self.monitor.higher_is_better() => value > best.value + self.min_delta,
            Some(best) => value < best.value - self.min_delta,
        };
        if improved {
            self.best = Some(Best { epoch, value, params: params.clone() });
            self.waited = 0;
        } else {
            self.waited += 1;
        }
        self.waited >= self.patience
    }

    pub fn best(&self) -> Option<&Best> {
        self.best.as_ref()
    }

    pub fn into_best(self) -> Option<Best> {
        self.best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::train::OptimizerState;

    fn params(v: f32) -> Params {
        Params { values: vec![v], offsets: vec![0], shapes: vec![], state: OptimizerState::default() }
    }

    fn run(monitor: Monitor, patience: u64, min_delta: f64, values: &[f64]) -> (Option<u64>, u64, f32) {
        let rule = EarlyStop { patience, min_delta, monitor: Some(monitor) };
        let mut stopper = EarlyStopper::new(rule, true).expect("valid");
        let mut stopped = None;
        for (i, &v) in values.iter().enumerate() {
            if stopper.observe(i as u64 + 1, v, &params(i as f32)) {
                stopped = Some(i as u64 + 1);
                break;
            }
        }
        let best = stopper.into_best().expect("a best epoch");
        (stopped, best.epoch, best.params.values[0])
    }

    #[test]
    fn stops_after_patience_epochs_without_improvement() {
        // Best at epoch 3; epochs 4 and 5 do not improve; patience 2 stops at 5.
        assert_eq!(run(Monitor::Loss, 2, 0.0, &[3.0, 2.0, 1.0, 1.5, 1.0, 0.5]), (Some(5), 3, 2.0));
    }

    #[test]
    fn min_delta_ignores_small_gains() {
        // 0.95 and 0.91 are within 0.1 of 1.0: no improvement.
        assert_eq!(run(Monitor::ValLoss, 2, 0.1, &[1.0, 0.95, 0.91, 0.5]), (Some(3), 1, 0.0));
    }

    #[test]
    fn accuracy_improves_upwards_and_nan_never_improves() {
        assert_eq!(run(Monitor::ValAccuracy, 3, 0.0, &[0.5, 0.7, f64::NAN, 0.6, 0.7]), (Some(5), 2, 1.0));
    }

    #[test]
    fn runs_to_the_end_while_improving() {
        assert_eq!(run(Monitor::Loss, 1, 0.0, &[3.0, 2.0, 1.0]), (None, 3, 2.0));
    }

    #[test]
    fn validation_monitor_needs_validation_data() {
        let rule = EarlyStop { patience: 1, min_delta: 0.0, monitor: None };
        assert_eq!(EarlyStopper::new(rule, false).map(|s| s.monitor), Ok(Monitor::Loss));
        assert_eq!(EarlyStopper::new(rule, true).map(|s| s.monitor), Ok(Monitor::ValLoss));
        let rule = EarlyStop { monitor: Some(Monitor::ValAccuracy), ..rule };
        assert!(EarlyStopper::new(rule, false).is_err());
    }
}
