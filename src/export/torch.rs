//! A PyTorch training project that reproduces `nnc run`: `train.py`, the
//! initial weights and a README.
//!
//! [`train_script`] fills `train_template.py` (the data loading, the
//! training loop, DistributedDataParallel and the weights file, the same for
//! every model) with what is the model's own: the settings, the data
//! bindings, the parameters, and the loss written out from the checked
//! graph one IR operation per line, so PyTorch's autograd differentiates
//! exactly the function nnc differentiates symbolically.
//!
//! Under DDP each process sees part of every batch, and DDP averages the
//! processes' gradients. When the loss is linear in its sums over rows
//! (their coefficients may depend on the parameters and the batch size, as
//! `mean` and `cross_entropy` divide by it) plus terms of the parameters
//! alone, the average is exact for any split if each process multiplies its
//! sums over rows by the world size and `batch_size` (nnc's `BatchSize`) is
//! the global batch's. [`check`] refuses (E0401) a loss of another form, and
//! a model output that depends on the batch, with the construct located.

use super::unexportable;
use crate::diag::Diagnostic;
use crate::ir::program::{Binding, ColumnRef, Columns, Encoding, Missing, Optimizer, Program, Schedule, SplitKind};
use crate::ir::{Binary, Dim, Graph, NodeId, Op, Unary};
use crate::runtime::weights::disk_shape;
use crate::syntax::ast;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

const TEMPLATE: &str = include_str!("train_template.py");

/// `train.py` for `program`; `model_file` names the `.nn` file and
/// `source_hash` its text's hash. Constructs that cannot be exported exactly
/// are returned as diagnostics.
pub fn train_script(
    program: &Program,
    ast: &ast::File,
    model_file: &str,
    source: &str,
    source_hash: &str,
) -> Result<String, Vec<Diagnostic>> {
    let mut diags = data_limits(program, ast);
    if let Err(more) = check(program) {
        diags.extend(more);
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let graph = &program.graph;
    let loss = graph.output("loss").expect("a checked program has a loss");
    let mut writer = Writer::new(graph);
    for binding in &program.data {
        let name = writer.fresh(&binding.name);
        let slot = if binding.is_target { &mut writer.targets } else { &mut writer.inputs };
        slot.insert(binding.index, name);
    }
    for (layer, id) in &program.named {
        writer.layer_names.entry(*id).or_insert_with(|| layer.clone());
    }
    let mut init = Vec::new();
    let mut layers_seen = HashSet::new();
    for param in &graph.params {
        let shape = python_shape(&[param.shape.rows, param.shape.cols]);
        let attribute = match &param.layer {
            Some(layer) if param.name.starts_with(&format!("{layer}.")) => {
                let module = python_name(layer);
                if layers_seen.insert(module.clone()) {
                    init.push(format!("        self.{module} = torch.nn.Module()  # `{layer}`"));
                }
                format!("self.{module}.{}", python_name(&param.name[layer.len() + 1..]))
            }
            _ => format!("self.{}", python_name(&param.name)),
        };
        init.push(format!("        {attribute} = torch.nn.Parameter(torch.zeros{shape})"));
        writer.params.push(attribute);
    }
    let result = writer.value(loss);
    writer.lines.push(format!("        return {result}"));

    let data_names: Vec<&str> = program
        .data
        .iter()
        .filter(|b| !b.is_target)
        .chain(program.data.iter().filter(|b| b.is_target))
        .map(|b| {
            let slot = if b.is_target { &writer.targets } else { &writer.inputs };
            slot[&b.index].as_str()
        })
        .collect();
    let tensors: Vec<String> =
        graph.params.iter().zip(&writer.params).map(|(p, a)| format!("{}: {a}", json_string(&p.name))).collect();
    let params: Vec<String> = graph
        .params
        .iter()
        .map(|p| {
            let disk: Vec<Dim> = disk_shape(p).iter().map(|&d| Dim::Fixed(d as u32)).collect();
            format!(
                "    ({}, {}, {}),",
                json_string(&p.name),
                python_shape(&[p.shape.rows, p.shape.cols]),
                python_shape(&disk)
            )
        })
        .collect();
    let bindings: Vec<String> = program.data.iter().map(|b| format!("    {},", python(&binding_spec(b)))).collect();
    let title = format!("{model_file}, trained with PyTorch as `nnc run` trains it.");
    Ok(TEMPLATE
        .replace("@@TITLE@@", &title)
        .replace("@@MODEL@@", model_file)
        .replace("@@HASH@@", source_hash)
        .replace("@@SETTINGS@@", &settings(program, model_file, source, source_hash))
        .replace("@@BINDINGS@@", &format!("[\n{}\n]", bindings.join("\n")))
        .replace("@@PARAMS@@", &format!("[\n{}\n]", params.join("\n")))
        .replace("@@INIT@@", &init.join("\n"))
        .replace("@@TENSORS@@", &tensors.join(", "))
        .replace("@@ARGS@@", &data_names.join(", "))
        .replace("@@FORWARD@@", &writer.lines.join("\n")))
}

/// The model's settings as Python constants.
fn settings(program: &Program, model_file: &str, source: &str, source_hash: &str) -> String {
    let train = &program.train;
    let (momentum, nesterov, weight_decay, betas, eps) = match train.optimizer.value {
        Optimizer::Sgd { momentum, nesterov, weight_decay } => (momentum, nesterov, weight_decay, (0.9, 0.999), 1e-8),
        Optimizer::Adam(c) | Optimizer::AdamW(c) => (0.0, false, c.weight_decay, (c.beta1, c.beta2), c.eps),
    };
    let schedule = match train.schedule.value {
        Schedule::Constant => "(\"constant\",)".to_string(),
        Schedule::Step { every, gamma } => format!("(\"step\", {every}, {gamma:?})"),
        Schedule::Exponential { gamma } => format!("(\"exponential\", {gamma:?})"),
        Schedule::Cosine { steps, min_lr } => {
            let steps = steps.map_or("None".to_string(), |n| n.to_string());
            format!("(\"cosine\", {steps}, {min_lr:?})  # None: over the whole run")
        }
    };
    let bool_py = |b: bool| if b { "True" } else { "False" };
    [
        format!("MODEL_FILE = {}", json_string(model_file)),
        format!("SOURCE_HASH = {}", json_string(source_hash)),
        format!("SOURCE = {}", json_string(source)),
        format!("OPTIMIZER = {}", json_string(train.optimizer.value.name())),
        format!("STATE_KINDS = {}", serde_json::json!(train.optimizer.value.state_kinds())),
        format!("LR = {:?}", train.learning_rate.value),
        format!("MOMENTUM = {momentum:?}"),
        format!("NESTEROV = {}", bool_py(nesterov)),
        format!("WEIGHT_DECAY = {weight_decay:?}"),
        format!("BETAS = ({:?}, {:?})", betas.0, betas.1),
        format!("EPS = {eps:?}"),
        format!("SCHEDULE = {schedule}"),
        format!("EPOCHS = {}", train.epochs.value),
        format!("BATCH = {}", train.batch.value),
        format!("SEED = {}", train.seed.value),
        format!("SHUFFLE = {}", bool_py(train.shuffle.value)),
        format!("VALIDATION = {:?}", train.validation.value),
    ]
    .join("\n")
}

fn binding_spec(b: &Binding) -> Value {
    let columns = match &b.columns {
        Columns::Positional => serde_json::json!(["position"]),
        Columns::Rest => serde_json::json!(["rest"]),
        Columns::List(refs) => {
            let list: Vec<Value> = refs
                .iter()
                .map(|r| match r {
                    ColumnRef::Name(name, _) => Value::from(name.clone()),
                    ColumnRef::Index(i, _) => Value::from(i + 1),
                })
                .collect();
            serde_json::json!(["list", list])
        }
    };
    let (encoding, classes) = match b.encoding {
        Encoding::Raw { .. } => ("raw", Value::Null),
        Encoding::OneHot { classes } => ("one_hot", Value::from(classes)),
    };
    serde_json::json!({
        "name": b.name,
        "role": if b.is_target { "target" } else { "input" },
        "columns": columns,
        "width": b.width(),
        "encoding": encoding,
        "classes": classes,
        "scale": b.scale,
        "standardize": b.standardize,
    })
}

/// The data features `train.py` does not reproduce, each a diagnostic at
/// the binding or setting: columns of labels read as categories (one-hot
/// inputs), filled cells and dropped rows. (It reads numbers, and one-hot
/// targets of class numbers.)
fn data_limits(program: &Program, ast: &ast::File) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let limit = |span, what: &str| {
        Diagnostic::new("E0401", format!("the PyTorch export cannot reproduce {what}"))
            .with_label(span, "not in the PyTorch export")
            .with_help("train.py reads numeric columns as they are; prepare the CSV with numbers, or train with nnc")
    };
    for binding in &program.data {
        if !binding.is_target && matches!(binding.encoding, Encoding::OneHot { .. }) {
            diags.push(limit(binding.span, &format!("`{}`, a column of categories", binding.name)));
        }
        if binding.fill.is_some() {
            diags.push(limit(binding.span, &format!("the filling of missing cells in `{}`", binding.name)));
        }
    }
    if program.missing == Missing::Drop {
        let span = ast
            .items
            .iter()
            .find_map(|item| match item {
                ast::Item::Data(block) => block.settings.iter().find(|s| s.name.name == "missing").map(|s| s.span),
                _ => None,
            })
            .unwrap_or_default();
        diags.push(limit(span, "the dropping of rows with missing cells"));
    }
    diags
}

/// Whether the script's validation rows (the last ones) differ from nnc's:
/// nnc's default split is seeded (stratified or random).
pub fn seeded_validation(program: &Program) -> bool {
    program.train.validation.value > 0.0 && program.train.validation_kind != SplitKind::Last
}

/// The torch export's limits, as located diagnostics: every op must have a
/// PyTorch form, the model's output must not depend on the batch (under
/// DDP each process sees part of it), and the loss must be a sum over rows
/// divided by the batch size plus terms without data (see the module doc).
pub fn check(program: &Program) -> Result<(), Vec<Diagnostic>> {
    let graph = &program.graph;
    let mut diags = Vec::new();
    let Some(loss) = graph.output("loss") else { return Ok(()) };
    let data = depends_on_data(graph);
    let live = graph.live_from(&[loss]);
    for (i, node) in graph.nodes.iter().enumerate() {
        if !live[i] {
            continue;
        }
        if let Op::State(_) | Op::Hyper(crate::ir::Hyper::LearningRate | crate::ir::Hyper::Schedule) = node.op {
            diags.push(unexportable(node, "the PyTorch script has no such value"));
        }
    }
    if let Some(predict) = graph.output("predict")
        && let Some(id) = batch_dependent(graph, predict)
    {
        diags.push(unexportable(
            graph.node(id),
            "the model's output depends on the whole batch, which DDP splits among processes",
        ));
    }
    if let Some(id) = not_a_sum_over_rows(graph, loss, &data) {
        diags.push(unexportable(
            graph.node(id),
            "the loss must be linear in its sums over rows, plus terms without data, for DDP's averaged gradients to be exact",
        ));
    }
    if diags.is_empty() { Ok(()) } else { Err(diags) }
}

/// Whether each node depends on the data (inputs or targets).
fn depends_on_data(graph: &Graph) -> Vec<bool> {
    let mut data = vec![false; graph.nodes.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        data[i] = matches!(node.op, Op::Input(_) | Op::Target(_)) || node.args.iter().any(|a| data[a.index()]);
    }
    data
}

/// A node under `root` that mixes rows: a sum over rows, or the batch size.
fn batch_dependent(graph: &Graph, root: NodeId) -> Option<NodeId> {
    let live = graph.live_from(&[root]);
    (0..=root.index()).map(|i| NodeId(i as u32)).find(|&id| {
        live[id.index()]
            && matches!(
                graph.node(id).op,
                Op::BatchSize | Op::Sum { rows: true, .. } | Op::MatMul { trans_a: true, .. }
            )
    })
}

/// The first node where the loss stops being linear in sums over rows.
fn not_a_sum_over_rows(graph: &Graph, id: NodeId, data: &[bool]) -> Option<NodeId> {
    let node = graph.node(id);
    if !data[id.index()] {
        return None;
    }
    let a = |k: usize| node.args[k];
    match node.op {
        // A sum over rows: whatever it sums is per row (the model's output
        // depends on no other row, checked above).
        Op::Sum { rows: true, .. } => {
            if batch_dependent(graph, a(0)).is_some() {
                Some(id)
            } else {
                None
            }
        }
        Op::Binary(Binary::Add | Binary::Sub) => {
            not_a_sum_over_rows(graph, a(0), data).or_else(|| not_a_sum_over_rows(graph, a(1), data))
        }
        Op::Unary(Unary::Neg) => not_a_sum_over_rows(graph, a(0), data),
        Op::Binary(Binary::Mul) if !data[a(0).index()] => not_a_sum_over_rows(graph, a(1), data),
        Op::Binary(Binary::Mul) if !data[a(1).index()] => not_a_sum_over_rows(graph, a(0), data),
        Op::Binary(Binary::Div) if !data[a(1).index()] => not_a_sum_over_rows(graph, a(0), data),
        _ => Some(id),
    }
}

/// Python words the generated names must not take.
const RESERVED: &[&str] = &[
    "False",
    "None",
    "True",
    "and",
    "as",
    "assert",
    "async",
    "await",
    "break",
    "class",
    "continue",
    "def",
    "del",
    "elif",
    "else",
    "except",
    "finally",
    "for",
    "from",
    "global",
    "if",
    "import",
    "in",
    "is",
    "lambda",
    "nonlocal",
    "not",
    "or",
    "pass",
    "raise",
    "return",
    "try",
    "while",
    "with",
    "yield",
    "torch",
    "math",
    "self",
    "batch_size",
    "world_size",
    "sys",
    "os",
    "json",
    "csv",
    "dist",
    "training",
    "forward",
    "train",
    "eval",
    "parameters",
    "modules",
    "to",
    "state_dict",
    "float",
    "double",
    "half",
    "type",
    "apply",
    "cuda",
    "cpu",
    "buffers",
    "children",
];

/// `name` as a Python identifier: dots become underscores, reserved words
/// get a trailing underscore.
fn python_name(name: &str) -> String {
    let name = name.replace('.', "_");
    if RESERVED.contains(&name.as_str()) { format!("{name}_") } else { name }
}

fn python_shape(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.resolve(0).to_string()).collect();
    match parts.len() {
        1 => format!("({},)", parts[0]),
        _ => format!("({})", parts.join(", ")),
    }
}

/// A string literal that Python reads back (JSON's escapes are Python's).
fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string")
}

/// A JSON value as a Python literal.
fn python(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => json_string(s),
        Value::Array(items) => format!("[{}]", items.iter().map(python).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => {
            let items: Vec<String> = map.iter().map(|(k, v)| format!("{}: {}", json_string(k), python(v))).collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// Writes the loss as one Python statement per IR node.
struct Writer<'g> {
    graph: &'g Graph,
    lines: Vec<String>,
    taken: HashSet<String>,
    inputs: HashMap<u32, String>,
    targets: HashMap<u32, String>,
    params: Vec<String>,
    layer_names: HashMap<NodeId, String>,
    values: HashMap<NodeId, String>,
    /// Whether each node depends on the data.
    data: Vec<bool>,
    current_layer: Option<String>,
}

impl<'g> Writer<'g> {
    fn new(graph: &'g Graph) -> Writer<'g> {
        Writer {
            graph,
            lines: Vec::new(),
            taken: RESERVED.iter().map(|s| s.to_string()).collect(),
            inputs: HashMap::new(),
            targets: HashMap::new(),
            params: Vec::new(),
            layer_names: HashMap::new(),
            values: HashMap::new(),
            data: depends_on_data(graph),
            current_layer: None,
        }
    }

    fn fresh(&mut self, base: &str) -> String {
        super::unique_name(&mut self.taken, &python_name(base), "_")
    }

    fn value(&mut self, id: NodeId) -> String {
        if let Some(name) = self.values.get(&id) {
            return name.clone();
        }
        let text = self.expression(id);
        let node = self.graph.node(id);
        let name = match &node.op {
            // Leaves and constants are used as they are.
            Op::Input(_) | Op::Target(_) | Op::Param(_) | Op::Const(_) | Op::BatchSize => text,
            _ => self.assign(id, &text),
        };
        self.values.insert(id, name.clone());
        name
    }

    fn assign(&mut self, id: NodeId, text: &str) -> String {
        let node = self.graph.node(id);
        let layer = node.origin.layer.clone();
        if layer != self.current_layer {
            if let Some(layer) = &layer {
                self.lines.push(format!("        # {layer}"));
            }
            self.current_layer = layer.clone();
        }
        let name = match self.layer_names.get(&id).cloned() {
            Some(layer) => self.fresh(&layer),
            None => self.fresh(&format!("{}_{}", layer.as_deref().unwrap_or("v"), node.op.name())),
        };
        self.lines.push(format!("        {name} = {text}"));
        name
    }

    /// A tensor-valued argument: a constant becomes a `[1, 1]` tensor.
    fn tensor(&mut self, id: NodeId) -> String {
        match self.graph.node(id).op {
            Op::Const(c) => format!("torch.full((1, 1), {c:?})"),
            Op::BatchSize => "torch.full((1, 1), batch_size)".into(),
            _ => self.value(id),
        }
    }

    fn expression(&mut self, id: NodeId) -> String {
        let node = self.graph.node(id).clone();
        let args = node.args.clone();
        match &node.op {
            Op::Input(i) => self.inputs[i].clone(),
            Op::Target(i) => self.targets[i].clone(),
            Op::Param(i) => self.params[*i as usize].clone(),
            Op::Const(c) => match (node.shape.rows, node.shape.cols) {
                (Dim::Fixed(1), Dim::Fixed(1)) => format!("{c:?}"),
                (Dim::Fixed(r), Dim::Fixed(k)) => format!("torch.full(({r}, {k}), {c:?})"),
                (_, cols) => format!("torch.full(({}.shape[0], {}), {c:?})", self.any_data(), cols.resolve(0)),
            },
            Op::BatchSize => "batch_size".into(),
            Op::Hyper(_) | Op::State(_) => "None".into(),
            Op::Unary(u) => {
                let x = self.value(args[0]);
                match u {
                    Unary::Neg => format!("-{x}"),
                    Unary::Exp => format!("torch.exp({})", self.tensor(args[0])),
                    Unary::Log => format!("torch.log({})", self.tensor(args[0])),
                    Unary::Tanh => format!("torch.tanh({})", self.tensor(args[0])),
                    Unary::Sigmoid => format!("torch.sigmoid({})", self.tensor(args[0])),
                    Unary::Relu => format!("torch.relu({})", self.tensor(args[0])),
                    Unary::Abs => format!("torch.abs({})", self.tensor(args[0])),
                    Unary::Step => format!("({} > 0).float()", self.tensor(args[0])),
                    Unary::Sign => format!("torch.sign({})", self.tensor(args[0])),
                    Unary::Pow(c) => format!("{x} ** {c:?}"),
                }
            }
            Op::Binary(b) => {
                let (x, y) = (self.value(args[0]), self.value(args[1]));
                let symbol = match b {
                    Binary::Add => "+",
                    Binary::Sub => "-",
                    Binary::Mul => "*",
                    Binary::Div => "/",
                };
                format!("{x} {symbol} {y}")
            }
            Op::MatMul { trans_a, trans_b } => {
                let x = self.tensor(args[0]);
                let y = self.tensor(args[1]);
                let t = |s: String, on: bool| if on { format!("{s}.T") } else { s };
                format!("{} @ {}", t(x, *trans_a), t(y, *trans_b))
            }
            Op::Sum { rows, cols } => {
                let x = self.tensor(args[0]);
                // A sum over the rows of data: this process's share (see the module doc).
                let share = if *rows && self.data[args[0].index()] { " * world_size" } else { "" };
                match (rows, cols) {
                    (true, true) => format!("{x}.sum().reshape(1, 1){share}"),
                    (true, false) => format!("{x}.sum(0, keepdim=True){share}"),
                    (false, true) => format!("{x}.sum(1, keepdim=True)"),
                    (false, false) => x,
                }
            }
            Op::Broadcast => {
                let x = self.tensor(args[0]);
                let dim = |d: Dim| match d {
                    Dim::Batch => format!("{}.shape[0]", self.any_data()),
                    Dim::Fixed(n) => n.to_string(),
                };
                format!("{x}.expand({}, {})", dim(node.shape.rows), dim(node.shape.cols))
            }
            Op::Softmax => format!("torch.softmax({}, dim=1)", self.tensor(args[0])),
            Op::LogSoftmax => format!("torch.log_softmax({}, dim=1)", self.tensor(args[0])),
            Op::SliceCols { start } => {
                let width = node.shape.width().unwrap_or(0);
                format!("{}[:, {start}:{}]", self.tensor(args[0]), start + width)
            }
            Op::PadCols { start } => {
                let total = node.shape.width().unwrap_or(0);
                let inner = self.graph.shape(args[0]).width().unwrap_or(0);
                format!("torch.nn.functional.pad({}, ({start}, {}))", self.tensor(args[0]), total - start - inner)
            }
            Op::ConcatCols => {
                if args.iter().all(|&a| matches!(self.graph.node(a).op, Op::Const(_))) {
                    let row: Vec<String> = args
                        .iter()
                        .map(|&a| match self.graph.node(a).op {
                            Op::Const(c) => format!("{c:?}"),
                            _ => unreachable!("all constants"),
                        })
                        .collect();
                    return format!("torch.tensor([[{}]])", row.join(", "));
                }
                let parts: Vec<String> = args.iter().map(|&a| self.tensor(a)).collect();
                format!("torch.cat([{}], dim=1)", parts.join(", "))
            }
            Op::Compare(_) => format!("{}.float()", self.condition(id)),
            Op::Select => {
                let condition = self.condition(args[0]);
                let (a, b) = (self.tensor(args[1]), self.tensor(args[2]));
                format!("torch.where({condition}, {a}, {b})")
            }
            Op::Dropout { rate, .. } => {
                let x = self.value(args[0]);
                format!("torch.nn.functional.dropout({x}, {rate:?}, self.training)")
            }
        }
    }

    /// A boolean tensor: a comparison written out, or "not 0".
    fn condition(&mut self, id: NodeId) -> String {
        let node = self.graph.node(id).clone();
        let Op::Compare(compare) = node.op else {
            return format!("({} != 0)", self.value(id));
        };
        let (x, y) = (self.tensor(node.args[0]), self.value(node.args[1]));
        // Python spells the comparisons as `.nn` files do.
        format!("({x} {} {y})", compare.symbol())
    }

    /// Some data tensor, for the batch's row count.
    fn any_data(&self) -> String {
        self.inputs.values().chain(self.targets.values()).next().cloned().unwrap_or_else(|| "None".into())
    }
}

/// The project's README: how to run it and what it promises.
pub fn readme(program: &Program, model_file: &str) -> String {
    let train = &program.train;
    format!(
        "# {model_file}, for PyTorch\n\
         \n\
         Generated by `nnc export --torch`. `train.py` trains the network of `{model_file}`\n\
         as `nnc run` does, from `initial.safetensors` (nnc's initial weights: PyTorch\n\
         cannot reproduce nnc's generator), and saves `trained.safetensors`, which\n\
         `nnc predict --weights trained.safetensors DATA.csv` loads.\n\
         \n\
         ```sh\n\
         python train.py DATA.csv                  # one process\n\
         OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 train.py DATA.csv\n\
         ```\n\
         \n\
         Needs `torch` and `safetensors`. Settings: {optimizer}, {epochs} epochs, batch {batch},\n\
         schedule {schedule}; `--epochs N`, `--init FILE` and `--out FILE` override.\n\
         \n\
         ## What is the same as nnc, and what is not\n\
         \n\
         - Parameters keep nnc's names and layout: `h.w` is [inputs, outputs].\n\
         - The loss is nnc's graph written out op by op; the optimizer and schedule\n\
         \x20 are PyTorch's `SGD`/`Adam`/`AdamW` with a `LambdaLR` stepped after every\n\
         \x20 optimizer step, which is what nnc computes; batches are taken in file\n\
         \x20 order with the last partial batch kept; the preprocessing is fitted on the\n\
         \x20 training rows as nnc fits it.\n\
         - Without shuffling and dropout, the final loss equals `nnc run\n\
         \x20 --init-weights initial.safetensors` to about 1e-5 relative, in one process\n\
         \x20 and under torchrun: each global batch is split among the processes, and\n\
         \x20 each multiplies its sums over rows by the world size (a mean becomes the\n\
         \x20 sum over its rows / global batch rows × world size), so DDP's averaged\n\
         \x20 gradient is the one-process gradient.\n\
         - Shuffled runs use `torch.randperm` (nnc uses ChaCha8) and dropout uses\n\
         \x20 PyTorch's masks (nnc hashes the step and position): those runs differ.\n\
         - `train_func(config)` is the entry point for Ray Train's `TorchTrainer` and\n\
         \x20 Spark's `TorchDistributor` (`config`: `data`, `init`, `out`, `epochs`).\n",
        optimizer = train.optimizer.value.describe(&format!("{:?}", train.learning_rate.value)),
        epochs = train.epochs.value,
        batch = train.batch.value,
        schedule = train.schedule.value.describe(),
    )
}
