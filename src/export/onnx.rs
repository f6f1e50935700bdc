//! The inference graph as an ONNX model (opset 17, IR version 8).
//!
//! [`onnx`] walks the checked forward graph from its `predict` output and
//! writes one ONNX node (or a few) per IR node, memoised, so the file is the
//! same computation `nnc predict` runs:
//!
//! - **inputs**: one per `input` binding, named like it, `float[batch, n]` in
//!   the CSV's own units; the saved preprocessing follows as `Mul` (scale),
//!   `Sub` (mean) and `Div` (standard deviation), and a one-hot input as a
//!   comparison with the constant row of class numbers;
//! - **parameters** are initializers with nnc's names and weights-file
//!   shapes (`h.w` `[inputs, outputs]`, `h.b` `[outputs]`), so no transposing;
//! - **per-neuron activations** (the checker's column slices, one run of
//!   equal activations each, concatenated) become one application of each
//!   distinct activation to the whole layer and `Where` with constant
//!   boolean masks — the form `torch.onnx.export` emits; multiplying by 0/1
//!   masks instead would turn one neuron's overflow into NaN in the others;
//! - user functions and conditionals are already inlined by `check`: a
//!   comparison is the ONNX comparison, cast to float where its 1/0 value is
//!   used, and a conditional is `Where`;
//! - **outputs**: for classification the probabilities (named like the
//!   output layer) and `class`, the `ArgMax` index (first maximum, as
//!   `nnc predict`); for regression the output in the target's units
//!   (standardisation and scale undone), named like the target.
//!
//! Tensor names are nnc's: inputs and targets by binding, layers by their
//! `model` names, parameters by theirs, and intermediate values
//! `<layer>.<op>`. A construct with no ONNX form is a located diagnostic.

use super::onnx_proto::*;
use super::unexportable;
use crate::diag::Diagnostic;
use crate::ir::program::{Binding, Encoding, Program, Task};
use crate::ir::{Binary, Compare, Dim, Graph, NodeId, Op, Shape, Unary};
use crate::runtime::data::prepare::Transform;
use crate::runtime::train::Params;
use crate::runtime::weights::disk_shape;
use std::collections::{HashMap, HashSet};

/// The opset version the files declare.
pub const OPSET: i64 = 17;
/// The ONNX IR version the files declare.
pub const IR_VERSION: i64 = 8;
/// The domain of `LabelEncoder` (string categories to indices), and the
/// version of it the files import when they need it.
pub const ML_DOMAIN: &str = "ai.onnx.ml";
pub const ML_OPSET: i64 = 2;
/// The symbolic batch dimension's name.
pub const BATCH: &str = "batch";

/// Build the ONNX model of `program`'s prediction with trained `params` and
/// the saved `transforms` (in `program.data` order); `metadata` becomes the
/// model's `metadata_props`. Constructs that cannot be exported are
/// returned as diagnostics pointing into the model file.
pub fn onnx(
    program: &Program,
    params: &Params,
    transforms: &[Transform],
    name: &str,
    metadata: &[(String, String)],
) -> Result<ModelProto, Vec<Diagnostic>> {
    let graph = &program.graph;
    let Some(predict) = graph.output("predict") else {
        return Err(vec![Diagnostic::new("E0401", "the model has no data, so there is no prediction to export")]);
    };
    let mut builder = Builder::new(graph);
    for (layer, id) in &program.named {
        builder.layer_names.entry(*id).or_insert_with(|| layer.clone());
    }
    for binding in &program.data {
        builder.reserve(&binding.name);
    }
    for param in &graph.params {
        builder.reserve(&param.name);
    }
    // Inputs and their preprocessing.
    for binding in program.data.iter().filter(|b| !b.is_target) {
        let index = program.data.iter().position(|b| b == binding).expect("a binding of the program");
        let value = builder.input(binding, &transforms[index]);
        builder.inputs.insert(binding.index, value);
    }
    // Parameters.
    for (i, param) in graph.params.iter().enumerate() {
        let values = params.get(i).to_vec();
        let dims: Vec<i64> = disk_shape(param).iter().map(|&d| d as i64).collect();
        builder.initializers.push(float_tensor(&param.name, dims, &values));
        builder.params.push(param.name.clone());
    }
    let output = builder.value(predict);
    let width = graph.shape(predict).width().unwrap_or(1);
    let mut outputs = Vec::new();
    match program.task {
        Task::Classification { .. } => {
            let probabilities = builder.rename(&output, predict);
            let class = builder.fresh("class");
            builder.node("ArgMax", &[&probabilities], &class, vec![int("axis", 1), int("keepdims", 0)]);
            outputs.push(value_info(&probabilities, data_type::FLOAT, &[Dim::Batch, Dim::Fixed(width)]));
            outputs.push(value_info(&class, data_type::INT64, &[Dim::Batch]));
            // The class's name, when the target's labels were names.
            let target = program.data.iter().position(|b| b.is_target);
            if let Some(t) = target.map(|i| &transforms[i])
                && t.categories.len() == width as usize
                && !t.categories_are_indices()
            {
                let names = builder.fresh("classes");
                builder.initializers.push(string_tensor(&names, &t.categories));
                let label = builder.fresh("label");
                builder.node("Gather", &[&names, &class], &label, vec![int("axis", 0)]);
                outputs.push(value_info(&label, data_type::STRING, &[Dim::Batch]));
            }
        }
        Task::Binary { .. } => {
            // The probabilities, and each unit's answer at the threshold
            // (1 where p ≥ threshold), as `nnc predict` writes them.
            let probabilities = builder.rename(&output, predict);
            let threshold = builder.fresh("threshold");
            builder.initializers.push(float_tensor(&threshold, vec![], &[program.train.threshold.value as f32]));
            let said = builder.fresh("said");
            builder.node("GreaterOrEqual", &[&probabilities, &threshold], &said, vec![]);
            let answer = builder.fresh("answer");
            builder.node("Cast", &[&said], &answer, vec![int("to", i64::from(data_type::INT64))]);
            outputs.push(value_info(&probabilities, data_type::FLOAT, &[Dim::Batch, Dim::Fixed(width)]));
            outputs.push(value_info(&answer, data_type::INT64, &[Dim::Batch, Dim::Fixed(width)]));
        }
        _ => {
            let target = program.data.iter().position(|b| b.is_target && b.width() == width);
            let units = match target {
                Some(i) => builder.target_units(&output, &program.data[i], &transforms[i]),
                None => builder.rename(&output, predict),
            };
            outputs.push(value_info(&units, data_type::FLOAT, &[Dim::Batch, Dim::Fixed(width)]));
        }
    }
    if !builder.diags.is_empty() {
        return Err(builder.diags);
    }
    let inputs = program
        .data
        .iter()
        .filter(|b| !b.is_target)
        .map(|b| {
            let elem_type = builder.input_types.get(&b.name).copied().unwrap_or(data_type::FLOAT);
            value_info(&b.name, elem_type, &[Dim::Batch, Dim::Fixed(b.column_count() as u32)])
        })
        .collect();
    let mut opset_import = vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) }];
    if builder.uses_ml {
        opset_import.push(OperatorSetIdProto { domain: Some(ML_DOMAIN.into()), version: Some(ML_OPSET) });
    }
    let graph_proto = GraphProto {
        node: builder.nodes,
        name: Some(name.to_string()),
        initializer: builder.initializers,
        doc_string: Some(format!("{name}, exported by nnc {}", env!("CARGO_PKG_VERSION"))),
        input: inputs,
        output: outputs,
    };
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        producer_name: Some("nnc".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: None,
        graph: Some(graph_proto),
        opset_import,
        metadata_props: metadata
            .iter()
            .map(|(k, v)| StringStringEntryProto { key: Some(k.clone()), value: Some(v.clone()) })
            .collect(),
    })
}

/// A tensor name with the column slice it stands for replaced: `(slice,
/// whole)` while emitting one activation of a per-neuron layer.
type Substitution = Option<(NodeId, String)>;

struct Builder<'g> {
    graph: &'g Graph,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    /// Every tensor name taken.
    taken: HashSet<String>,
    /// `model` bindings by the node that holds their value.
    layer_names: HashMap<NodeId, String>,
    /// The preprocessed tensor of each `graph.inputs` entry.
    inputs: HashMap<u32, String>,
    params: Vec<String>,
    /// Emitted values: by node and the slice substituted (if any).
    values: HashMap<(NodeId, Option<NodeId>), String>,
    /// The boolean form of comparisons, for `Where`.
    bools: HashMap<(NodeId, Option<NodeId>), String>,
    /// Elementwise nodes by op type and inputs.
    shared: HashMap<(String, Vec<String>), String>,
    /// Scalar constants by bit pattern.
    constants: HashMap<u64, String>,
    /// Graph inputs that are not float: label columns read as strings.
    input_types: HashMap<String, i32>,
    /// Whether a node of the `ai.onnx.ml` domain is used.
    uses_ml: bool,
    /// A raw input tensor `[batch, n]`, to read the batch size from.
    batch_source: Option<String>,
    diags: Vec<Diagnostic>,
}

impl<'g> Builder<'g> {
    fn new(graph: &'g Graph) -> Builder<'g> {
        Builder {
            graph,
            nodes: Vec::new(),
            initializers: Vec::new(),
            taken: HashSet::new(),
            layer_names: HashMap::new(),
            inputs: HashMap::new(),
            params: Vec::new(),
            values: HashMap::new(),
            bools: HashMap::new(),
            shared: HashMap::new(),
            constants: HashMap::new(),
            batch_source: None,
            input_types: HashMap::new(),
            uses_ml: false,
            diags: Vec::new(),
        }
    }

    fn reserve(&mut self, name: &str) {
        self.taken.insert(name.to_string());
    }

    /// `base` if no tensor has that name yet, else `base.1`, `base.2`, ...
    fn fresh(&mut self, base: &str) -> String {
        super::unique_name(&mut self.taken, base, ".")
    }

    fn node(&mut self, op_type: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name: Some(output.to_string()),
            op_type: Some(op_type.to_string()),
            attribute,
            doc_string: None,
            domain: None,
        });
    }

    /// A new node whose output gets a fresh name from `base`.
    fn emit(&mut self, op_type: &str, inputs: &[&str], base: &str, attribute: Vec<AttributeProto>) -> String {
        let output = self.fresh(base);
        self.node(op_type, inputs, &output, attribute);
        output
    }

    /// A scalar float constant (rank 0, broadcasts anywhere).
    fn scalar(&mut self, value: f64) -> String {
        let value = value as f32;
        if let Some(name) = self.constants.get(&u64::from(value.to_bits())) {
            return name.clone();
        }
        let name = self.fresh(&format!("const.{}", format_number(value)));
        self.initializers.push(float_tensor(&name, vec![], &[value]));
        self.constants.insert(u64::from(value.to_bits()), name.clone());
        name
    }

    fn ints(&mut self, base: &str, values: &[i64]) -> String {
        let name = self.fresh(base);
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: Some(data_type::INT64),
            string_data: vec![],
            name: Some(name.clone()),
            raw_data: Some(bytes),
        });
        name
    }

    /// The graph input of `binding` and its preprocessing: the tensor the
    /// model's `Input` reads.
    fn input(&mut self, binding: &Binding, transform: &Transform) -> String {
        let name = binding.name.clone();
        self.batch_source.get_or_insert_with(|| name.clone());
        let mut value = name.clone();
        if binding.reads_labels() {
            return self.labels(binding, transform);
        }
        // Missing cells (NaN) take the fill values; indicator columns say where.
        let missing =
            (!transform.fill.is_empty()).then(|| self.emit("IsNaN", &[&name], &format!("{name}.missing"), vec![]));
        if let Some(missing) = &missing {
            let fill = self.fresh(&format!("{name}.fill"));
            self.initializers.push(float_tensor(&fill, vec![transform.fill.len() as i64], &to_f32(&transform.fill)));
            value = self.emit("Where", &[missing, &fill, &value], &format!("{name}.filled"), vec![]);
        }
        if transform.scale != 1.0 {
            let scale = self.scalar(transform.scale);
            value = self.emit("Mul", &[&value, &scale], &format!("{name}.scaled"), vec![]);
        }
        if binding.standardize && !transform.mean.is_empty() {
            let mean = self.fresh(&format!("{name}.mean"));
            let std = self.fresh(&format!("{name}.std"));
            let n = transform.mean.len() as i64;
            self.initializers.push(float_tensor(&mean, vec![n], &to_f32(&transform.mean)));
            self.initializers.push(float_tensor(&std, vec![n], &to_f32(&transform.std)));
            let centred = self.emit("Sub", &[&value, &mean], &format!("{name}.centred"), vec![]);
            value = self.emit("Div", &[&centred, &std], &format!("{name}.standardized"), vec![]);
        }
        if let (Some(missing), true) = (&missing, binding.fill.is_some_and(|f| f.indicator)) {
            let to = int("to", data_type::FLOAT.into());
            let indicator = self.emit("Cast", &[missing], &format!("{name}.indicator"), vec![to]);
            value = self.emit("Concat", &[&value, &indicator], &format!("{name}.with_indicator"), vec![int("axis", 1)]);
        }
        value
    }

    /// A column of labels: its categories' index, one-hot when the binding
    /// says so. Numeric categories (`0`, `1`, `2`) are compared as numbers
    /// with a float input; names arrive as a string input and go through
    /// `LabelEncoder` (a label that is not a category becomes index −1, an
    /// all-zero one-hot row: a graph cannot refuse it as `nnc predict` does).
    fn labels(&mut self, binding: &Binding, transform: &Transform) -> String {
        let name = binding.name.clone();
        let k = transform.categories.len() as i64;
        let to_float = || int("to", data_type::FLOAT.into());
        let numbers: Option<Vec<f32>> = transform.categories.iter().map(|c| c.parse::<f32>().ok()).collect();
        match numbers {
            Some(numbers) if matches!(binding.encoding, Encoding::OneHot { .. }) => {
                let row = self.fresh(&format!("{name}.categories"));
                self.initializers.push(float_tensor(&row, vec![1, k], &numbers));
                let equal = self.emit("Equal", &[&name, &row], &format!("{name}.equal"), vec![]);
                self.emit("Cast", &[&equal], &format!("{name}.one_hot"), vec![to_float()])
            }
            Some(_) => name,
            None => {
                self.input_types.insert(name.clone(), data_type::STRING);
                self.uses_ml = true;
                let index = self.fresh(&format!("{name}.index"));
                self.nodes.push(NodeProto {
                    input: vec![name.clone()],
                    output: vec![index.clone()],
                    name: Some(index.clone()),
                    op_type: Some("LabelEncoder".into()),
                    attribute: vec![
                        strings("keys_strings", &transform.categories),
                        ints("values_int64s", &(0..k).collect::<Vec<_>>()),
                        int("default_int64", -1),
                    ],
                    doc_string: None,
                    domain: Some(ML_DOMAIN.into()),
                });
                if !matches!(binding.encoding, Encoding::OneHot { .. }) {
                    return self.emit("Cast", &[&index], &format!("{name}.float"), vec![to_float()]);
                }
                let row = self.ints(&format!("{name}.categories"), &(0..k).collect::<Vec<_>>());
                let shape = self.ints(&format!("{name}.row"), &[1, k]);
                let row = self.emit("Reshape", &[&row, &shape], &format!("{name}.categories_row"), vec![]);
                let equal = self.emit("Equal", &[&index, &row], &format!("{name}.equal"), vec![]);
                self.emit("Cast", &[&equal], &format!("{name}.one_hot"), vec![to_float()])
            }
        }
    }

    /// The model output in the target's units: `(out · std + mean) / scale`.
    fn target_units(&mut self, output: &str, target: &Binding, transform: &Transform) -> String {
        let name = target.name.clone();
        let mut value = output.to_string();
        if target.standardize && !transform.mean.is_empty() {
            let n = transform.mean.len() as i64;
            let std = self.fresh(&format!("{name}.std"));
            let mean = self.fresh(&format!("{name}.mean"));
            self.initializers.push(float_tensor(&std, vec![n], &to_f32(&transform.std)));
            self.initializers.push(float_tensor(&mean, vec![n], &to_f32(&transform.mean)));
            let scaled = self.emit("Mul", &[&value, &std], &format!("{name}.unscaled"), vec![]);
            value = self.emit("Add", &[&scaled, &mean], &format!("{name}.uncentred"), vec![]);
        }
        if transform.scale != 1.0 {
            let scale = self.scalar(transform.scale);
            value = self.emit("Div", &[&value, &scale], &format!("{name}.units"), vec![]);
        }
        // The graph output carries the target's name.
        self.taken.remove(&name);
        let out = self.fresh(&name);
        self.node("Identity", &[&value], &out, vec![]);
        out
    }

    /// `tensor` as a graph output named after the node's layer: an
    /// `Identity` when the tensor is an input or parameter, which ONNX does
    /// not allow as an output directly.
    fn rename(&mut self, tensor: &str, id: NodeId) -> String {
        let is_leaf = self.params.iter().any(|p| p == tensor) || self.inputs.values().any(|v| v == tensor);
        if !is_leaf && !self.initializers.iter().any(|t| t.name.as_deref() == Some(tensor)) {
            return tensor.to_string();
        }
        let base = self.layer_names.get(&id).cloned().unwrap_or_else(|| "output".into());
        self.emit("Identity", &[tensor], &base, vec![])
    }

    /// The name for node `id`'s value: its layer's name if it is a layer's
    /// value (and not yet used), else `<layer>.<op>`.
    fn name_for(&mut self, id: NodeId, substituted: bool) -> String {
        if !substituted && let Some(layer) = self.layer_names.get(&id).cloned() {
            return self.fresh(&layer);
        }
        let node = self.graph.node(id);
        let layer = node.origin.layer.clone().unwrap_or_else(|| "value".into());
        self.fresh(&format!("{layer}.{}", node.op.name()))
    }

    fn value(&mut self, id: NodeId) -> String {
        self.value_in(id, &None)
    }

    /// The tensor of node `id`, emitting it (and its arguments) on first use.
    fn value_in(&mut self, id: NodeId, subst: &Substitution) -> String {
        if let Some((slice, whole)) = subst {
            if *slice == id {
                return whole.clone();
            }
            if !self.depends_on(id, *slice) {
                return self.value_in(id, &None);
            }
        }
        let key = (id, subst.as_ref().map(|s| s.0));
        if let Some(name) = self.values.get(&key) {
            return name.clone();
        }
        let name = self.emit_node(id, subst);
        self.values.insert(key, name.clone());
        name
    }

    fn depends_on(&self, id: NodeId, on: NodeId) -> bool {
        if id == on {
            return true;
        }
        if id < on {
            return false;
        }
        self.graph.node(id).args.iter().any(|&a| self.depends_on(a, on))
    }

    fn emit_node(&mut self, id: NodeId, subst: &Substitution) -> String {
        let node = self.graph.node(id).clone();
        let args: Vec<NodeId> = node.args.clone();
        let substituted = subst.is_some();
        let simple = |op: &str| Some(op.to_string());
        let op_type = match &node.op {
            Op::Input(i) => return self.inputs.get(i).cloned().unwrap_or_default(),
            Op::Param(i) => return self.params[*i as usize].clone(),
            Op::Dropout { .. } => return self.value_in(args[0], subst),
            Op::Const(c) => return self.constant(*c, node.shape, id),
            Op::Target(_) | Op::State(_) | Op::Hyper(_) => {
                self.diags.push(unexportable(&node, "it is not known when predicting"));
                return String::new();
            }
            _ if node.args.iter().any(|&a| matches!(self.graph.node(a).op, Op::Target(_))) => {
                let target = node.args.iter().find_map(|&a| match self.graph.node(a).op {
                    Op::Target(t) => Some(self.graph.targets[t as usize].name.clone()),
                    _ => None,
                });
                let why =
                    format!("it reads the target `{}`, which is not known when predicting", target.unwrap_or_default());
                self.diags.push(unexportable(&node, &why));
                return String::new();
            }
            Op::BatchSize => return self.batch_size(),
            Op::ConcatCols if self.per_neuron(&args).is_some() => {
                let split = self.per_neuron(&args).expect("checked");
                let name = self.name_for(id, substituted);
                return self.masked(split, &name, subst);
            }
            Op::Unary(Unary::Neg) => simple("Neg"),
            Op::Unary(Unary::Exp) => simple("Exp"),
            Op::Unary(Unary::Log) => simple("Log"),
            Op::Unary(Unary::Tanh) => simple("Tanh"),
            Op::Unary(Unary::Sigmoid) => simple("Sigmoid"),
            Op::Unary(Unary::Relu) => simple("Relu"),
            Op::Unary(Unary::Abs) => simple("Abs"),
            Op::Unary(Unary::Sign) => simple("Sign"),
            Op::Binary(Binary::Add) => simple("Add"),
            Op::Binary(Binary::Sub) => simple("Sub"),
            Op::Binary(Binary::Mul) => simple("Mul"),
            Op::Binary(Binary::Div) => simple("Div"),
            // Emitted below with attributes or several nodes; listed, not
            // matched by a wildcard, so a new op is a compile error here.
            Op::Unary(Unary::Step | Unary::Pow(_))
            | Op::Softmax
            | Op::LogSoftmax
            | Op::MatMul { .. }
            | Op::Sum { .. }
            | Op::Broadcast
            | Op::SliceCols { .. }
            | Op::PadCols { .. }
            | Op::ConcatCols
            | Op::Compare(_)
            | Op::Select => None,
        };
        let inputs: Vec<String> = args.iter().map(|&a| self.value_in(a, subst)).collect();
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        // The activations of a per-neuron layer share their subexpressions
        // (`relu(z)` in both leaky_relu and elu): emit each once.
        let shared_key = op_type.clone().map(|op| (op, inputs.clone()));
        if let Some(existing) = shared_key.as_ref().and_then(|key| self.shared.get(key)) {
            return existing.clone();
        }
        let name = self.name_for(id, substituted);
        if let Some(op_type) = op_type {
            self.node(&op_type, &refs, &name, vec![]);
            self.shared.insert(shared_key.expect("an op"), name.clone());
            return name;
        }
        match &node.op {
            Op::Unary(Unary::Step) => {
                let zero = self.scalar(0.0);
                let positive = self.emit("Greater", &[refs[0], &zero], &format!("{name}.positive"), vec![]);
                self.node("Cast", &[&positive], &name, vec![int("to", data_type::FLOAT.into())]);
            }
            Op::Unary(Unary::Pow(c)) => {
                let exponent = self.scalar(*c);
                self.node("Pow", &[refs[0], &exponent], &name, vec![]);
            }
            Op::Softmax => self.node("Softmax", &refs, &name, vec![int("axis", 1)]),
            Op::LogSoftmax => self.node("LogSoftmax", &refs, &name, vec![int("axis", 1)]),
            Op::MatMul { trans_a, trans_b } => {
                let mut operands = Vec::new();
                for (k, transposed) in [*trans_a, *trans_b].into_iter().enumerate() {
                    operands.push(if transposed {
                        self.emit("Transpose", &[refs[k]], &format!("{name}.t{k}"), vec![ints("perm", &[1, 0])])
                    } else {
                        refs[k].to_string()
                    });
                }
                self.node("MatMul", &[&operands[0], &operands[1]], &name, vec![]);
            }
            Op::Sum { rows, cols } => {
                let axes: Vec<i64> = [(*rows, 0), (*cols, 1)].iter().filter(|(r, _)| *r).map(|(_, a)| *a).collect();
                let axes = self.ints(&format!("{name}.axes"), &axes);
                self.node("ReduceSum", &[refs[0], &axes], &name, vec![int("keepdims", 1)]);
            }
            Op::Broadcast => {
                let shape = self.shape_tensor(node.shape, &name);
                self.node("Expand", &[refs[0], &shape], &name, vec![]);
            }
            Op::SliceCols { start } => {
                let width = i64::from(node.shape.width().unwrap_or(0));
                let starts = self.ints(&format!("{name}.starts"), &[i64::from(*start)]);
                let ends = self.ints(&format!("{name}.ends"), &[i64::from(*start) + width]);
                let axes = self.ints(&format!("{name}.axes"), &[1]);
                self.node("Slice", &[refs[0], &starts, &ends, &axes], &name, vec![]);
            }
            Op::PadCols { start } => {
                let total = i64::from(node.shape.width().unwrap_or(0));
                let inner = i64::from(self.graph.shape(args[0]).width().unwrap_or(0));
                let start = i64::from(*start);
                let pads = self.ints(&format!("{name}.pads"), &[0, start, 0, total - start - inner]);
                self.node("Pad", &[refs[0], &pads], &name, vec![]);
            }
            Op::ConcatCols => {
                // Scalars are rank 0 here; `Concat` needs every part `[rows, cols]`.
                let mut parts = Vec::new();
                for (k, &arg) in args.iter().enumerate() {
                    parts.push(if self.graph.shape(arg).is_scalar() {
                        let shape = self.ints(&format!("{name}.shape{k}"), &[1, 1]);
                        self.emit("Reshape", &[refs[k], &shape], &format!("{name}.part{k}"), vec![])
                    } else {
                        refs[k].to_string()
                    });
                }
                let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
                self.node("Concat", &parts, &name, vec![int("axis", 1)]);
            }
            Op::Compare(compare) => {
                let condition = self.comparison(*compare, &refs, &name);
                self.bools.insert((id, subst.as_ref().map(|s| s.0)), condition.clone());
                self.node("Cast", &[&condition], &name, vec![int("to", data_type::FLOAT.into())]);
            }
            Op::Select => {
                let condition = match self.bools.get(&(args[0], subst.as_ref().map(|s| s.0))) {
                    Some(condition) => condition.clone(),
                    None => {
                        let zero = self.scalar(0.0);
                        let equal = self.emit("Equal", &[refs[0], &zero], &format!("{name}.is_zero"), vec![]);
                        self.emit("Not", &[&equal], &format!("{name}.condition"), vec![])
                    }
                };
                self.node("Where", &[&condition, refs[1], refs[2]], &name, vec![]);
            }
            other => unreachable!("`{}` is handled above", other.name()),
        }
        name
    }

    fn comparison(&mut self, compare: Compare, refs: &[&str], name: &str) -> String {
        let base = format!("{name}.bool");
        match compare {
            Compare::Lt => self.emit("Less", refs, &base, vec![]),
            Compare::Le => self.emit("LessOrEqual", refs, &base, vec![]),
            Compare::Gt => self.emit("Greater", refs, &base, vec![]),
            Compare::Ge => self.emit("GreaterOrEqual", refs, &base, vec![]),
            Compare::Eq => self.emit("Equal", refs, &base, vec![]),
            Compare::Ne => {
                let equal = self.emit("Equal", refs, &format!("{name}.equal"), vec![]);
                self.emit("Not", &[&equal], &base, vec![])
            }
        }
    }

    /// A constant node: a scalar, or a filled tensor of a fixed shape, or
    /// one with batch rows (expanded at run time).
    fn constant(&mut self, value: f64, shape: Shape, id: NodeId) -> String {
        let scalar = self.scalar(value);
        match (shape.rows, shape.cols) {
            (Dim::Fixed(1), Dim::Fixed(1)) => scalar,
            _ => {
                let name = self.name_for(id, false);
                let dims = self.shape_tensor(shape, &name);
                self.node("Expand", &[&scalar, &dims], &name, vec![]);
                name
            }
        }
    }

    /// An int64 shape `[rows, cols]` for `Expand`, reading the batch size
    /// from an input when a dimension is the batch.
    fn shape_tensor(&mut self, shape: Shape, base: &str) -> String {
        let fixed = |d: Dim| match d {
            Dim::Fixed(n) => Some(i64::from(n)),
            Dim::Batch => None,
        };
        if let (Some(r), Some(c)) = (fixed(shape.rows), fixed(shape.cols)) {
            return self.ints(&format!("{base}.shape"), &[r, c]);
        }
        let batch = self.batch_rows(base);
        let parts: Vec<String> = [shape.rows, shape.cols]
            .iter()
            .enumerate()
            .map(|(k, &d)| match fixed(d) {
                Some(n) => self.ints(&format!("{base}.dim{k}"), &[n]),
                None => batch.clone(),
            })
            .collect();
        self.emit("Concat", &[&parts[0], &parts[1]], &format!("{base}.shape"), vec![int("axis", 0)])
    }

    /// The batch size as a 1-element int64 tensor.
    fn batch_rows(&mut self, base: &str) -> String {
        let source = self.batch_source.clone().unwrap_or_default();
        let shape = self.emit("Shape", &[&source], &format!("{base}.input_shape"), vec![]);
        let zero = self.ints(&format!("{base}.zero"), &[0]);
        let one = self.ints(&format!("{base}.one"), &[1]);
        self.emit("Slice", &[&shape, &zero, &one], &format!("{base}.rows"), vec![])
    }

    /// The batch size as a float scalar.
    fn batch_size(&mut self) -> String {
        let rows = self.batch_rows("batch_size");
        let float = self.emit("Cast", &[&rows], "batch_size.float", vec![int("to", data_type::FLOAT.into())]);
        let empty = self.ints("batch_size.scalar", &[]);
        self.emit("Reshape", &[&float, &empty], "batch_size", vec![])
    }

    /// Whether `parts` are a per-neuron activation: each a function of one
    /// column slice of the same value, the slices side by side covering it.
    /// Returns the value and, per part, its slice and width.
    fn per_neuron(&self, parts: &[NodeId]) -> Option<PerNeuron> {
        let mut whole = None;
        let mut slices = Vec::new();
        let mut next = 0u32;
        for &part in parts {
            let mut found = Vec::new();
            self.slices_under(part, &mut found);
            found.sort();
            found.dedup();
            let [slice] = found[..] else { return None };
            let node = self.graph.node(slice);
            let Op::SliceCols { start } = node.op else { return None };
            let source = node.args[0];
            if *whole.get_or_insert(source) != source || start != next || node.shape != self.graph.shape(part) {
                return None;
            }
            next += node.shape.width()?;
            slices.push((part, slice, node.shape.width()?));
        }
        let whole = whole?;
        (self.graph.shape(whole).width() == Some(next)).then_some(PerNeuron { whole, parts: slices })
    }

    fn slices_under(&self, id: NodeId, found: &mut Vec<NodeId>) {
        let node = self.graph.node(id);
        if matches!(node.op, Op::SliceCols { .. }) {
            found.push(id);
            return;
        }
        for &a in &node.args {
            self.slices_under(a, found);
        }
    }

    /// The structure of `id` with `slice` standing for the whole value: two
    /// parts with the same key apply the same activation.
    fn key(&self, id: NodeId, slice: NodeId) -> String {
        if id == slice {
            return "·".into();
        }
        let node = self.graph.node(id);
        if !self.depends_on(id, slice) {
            return format!("{id}");
        }
        let args: Vec<String> = node.args.iter().map(|&a| self.key(a, slice)).collect();
        format!("{:?}({})", node.op, args.join(","))
    }

    /// Each distinct activation applied to the whole value, then `Where`
    /// with a constant mask per activation, the last one as the default.
    fn masked(&mut self, split: PerNeuron, name: &str, subst: &Substitution) -> String {
        let width = split.parts.iter().map(|p| p.2).sum::<u32>() as usize;
        let whole = self.value_in(split.whole, subst);
        // Distinct activations in order of first appearance, with their columns.
        let mut groups: Vec<(String, NodeId, NodeId, Vec<bool>)> = Vec::new();
        let mut column = 0usize;
        for &(part, slice, n) in &split.parts {
            let key = self.key(part, slice);
            let at = match groups.iter().position(|g| g.0 == key) {
                Some(at) => at,
                None => {
                    groups.push((key, part, slice, vec![false; width]));
                    groups.len() - 1
                }
            };
            groups[at].3[column..column + n as usize].iter_mut().for_each(|m| *m = true);
            column += n as usize;
        }
        let applied: Vec<String> = groups
            .iter()
            .map(|(_, part, slice, _)| (*part, *slice))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|(part, slice)| self.value_in(part, &Some((slice, whole.clone()))))
            .collect();
        let mut result = applied.last().cloned().expect("at least one part");
        for (k, (_, _, _, mask)) in groups.iter().enumerate().rev().skip(1) {
            let mask_name = self.fresh(&format!("{name}.mask{k}"));
            self.initializers.push(TensorProto {
                dims: vec![1, width as i64],
                data_type: Some(data_type::BOOL),
                string_data: vec![],
                name: Some(mask_name.clone()),
                raw_data: Some(mask.iter().map(|&m| u8::from(m)).collect()),
            });
            let out = if k == 0 { name.to_string() } else { self.fresh(&format!("{name}.where{k}")) };
            self.node("Where", &[&mask_name, &applied[k], &result], &out, vec![]);
            result = out;
        }
        if groups.len() == 1 {
            self.node("Identity", &[&result], name, vec![]);
            return name.to_string();
        }
        result
    }
}

/// A per-neuron layer: the value `whole` and, per part, the part, its
/// column slice and width.
struct PerNeuron {
    whole: NodeId,
    parts: Vec<(NodeId, NodeId, u32)>,
}

fn to_f32(values: &[f64]) -> Vec<f32> {
    values.iter().map(|&v| v as f32).collect()
}

/// `1`, `0.5`, `-3` for constant names.
fn format_number(value: f32) -> String {
    format!("{value}")
}

fn float_tensor(name: &str, dims: Vec<i64>, values: &[f32]) -> TensorProto {
    TensorProto {
        dims,
        data_type: Some(data_type::FLOAT),
        string_data: vec![],
        name: Some(name.to_string()),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
    }
}

fn string_tensor(name: &str, values: &[String]) -> TensorProto {
    TensorProto {
        dims: vec![values.len() as i64],
        data_type: Some(data_type::STRING),
        string_data: values.iter().map(|v| v.as_bytes().to_vec()).collect(),
        name: Some(name.to_string()),
        raw_data: None,
    }
}

fn strings(name: &str, values: &[String]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        strings: values.iter().map(|v| v.as_bytes().to_vec()).collect(),
        r#type: Some(attribute_type::STRINGS),
        ..AttributeProto::default()
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(value),
        r#type: Some(attribute_type::INT),
        ..AttributeProto::default()
    }
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        ints: values.to_vec(),
        r#type: Some(attribute_type::INTS),
        ..AttributeProto::default()
    }
}

fn value_info(name: &str, elem_type: i32, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Batch => DimensionValue::DimParam(BATCH.into()),
                Dim::Fixed(n) => DimensionValue::DimValue(i64::from(*n)),
            }),
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto { elem_type: Some(elem_type), shape: Some(TensorShapeProto { dim }) }),
        }),
        doc_string: None,
    }
}
