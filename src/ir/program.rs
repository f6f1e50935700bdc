//! The checked program: the graph plus everything around it that is not
//! computation — how data columns bind to inputs and targets, what kind of
//! task the model solves, and the training settings (each marked as set in
//! the file or defaulted).

use super::Graph;
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
    pub span: Span,
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
            Encoding::Raw { width } => width,
            Encoding::OneHot { classes } => classes,
        }
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
    /// One integer column `0..classes` turned into a one-hot row.
    OneHot { classes: u32 },
}

/// Chosen by the output activation, as in the article: softmax means
/// classification (accuracy is reported), anything else regression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// No data: minimise a function of `param`s.
    Minimize,
    Regression,
    Classification {
        classes: u32,
    },
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

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    Sgd,
}

/// Training settings. Defaults: sgd, lr 0.01, 100 epochs (or 100 steps for
/// models without data), batch 32, seed 0, no shuffling, no validation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    pub optimizer: Setting<Optimizer>,
    pub learning_rate: Setting<f64>,
    /// Passes over the data; for models without data, the number of steps.
    pub epochs: Setting<u64>,
    pub batch: Setting<u64>,
    pub seed: Setting<u64>,
    /// Visit the rows in a new random order (from the seed) every epoch.
    pub shuffle: Setting<bool>,
    /// Fraction of rows, taken from the end of the file, held out for validation.
    pub validation: Setting<f64>,
}

pub const DEFAULT_LEARNING_RATE: f64 = 0.01;
pub const DEFAULT_EPOCHS: u64 = 100;
pub const DEFAULT_BATCH: u64 = 32;
pub const DEFAULT_SEED: u64 = 0;

impl Default for TrainConfig {
    fn default() -> TrainConfig {
        TrainConfig {
            optimizer: Setting::default(Optimizer::Sgd),
            learning_rate: Setting::default(DEFAULT_LEARNING_RATE),
            epochs: Setting::default(DEFAULT_EPOCHS),
            batch: Setting::default(DEFAULT_BATCH),
            seed: Setting::default(DEFAULT_SEED),
            shuffle: Setting::default(false),
            validation: Setting::default(0.0),
        }
    }
}
