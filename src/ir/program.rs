//! The checked program: the graph plus everything around it that is not
//! computation — how data columns bind to inputs and targets, what kind of
//! task the model solves, and the training settings (each marked as set in
//! the file or defaulted).

use super::{Graph, Hyper, ParamInfo, StateInfo};
use crate::span::Span;

/// What the `check` stage produces and every later stage consumes.
#[derive(Clone, Debug)]
pub struct Program {
    /// Forward graph with outputs `loss` and, for models with data, `predict`.
    pub graph: Graph,
    pub data: Vec<Binding>,
    pub task: Task,
    pub train: TrainConfig,
    /// The model's `dense` layers in order, for messages and weight files.
    pub layers: Vec<Layer>,
    /// Every `model` binding's value (`h`, `out`), in order: the names under
    /// which `nnc grad` prints them.
    pub named: Vec<(String, super::NodeId)>,
    /// The file's `fn`s on scalars, for `nnc grad` (they are inlined into
    /// `graph` where called).
    pub functions: Vec<UserFunction>,
    /// What to do with rows that have a missing cell (`missing = drop` in
    /// the `data` block).
    pub missing: Missing,
    /// What the classification loss compares the model's output with: the
    /// second argument of `cross_entropy` or `binary_cross_entropy` as
    /// written (a target, or an expression of targets such as
    /// `species == 1`). The metrics evaluate it for the true classes.
    pub label: Option<super::NodeId>,
    /// `cross_entropy(.., weights = ..)` or `binary_cross_entropy(.., pos_weight = ..)`.
    pub loss_weights: Option<LossWeights>,
}

/// The weights of a weighted classification loss, as the graph uses them.
#[derive(Clone, Debug, PartialEq)]
pub struct LossWeights {
    /// `weights` (one per class) or `pos_weight` (one per yes/no label).
    pub kind: LossWeightKind,
    /// `weights = balanced`: `n / (K · count_c)` over the training rows.
    pub balanced: bool,
    /// The values in the graph: as written, or counted from the training
    /// rows for `balanced` (ones until they are: see `resolved`).
    pub values: Vec<f64>,
    /// False for `balanced` before the training rows were counted: the
    /// graph then holds ones, good for printing but not for training.
    pub resolved: bool,
    /// The argument as written, for diagnostics.
    pub span: crate::span::Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossWeightKind {
    /// `cross_entropy(p, y, weights = ..)`: PyTorch's `CrossEntropyLoss(weight=)`.
    Class,
    /// `binary_cross_entropy(p, y, pos_weight = ..)`: `BCEWithLogitsLoss(pos_weight=)`.
    Positive,
}

impl LossWeightKind {
    pub fn argument(self) -> &'static str {
        match self {
            LossWeightKind::Class => "weights",
            LossWeightKind::Positive => "pos_weight",
        }
    }
}

/// How validation rows are chosen from the training file
/// (`validation = 0.2`, `last(0.2)`, `stratified(0.2)`, `random(0.2)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SplitKind {
    /// Stratified for classification, random for regression (both seeded).
    #[default]
    Auto,
    /// The last rows of the file.
    Last,
    /// The same share of each class, chosen with the seed.
    Stratified,
    /// Rows chosen with the seed.
    Random,
}

impl SplitKind {
    pub fn describe(self) -> &'static str {
        match self {
            SplitKind::Auto => "auto",
            SplitKind::Last => "the last rows",
            SplitKind::Stratified => "stratified",
            SplitKind::Random => "random",
        }
    }
}

/// The `data` block's `missing` setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Missing {
    /// A missing cell in a bound column without `fill(..)` is an error.
    #[default]
    Error,
    /// Rows with a missing cell in any bound column (not filled) are dropped.
    Drop,
}

/// The number of categories of each `one_hot(column)` binding written
/// without it, by binding name: counted in the data before checking.
pub type Categories = std::collections::BTreeMap<String, u32>;

/// A user function `fn f(a, b) = ..` as a graph of its own: one `[1,1]`
/// parameter per function parameter, named like it, and the body as the
/// output `loss`, so that `autodiff::grad` gives `∂f/∂a` as `grad.a`.
#[derive(Clone, Debug)]
pub struct UserFunction {
    pub name: String,
    pub graph: Graph,
}

impl Program {
    pub fn has_data(&self) -> bool {
        !self.data.is_empty()
    }

    /// The binding of `graph.inputs[i]` or `graph.targets[i]`.
    pub fn binding(&self, is_target: bool, index: u32) -> Option<&Binding> {
        self.data.iter().find(|b| b.is_target == is_target && b.index == index)
    }
}

/// One `input` or `target`: which CSV columns it reads and how they become
/// the values the model sees.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    pub name: String,
    pub is_target: bool,
    /// Index into `graph.inputs` or `graph.targets`.
    pub index: u32,
    pub columns: Columns,
    pub encoding: Encoding,
    /// Values are multiplied by this after reading (`/ 16` gives 0.0625).
    pub scale: f64,
    /// Subtract the mean and divide by the population standard deviation,
    /// both measured on the training rows.
    pub standardize: bool,
    /// A column of class indices that `cross_entropy` compares with this
    /// many classes: each value must be a whole number from 0 to classes − 1
    /// (checked when the CSV is read; a value out of range would otherwise
    /// match no class and silently drop out of the loss).
    pub class_indices: Option<u32>,
    /// How missing cells in this binding's numeric columns are filled.
    pub fill: Option<Fill>,
    pub span: Span,
}

/// `fill(mean)`, `fill(median)`, `fill(0)`, `fill(mean, indicator)`: the
/// value that replaces a missing cell, fitted per column on the training rows,
/// and whether each column gets a 0/1 indicator column after the binding's
/// own columns (1 where the cell was missing, fastai's `FillMissing`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fill {
    pub value: FillValue,
    pub indicator: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FillValue {
    Mean,
    Median,
    Constant(f64),
}

impl Binding {
    /// Number of CSV columns read.
    pub fn column_count(&self) -> usize {
        match self.encoding {
            Encoding::Raw { width } => width as usize,
            Encoding::OneHot { .. } => 1,
        }
    }

    /// Width of the tensor the model sees.
    pub fn width(&self) -> u32 {
        match self.encoding {
            Encoding::Raw { width } if self.fill.is_some_and(|f| f.indicator) => 2 * width,
            Encoding::Raw { width } => width,
            Encoding::OneHot { classes } => classes,
        }
    }

    /// Whether the binding reads its one column as labels (text or numbers
    /// naming a category): a one-hot binding, or a target of one column,
    /// which may turn out to hold class labels for `cross_entropy`.
    pub fn reads_labels(&self) -> bool {
        matches!(self.encoding, Encoding::OneHot { .. }) || (self.is_target && self.column_count() == 1)
    }
}

/// Which CSV columns a binding reads.
#[derive(Clone, Debug, PartialEq)]
pub enum Columns {
    /// By position: inputs take the first columns in declaration order,
    /// targets the last ones.
    Positional,
    /// Named (by header) or numbered (1-based) columns, in this order.
    List(Vec<ColumnRef>),
    /// Every column no other binding reads, in file order.
    Rest,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ColumnRef {
    Name(String, Span),
    /// 0-based here; written 1-based in the file, as an editor counts.
    Index(usize, Span),
}

impl ColumnRef {
    pub fn span(&self) -> Span {
        match self {
            ColumnRef::Name(_, span) | ColumnRef::Index(_, span) => *span,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Encoding {
    /// The columns' values as they are.
    Raw { width: u32 },
    /// One column of labels turned into one-hot rows of width `classes`
    /// (the categories found in the data, or the number written).
    OneHot { classes: u32 },
}

/// Chosen by the output activation, as in the article: softmax means
/// classification (accuracy is reported), a sigmoid trained with
/// `binary_cross_entropy` yes/no classification, anything else regression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// No data: minimise a function of `param`s.
    Minimize,
    Regression,
    Classification {
        classes: u32,
    },
    /// A `sigmoid` output trained with `binary_cross_entropy`: each of the
    /// `labels` units answers yes or no (one unit: binary classification;
    /// several: multi-label), yes where its probability reaches the
    /// `threshold` setting.
    Binary {
        labels: u32,
    },
}

impl Task {
    /// Whether accuracy and the classification report apply.
    pub fn is_classification(self) -> bool {
        matches!(self, Task::Classification { .. } | Task::Binary { .. })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub name: String,
    pub inputs: u32,
    pub units: u32,
    /// One per neuron.
    pub activations: Vec<String>,
    pub bias: bool,
    pub span: Span,
}

/// A setting's value and whether the user wrote it (file or flag).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Setting<T> {
    pub value: T,
    pub is_default: bool,
}

impl<T> Setting<T> {
    pub fn default(value: T) -> Setting<T> {
        Setting { value, is_default: true }
    }

    pub fn set(value: T) -> Setting<T> {
        Setting { value, is_default: false }
    }
}

/// One optimizer as the language names it: its named arguments, its
/// configuration when none is given, and every kind of state tensor it may
/// keep per parameter (as the suffix of the tensor's name). The checker,
/// the weights reader and [`Optimizer::state_kinds`] read these.
#[derive(Debug)]
pub struct OptimizerDef {
    pub name: &'static str,
    pub arguments: &'static [&'static str],
    pub default: fn() -> Optimizer,
    pub state_kinds: &'static [&'static str],
}

static SGD_DEF: OptimizerDef = OptimizerDef {
    name: "sgd",
    arguments: &["lr", "momentum", "nesterov", "weight_decay"],
    default: || Optimizer::SGD,
    state_kinds: &["momentum"],
};

const ADAM_ARGUMENTS: &[&str] = &["lr", "beta1", "beta2", "eps", "weight_decay"];
const ADAM_STATE: &[&str] = &["adam_m", "adam_v"];

static ADAM_DEF: OptimizerDef =
    OptimizerDef { name: "adam", arguments: ADAM_ARGUMENTS, default: Optimizer::adam, state_kinds: ADAM_STATE };

static ADAMW_DEF: OptimizerDef =
    OptimizerDef { name: "adamw", arguments: ADAM_ARGUMENTS, default: Optimizer::adamw, state_kinds: ADAM_STATE };

/// Every optimizer, in the order diagnostics list them.
pub static OPTIMIZERS: &[&OptimizerDef] = &[&SGD_DEF, &ADAM_DEF, &ADAMW_DEF];

impl OptimizerDef {
    /// The optimizer called `name`.
    pub fn lookup(name: &str) -> Option<&'static OptimizerDef> {
        OPTIMIZERS.iter().copied().find(|d| d.name == name)
    }

    /// Whether `kind` is a state kind of any optimizer (a weights file may
    /// hold another optimizer's state).
    pub fn is_state_kind(kind: &str) -> bool {
        OPTIMIZERS.iter().any(|d| d.state_kinds.contains(&kind))
    }
}

/// The optimizer and its constants, with PyTorch's names, defaults and
/// formulas (`torch.optim.SGD`, `Adam`, `AdamW`). `g` is the gradient, `t`
/// the 1-based step, `lr` the (scheduled) learning rate; state starts at 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// `g ← g + wd·p; buf ← μ·buf + g; p ← p − lr·(nesterov ? g + μ·buf : buf)`
    /// (no buffer when μ = 0: `p ← p − lr·g`).
    Sgd { momentum: f64, nesterov: bool, weight_decay: f64 },
    /// `g ← g + wd·p; m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
    /// p ← p − lr/(1−β1^t) · m / (√v/√(1−β2^t) + ε)`.
    Adam(AdamConfig),
    /// Adam with decoupled weight decay: `p ← p·(1 − lr·wd)`, then Adam's
    /// step without decay in the gradient.
    AdamW(AdamConfig),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Optimizer {
    /// Plain gradient descent, the default.
    pub const SGD: Optimizer = Optimizer::Sgd { momentum: 0.0, nesterov: false, weight_decay: 0.0 };

    pub fn adam() -> Optimizer {
        Optimizer::Adam(AdamConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 })
    }

    pub fn adamw() -> Optimizer {
        Optimizer::AdamW(AdamConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 })
    }

    /// Its definition: the one place an optimizer variant meets its name.
    pub fn def(&self) -> &'static OptimizerDef {
        match self {
            Optimizer::Sgd { .. } => &SGD_DEF,
            Optimizer::Adam(_) => &ADAM_DEF,
            Optimizer::AdamW(_) => &ADAMW_DEF,
        }
    }

    pub fn name(&self) -> &'static str {
        self.def().name
    }

    /// PyTorch's: 0.01 for sgd (which has none), 0.001 for adam and adamw.
    pub fn default_learning_rate(&self) -> f64 {
        match self {
            Optimizer::Sgd { .. } => DEFAULT_LEARNING_RATE,
            Optimizer::Adam(_) | Optimizer::AdamW(_) => 0.001,
        }
    }

    /// The kinds of state tensor kept per parameter, as name suffixes: its
    /// definition's, or none for sgd without momentum.
    pub fn state_kinds(&self) -> &'static [&'static str] {
        match self {
            Optimizer::Sgd { momentum, .. } if *momentum == 0.0 => &[],
            _ => self.def().state_kinds,
        }
    }

    /// Every state tensor for these parameters: for each parameter in order,
    /// each of [`state_kinds`](Self::state_kinds), named `<param>.<kind>`.
    pub fn states(&self, params: &[ParamInfo]) -> Vec<StateInfo> {
        let mut states = Vec::new();
        for (i, param) in params.iter().enumerate() {
            for kind in self.state_kinds() {
                states.push(StateInfo { name: format!("{}.{kind}", param.name), shape: param.shape, param: i as u32 });
            }
        }
        states
    }

    /// One line for `nnc run`: `adam, lr 0.01, betas (0.9, 0.999), eps 1e-8`,
    /// given the learning rate as it should read.
    pub fn describe(&self, learning_rate: &str) -> String {
        let mut text = format!("{}, lr {learning_rate}", self.name());
        match self {
            Optimizer::Sgd { momentum, nesterov, weight_decay } => {
                if *momentum != 0.0 {
                    text.push_str(&format!(", momentum {momentum}"));
                }
                if *nesterov {
                    text.push_str(", nesterov");
                }
                if *weight_decay != 0.0 {
                    text.push_str(&format!(", weight decay {weight_decay}"));
                }
            }
            Optimizer::Adam(c) | Optimizer::AdamW(c) => {
                text.push_str(&format!(", betas ({}, {}), eps {:e}", c.beta1, c.beta2, c.eps));
                if c.weight_decay != 0.0 || matches!(self, Optimizer::AdamW(_)) {
                    text.push_str(&format!(", weight decay {}", c.weight_decay));
                }
            }
        }
        text
    }
}

/// How the learning rate changes with the step, evaluated at every step as
/// if PyTorch's scheduler stepped after every optimizer step: with
/// `k = t − 1` steps taken, the rate is `lr · factor`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Schedule {
    /// The rate stays `lr`.
    #[default]
    Constant,
    /// `step(every = N, gamma = 0.1)`: `lr · γ^⌊k/N⌋` (StepLR).
    Step { every: u64, gamma: f64 },
    /// `exponential(gamma = γ)`: `lr · γ^k` (ExponentialLR).
    Exponential { gamma: f64 },
    /// `cosine(steps = N, min_lr = 0)`: `min_lr + (lr − min_lr)·(1 + cos(π·k/N))/2`
    /// (CosineAnnealingLR). Without `steps`, N is the last step of the run
    /// (filled in by [`Schedule::resolved`]).
    Cosine { steps: Option<u64>, min_lr: f64 },
}

impl Schedule {
    /// The factor on the base rate `lr` at the 1-based step `t`.
    pub fn factor(&self, lr: f64, t: u64) -> f64 {
        let k = t.saturating_sub(1) as f64;
        match *self {
            Schedule::Constant | Schedule::Cosine { steps: None, .. } => 1.0,
            Schedule::Step { every, gamma } => gamma.powf((t.saturating_sub(1) / every.max(1)) as f64),
            Schedule::Exponential { gamma } => gamma.powf(k),
            Schedule::Cosine { steps: Some(n), min_lr } => {
                let rate = min_lr + (lr - min_lr) * (1.0 + (std::f64::consts::PI * k / n.max(1) as f64).cos()) / 2.0;
                rate / lr
            }
        }
    }

    /// The schedule with a cosine's missing length set to `last_step`.
    pub fn resolved(self, last_step: u64) -> Schedule {
        match self {
            Schedule::Cosine { steps: None, min_lr } => Schedule::Cosine { steps: Some(last_step.max(1)), min_lr },
            other => other,
        }
    }

    /// One line for `nnc run`: `cosine over 2000 steps to 0`.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Constant => "constant".into(),
            Schedule::Step { every, gamma } => format!("step, × {gamma} every {every} steps"),
            Schedule::Exponential { gamma } => format!("exponential, × {gamma} per step"),
            Schedule::Cosine { steps: Some(n), min_lr } => format!("cosine over {n} steps down to {min_lr}"),
            Schedule::Cosine { steps: None, min_lr } => format!("cosine over the run down to {min_lr}"),
        }
    }
}

/// What the run-time scalars ([`Hyper`]) are computed from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HyperContext {
    /// The base learning rate.
    pub learning_rate: f64,
    /// Resolved: a cosine has its length.
    pub schedule: Schedule,
}

impl HyperContext {
    /// The value of `hyper` at the 1-based step `t`, in f64: the definition
    /// both the interpreter and the kernels use.
    pub fn value(&self, hyper: Hyper, t: u64) -> f64 {
        match hyper {
            Hyper::LearningRate => self.learning_rate,
            Hyper::Step => t as f64,
            Hyper::Schedule => self.schedule.factor(self.learning_rate, t),
            Hyper::BiasCorrection(beta) => 1.0 - beta.powf(t as f64),
        }
    }
}

/// Training settings. Defaults: sgd, lr 0.01 (0.001 for adam and adamw), a
/// constant rate, 100 epochs (or 100 steps for models without data), batch
/// 32, seed 0, no shuffling, no validation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    pub optimizer: Setting<Optimizer>,
    pub learning_rate: Setting<f64>,
    pub schedule: Setting<Schedule>,
    /// Passes over the data; for models without data, the number of steps.
    pub epochs: Setting<u64>,
    pub batch: Setting<u64>,
    pub seed: Setting<u64>,
    /// Visit the rows in a new random order (from the seed) every epoch.
    pub shuffle: Setting<bool>,
    /// Fraction of rows held out for validation.
    pub validation: Setting<f64>,
    /// How the held-out rows are chosen.
    pub validation_kind: SplitKind,
    /// A yes/no output answers yes where its probability is at least this.
    pub threshold: Setting<f64>,
    /// Stop when the monitored value stops improving, keeping the best epoch.
    pub early_stop: Setting<Option<EarlyStop>>,
    /// Models without data: stop once the gradient's norm falls below this.
    pub tolerance: Setting<Option<f64>>,
}

/// `early_stop(patience = 10, min_delta = 0, monitor = val_loss)`: training
/// stops when the monitored value has not improved by more than
/// `min_delta` for `patience` epochs, and the best epoch's weights (and
/// optimizer state) are kept.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EarlyStop {
    pub patience: u64,
    pub min_delta: f64,
    /// `None`: `val_loss` when there is validation data, else `loss`.
    pub monitor: Option<Monitor>,
}

pub const DEFAULT_PATIENCE: u64 = 10;
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// What early stopping watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Monitor {
    /// The epoch's mean training loss (the loss the progress shows).
    Loss,
    ValLoss,
    Accuracy,
    ValAccuracy,
}

impl Monitor {
    pub const NAMES: &[&str] = &["loss", "val_loss", "accuracy", "val_accuracy"];

    pub fn from_name(name: &str) -> Option<Monitor> {
        Some(match name {
            "loss" => Monitor::Loss,
            "val_loss" => Monitor::ValLoss,
            "accuracy" => Monitor::Accuracy,
            "val_accuracy" => Monitor::ValAccuracy,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        Monitor::NAMES[self as usize]
    }

    /// Losses improve downwards, accuracies upwards.
    pub fn higher_is_better(self) -> bool {
        matches!(self, Monitor::Accuracy | Monitor::ValAccuracy)
    }

    pub fn needs_validation(self) -> bool {
        matches!(self, Monitor::ValLoss | Monitor::ValAccuracy)
    }
}

pub const DEFAULT_LEARNING_RATE: f64 = 0.01;
pub const DEFAULT_EPOCHS: u64 = 100;
pub const DEFAULT_BATCH: u64 = 32;
pub const DEFAULT_SEED: u64 = 0;

impl Default for TrainConfig {
    fn default() -> TrainConfig {
        TrainConfig {
            optimizer: Setting::default(Optimizer::SGD),
            learning_rate: Setting::default(DEFAULT_LEARNING_RATE),
            schedule: Setting::default(Schedule::Constant),
            epochs: Setting::default(DEFAULT_EPOCHS),
            batch: Setting::default(DEFAULT_BATCH),
            seed: Setting::default(DEFAULT_SEED),
            shuffle: Setting::default(false),
            validation: Setting::default(0.0),
            validation_kind: SplitKind::Auto,
            threshold: Setting::default(DEFAULT_THRESHOLD),
            early_stop: Setting::default(None),
            tolerance: Setting::default(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_optimizer_definition_is_its_defaults_definition() {
        for def in OPTIMIZERS {
            let optimizer = (def.default)();
            assert!(std::ptr::eq(optimizer.def(), *def), "{} makes {}", def.name, optimizer.name());
            assert_eq!(OptimizerDef::lookup(def.name).map(|d| d.name), Some(def.name));
            assert!(optimizer.state_kinds().iter().all(|k| def.state_kinds.contains(k)));
        }
    }
}
