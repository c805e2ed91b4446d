//! Builds a GE graph op by op, following the conventions GE's deserializer relies on
//! (../shared/ASCEND.md §1.5, §1.6):
//!
//! - op names are unique; edges are `"src:index"` strings, `""` for an unfed optional input;
//! - one input descriptor per IR input (unfed optionals included, `DT_UNDEFINED` with
//!   `_is_unfed_optional`), named by the IR port; one output descriptor per output;
//! - every op carries `_input_name_key/_value` and `_output_name_key/_value`;
//! - Data ops have `index`, an input and an output descriptor; Const ops have `value`;
//!   NetOutput takes the graph outputs as `input0, input1, ...`;
//! - every descriptor has a layout (`ND` unless a format is chosen) and its origin format and
//!   shape.

use super::attr::Attr;
use super::dtype::ge_type;
use super::proto::{AttrDef, GraphDef, ModelDef, OpDef, ShapeDef, TensorDef, TensorDescriptor};
use kiln_ir::DType;
use std::collections::{BTreeMap, HashMap, HashSet};

/// An op's output: `node:index`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Port {
    pub node: String,
    pub index: usize,
}

impl Port {
    pub fn edge(&self) -> String {
        format!("{}:{}", self.node, self.index)
    }
}

/// A tensor as GE sees it: dtype, stored shape and format, and the logical (origin) format
/// and shape it stands for.
#[derive(Clone, Debug, PartialEq)]
pub struct Desc {
    pub dtype: DType,
    pub dims: Vec<i64>,
    pub format: &'static str,
    pub origin_format: &'static str,
    pub origin_dims: Vec<i64>,
}

impl Desc {
    /// A plain row-major tensor (format `ND`).
    pub fn nd(dtype: DType, dims: &[usize]) -> Desc {
        let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        Desc { dtype, dims: dims.clone(), format: "ND", origin_format: "ND", origin_dims: dims }
    }

    /// This tensor tagged with a logical format (`NCHW` for a convolution's ports).
    /// The stored dims as sizes.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().map(|&d| d as usize).collect()
    }

    pub fn with_format(mut self, format: &'static str) -> Desc {
        self.format = format;
        self.origin_format = format;
        self
    }

    fn encode(&self, name: &str) -> Result<TensorDescriptor, String> {
        let g = ge_type(self.dtype).ok_or_else(|| format!("GE has no dtype for {}", self.dtype))?;
        let mut attr = BTreeMap::new();
        attr.insert("origin_format".to_string(), Attr::str(self.origin_format).encode());
        attr.insert("origin_shape".to_string(), Attr::ListInt(self.origin_dims.clone()).encode());
        attr.insert("origin_shape_initialized".to_string(), Attr::Bool(true).encode());
        Ok(TensorDescriptor {
            name: name.to_string(),
            dtype: g.proto,
            shape: Some(ShapeDef { dim: self.dims.clone() }),
            layout: self.format.to_string(),
            attr,
            device_type: String::new(),
        })
    }
}

/// One input of an op: its IR port name and its source (None: an unfed optional input).
pub type Input<'a> = (&'a str, Option<Port>);

#[derive(Debug, Default)]
pub struct Builder {
    ops: Vec<OpDef>,
    names: HashSet<String>,
    descs: HashMap<Port, Desc>,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

/// A GE op name from a kiln name: characters GE tools mishandle become `_`.
fn clean(name: &str) -> String {
    let s: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || "_./-".contains(c) { c } else { '_' }).collect();
    if s.is_empty() {
        "op".into()
    } else {
        s
    }
}

fn name_keys(attr: &mut BTreeMap<String, AttrDef>, which: &str, names: Vec<String>) {
    let n = names.len() as i64;
    attr.insert(format!("_{which}_name_key"), Attr::ListStr(names).encode());
    attr.insert(format!("_{which}_name_value"), Attr::ListInt((0..n).collect()).encode());
}

impl Builder {
    /// A name not yet used in the graph, made from `name`.
    fn unique(&mut self, name: &str) -> String {
        let base = clean(name);
        let mut n = base.clone();
        let mut k = 1;
        while self.names.contains(&n) {
            n = format!("{base}_{k}");
            k += 1;
        }
        self.names.insert(n.clone());
        n
    }

    /// The descriptor of an op output.
    pub fn desc(&self, p: &Port) -> Option<&Desc> {
        self.descs.get(p)
    }

    /// A port that stands for an output no op makes (of a node kiln could not lower), so that
    /// the nodes after it can still be lowered and checked; a graph with one is not finished.
    pub fn stand_in(&mut self, node: &str, index: usize, d: Desc) -> Port {
        let p = Port { node: node.to_string(), index };
        self.descs.insert(p.clone(), d);
        p
    }

    /// Graph input `index`.
    pub fn data(&mut self, name: &str, index: usize, d: Desc) -> Result<Port, String> {
        let name = self.unique(name);
        let mut x = d.encode("x")?;
        x.device_type = "NPU".into();
        let mut y = d.encode("y")?;
        y.device_type = "NPU".into();
        let mut attr = BTreeMap::new();
        attr.insert("index".to_string(), Attr::Int(index as i64).encode());
        name_keys(&mut attr, "input", vec!["x".into()]);
        name_keys(&mut attr, "output", vec!["y".into()]);
        self.ops.push(OpDef { name: name.clone(), r#type: "Data".into(), input: vec![], attr, input_desc: vec![x], output_desc: vec![y] });
        let p = Port { node: name, index: 0 };
        self.inputs.push(p.edge());
        self.descs.insert(p.clone(), d);
        Ok(p)
    }

    /// A constant holding `bytes` (little-endian elements of `d`, row-major).
    pub fn constant(&mut self, name: &str, d: Desc, bytes: Vec<u8>) -> Result<Port, String> {
        let name = self.unique(name);
        let y = d.encode("y")?;
        let mut attr = BTreeMap::new();
        attr.insert("value".to_string(), Attr::Tensor(TensorDef { desc: Some(y.clone()), data: bytes }).encode());
        name_keys(&mut attr, "input", vec![]);
        name_keys(&mut attr, "output", vec!["y".into()]);
        self.ops.push(OpDef { name: name.clone(), r#type: "Const".into(), input: vec![], attr, input_desc: vec![], output_desc: vec![y] });
        let p = Port { node: name, index: 0 };
        self.descs.insert(p.clone(), d);
        Ok(p)
    }

    /// An op of type `ty`: its inputs in IR order, its outputs (IR port name and descriptor),
    /// and every attribute of its prototype.
    pub fn op(
        &mut self,
        name: &str,
        ty: &str,
        inputs: &[Input],
        outputs: Vec<(&str, Desc)>,
        attrs: Vec<(&str, Attr)>,
    ) -> Result<Vec<Port>, String> {
        if ty != "NetOutput" && !ty.starts_with(crate::ascendc::OP_TYPE_PREFIX) {
            let ins: Vec<&str> = inputs.iter().map(|(p, _)| *p).collect();
            let outs: Vec<&str> = outputs.iter().map(|(p, _)| *p).collect();
            let names: Vec<&str> = attrs.iter().map(|(a, _)| *a).collect();
            super::prototypes::check(ty, &ins, &outs, &names).map_err(|e| format!("op `{name}`: {e}"))?;
        }
        let name = self.unique(name);
        let mut input = vec![];
        let mut input_desc = vec![];
        for (port, src) in inputs {
            match src {
                Some(s) => {
                    let d = self.descs.get(s).ok_or_else(|| format!("op `{name}` reads `{}`, which no op has made", s.edge()))?;
                    input.push(s.edge());
                    input_desc.push(d.encode(port)?);
                }
                None => {
                    input.push(String::new());
                    let mut attr = BTreeMap::new();
                    attr.insert("_is_unfed_optional".to_string(), Attr::Int(1).encode());
                    input_desc.push(TensorDescriptor {
                        name: port.to_string(),
                        dtype: 0,
                        layout: "ND".into(),
                        attr,
                        ..TensorDescriptor::default()
                    });
                }
            }
        }
        let mut attr: BTreeMap<String, AttrDef> = attrs.into_iter().map(|(k, v)| (k.to_string(), v.encode())).collect();
        name_keys(&mut attr, "input", inputs.iter().map(|(p, _)| p.to_string()).collect());
        name_keys(&mut attr, "output", outputs.iter().map(|(p, _)| p.to_string()).collect());
        let output_desc = outputs.iter().map(|(p, d)| d.encode(p)).collect::<Result<Vec<_>, _>>()?;
        let ports: Vec<Port> = (0..outputs.len()).map(|index| Port { node: name.clone(), index }).collect();
        for (p, (_, d)) in ports.iter().zip(outputs) {
            self.descs.insert(p.clone(), d);
        }
        self.ops.push(OpDef { name, r#type: ty.to_string(), input, attr, input_desc, output_desc });
        Ok(ports)
    }

    /// The graph outputs, in order, and the model. Constants nothing reads (a shape input the
    /// lowering folded into an attribute, a scalar a composition did not need) are dropped.
    pub fn finish(mut self, model: &str, outputs: &[Port]) -> Result<ModelDef, String> {
        let read: std::collections::HashSet<String> = self
            .ops
            .iter()
            .flat_map(|o| o.input.iter())
            .chain(outputs.iter().map(Port::edge).collect::<Vec<_>>().iter())
            .filter_map(|e| e.rsplit_once(':').map(|(n, _)| n.to_string()))
            .collect();
        self.ops.retain(|o| o.r#type != "Const" || read.contains(&o.name));
        let inputs: Vec<(String, Option<Port>)> = outputs.iter().enumerate().map(|(i, p)| (format!("input{i}"), Some(p.clone()))).collect();
        let refs: Vec<Input> = inputs.iter().map(|(n, p)| (n.as_str(), p.clone())).collect();
        self.op("NetOutput", "NetOutput", &refs, vec![], vec![])?;
        self.outputs = outputs.iter().map(Port::edge).collect();
        let graph = GraphDef { name: clean(model), input: self.inputs, output: self.outputs, op: self.ops, attr: BTreeMap::new() };
        Ok(ModelDef { name: clean(model), version: 0, custom_version: String::new(), graph: vec![graph], attr: BTreeMap::new() })
    }
}
