//! Runtime: data in, kernels called, metrics out.
//!
//! [`data`] reads and binds the CSV once into contiguous matrices;
//! [`train`] owns the parameters and calls the compiled training kernel
//! once per epoch, watching for divergence, then evaluates the final model.
//! [`metrics`] scores predictions against the labels (accuracy, confusion
//! matrix, per-class report, per-column regression fit).
//! [`weights`] saves and loads the parameters as safetensors files.

pub mod class_weights;
pub mod data;
pub mod early_stop;
pub mod gradcheck;
pub mod interrupt;
pub mod metrics;
pub mod tolerance;
pub mod trace;
pub mod train;
pub mod weights;
