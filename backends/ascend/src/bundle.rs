//! What `kiln compile MODEL --target 910b` writes:
//!
//! - `graph.air`: the GE graph, one serialized `ge.proto.ModelDef` (ATC `--framework=1`);
//! - `graph.txt`: the same graph, readable (ops, edges, dtypes, formats, attributes);
//! - `ops/`: one AscendC custom-operator project per fused elementwise program no CANN
//!   built-in computes in one op (`ops/<op>/op_host`, `ops/<op>/op_kernel`), and
//!   `ops/kiln_ops.json`, their description for msopgen;
//! - `manifest.json`: inputs, outputs, how each kiln op maps to CANN ops (built-in or
//!   AscendC), and the custom ops with their tiling;
//! - `build.sh`: builds and installs the custom op package (msopgen), then runs ATC on the
//!   graph with the precision mode `--precision` asks for.

use crate::ascendc::Kernel;
use crate::ge::attr::Attr;
use crate::ge::dtype::from_proto;
use crate::ge::proto::{attr_def::Value, ModelDef, OpDef, TensorDef, TensorDescriptor};
use crate::lower::{lower, LowerError, Lowered, Mapping};
use kiln_backend::{write_files, OutFile};
use kiln_ir::{DType, Graph};
use prost::Message;
use std::fmt::Write;
use std::path::Path;

/// The SoC ATC compiles for: the 910B2 (24 cube and 48 vector cores).
pub const SOC_VERSION: &str = "Ascend910B2";

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--precision`: None keeps the model's dtypes (`must_keep_origin_dtype`), F16 lets ATC
    /// compute in fp16 (`force_fp16`), BF16 is kept as converted.
    pub precision: Option<DType>,
    /// `--external-weights`: the weights as FileConstant ops reading `weights/*.bin` even when
    /// graph.air could hold them (they always are from [`EXTERNAL_AUTO_BYTES`] on).
    pub external_weights: bool,
}

/// Constants of at least this many bytes become FileConstant ops when the weights are
/// external; smaller ones (shapes, axes, scalars, which ATC folds) stay inline.
pub const EXTERNAL_MIN_BYTES: usize = 4096;

/// The inline constant bytes from which the weights are external whatever the options: GE's
/// parser reads a ModelDef of at most INT32_MAX bytes (protobuf's 2 GiB limit), and this leaves
/// room for the graph itself.
pub const EXTERNAL_AUTO_BYTES: usize = 1 << 30;

#[derive(Clone, Debug)]
pub struct Bundle {
    pub model: ModelDef,
    pub mapping: Mapping,
    /// The AscendC custom operators the graph references (`ops/`).
    pub kernels: Vec<Kernel>,
    /// The weights the graph's FileConstant ops read: path in the bundle and bytes.
    pub weights: Vec<(String, Vec<u8>)>,
    pub precision: Option<DType>,
    /// The model's inputs and outputs (name, dtype, shape) in order, for the manifest.
    pub inputs: Vec<serde_json::Value>,
    pub outputs: Vec<serde_json::Value>,
}

/// Name, dtype and shape of graph values (static: the lowering has checked).
fn io(g: &Graph, ids: &[kiln_ir::ValueId]) -> Vec<serde_json::Value> {
    ids.iter()
        .map(|&v| {
            let v = g.value(v);
            serde_json::json!({"name": v.name, "dtype": v.ty.dtype.name(), "shape": v.ty.shape.as_fixed().unwrap_or_default()})
        })
        .collect()
}

/// The bundle of an optimized graph with static shapes.
pub fn compile(g: &Graph, opts: &Options) -> Result<Bundle, LowerError> {
    let Lowered { mut model, mapping, kernels } = lower(g, opts.precision == Some(DType::F16))?;
    let inline: usize = model.graph.iter().flat_map(|g| &g.op).filter_map(const_value).map(|t| t.data.len()).sum();
    let weights = if opts.external_weights || inline >= EXTERNAL_AUTO_BYTES { externalize(&mut model) } else { vec![] };
    crate::ge::conventions::check(&model).map_err(|e| LowerError::Internal {
        node: "(graph)".into(),
        msg: format!("the emitted graph breaks GE's conventions: {}", e.join("; ")),
    })?;
    Ok(Bundle { model, mapping, kernels, weights, precision: opts.precision, inputs: io(g, &g.inputs), outputs: io(g, &g.outputs) })
}

/// A Const op's value tensor.
fn const_value(op: &OpDef) -> Option<&TensorDef> {
    match op.attr.get("value").and_then(|a| a.value.as_ref()) {
        Some(Value::T(t)) if op.r#type == "Const" => Some(t),
        _ => None,
    }
}

/// Turns each Const of at least [`EXTERNAL_MIN_BYTES`] into a FileConstant (GE's external
/// weight: `file_path`, `file_id`, `shape`, `dtype`) reading `weights/NNNN_<name>.bin`, a path
/// relative to the bundle, where build.sh runs ATC; returns the files.
fn externalize(m: &mut ModelDef) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![];
    for op in m.graph.iter_mut().flat_map(|g| g.op.iter_mut()) {
        let Some(t) = const_value(op).filter(|t| t.data.len() >= EXTERNAL_MIN_BYTES) else { continue };
        let Some(desc) = &t.desc else { continue };
        let Some(cpp) = from_proto(desc.dtype).and_then(crate::ge::dtype::ge_type).map(|g| g.cpp) else { continue };
        let dims = desc.shape.as_ref().map(|s| s.dim.clone()).unwrap_or_default();
        let clean: String = op.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '.' { c } else { '_' }).collect();
        let path = format!("weights/{:04}_{clean}.bin", files.len());
        let bytes = t.data.clone();
        op.attr.remove("value");
        op.attr.insert("file_path".into(), Attr::str(&path).encode());
        op.attr.insert("file_id".into(), Attr::str("").encode());
        op.attr.insert("shape".into(), Attr::ListInt(dims).encode());
        op.attr.insert("dtype".into(), Attr::Type(cpp).encode());
        op.r#type = "FileConstant".into();
        files.push((path, bytes));
    }
    files
}

impl Bundle {
    pub fn air(&self) -> Vec<u8> {
        self.model.encode_to_vec()
    }

    /// ATC's `--precision_mode`.
    pub fn precision_mode(&self) -> &'static str {
        match self.precision {
            Some(DType::F16) => "force_fp16",
            _ => "must_keep_origin_dtype",
        }
    }

    pub fn text(&self) -> String {
        text(&self.model)
    }

    pub fn manifest(&self) -> serde_json::Value {
        let ops: Vec<serde_json::Value> = self
            .mapping
            .ops
            .iter()
            .map(|(k, (cann, n))| serde_json::json!({"kiln": k, "nodes": n, "cann": cann, "kind": self.mapping.kind(cann)}))
            .collect();
        let custom: Vec<serde_json::Value> = self
            .kernels
            .iter()
            .map(|k| {
                let inputs: Vec<serde_json::Value> = k
                    .program
                    .inputs
                    .iter()
                    .zip(&k.in_dims)
                    .map(|(i, d)| serde_json::json!({"dtype": i.dtype.name(), "shape": d, "scalar": i.scalar}))
                    .collect();
                serde_json::json!({
                    "op_type": k.op_type,
                    "project": format!("ops/{}", k.snake),
                    "kernel": format!("ops/{}/op_kernel/{}.cpp", k.snake, k.snake),
                    "node": k.node,
                    "inputs": inputs,
                    "output": {"dtype": k.program.out.name(), "shape": k.out_dims},
                    "tiling": match &k.reduce {
                        Some(r) => serde_json::json!(r),
                        None => serde_json::json!(k.tiling),
                    },
                })
            })
            .collect();
        serde_json::json!({
            "format": "kiln 910b bundle 1",
            "soc_version": SOC_VERSION,
            "precision_mode": self.precision_mode(),
            "graph": "graph.air",
            "external_weights": {"files": self.weights.len(), "bytes": self.weights.iter().map(|(_, b)| b.len()).sum::<usize>()},
            "inputs": self.inputs,
            "outputs": self.outputs,
            "ops": ops,
            "custom_ops": custom,
        })
    }

    pub fn build_script(&self) -> String {
        format!(
            r#"#!/usr/bin/env bash
# Builds the offline model (model.om) from graph.air with CANN's ATC. Needs a CANN toolkit:
# ASCEND_HOME defaults to /usr/local/Ascend/ascend-toolkit/latest; SOC_VERSION to the SoC the
# bundle was compiled for ({soc}; `npu-smi info` names yours).
set -euo pipefail
cd "$(dirname "$0")"
ASCEND_HOME="${{ASCEND_HOME:-/usr/local/Ascend/ascend-toolkit/latest}}"
if [ -f "$ASCEND_HOME/set_env.sh" ]; then
  # shellcheck disable=SC1091
  source "$ASCEND_HOME/set_env.sh"
fi
command -v atc >/dev/null || {{ echo "atc not found: install CANN and source its set_env.sh" >&2; exit 1; }}
{ops}atc --framework=1 --model=graph.air --soc_version="${{SOC_VERSION:-{soc}}}" --output=model \
    --precision_mode={mode}
echo "model.om written: run it with AscendCL (aclmdlLoadFromFile, aclmdlExecute)"
"#,
            soc = SOC_VERSION,
            mode = self.precision_mode(),
            ops = self.ops_script(),
        )
    }

    /// The part of build.sh that builds and installs the custom op package.
    fn ops_script(&self) -> String {
        if self.kernels.is_empty() {
            return "# Every op of graph.air is a CANN built-in: there is no custom operator package to build.\n".into();
        }
        let types: Vec<&str> = self.kernels.iter().map(|k| k.op_type.as_str()).collect();
        format!(
            r#"# graph.air references {n} AscendC custom op(s) ({types}): generate msopgen's project
# from ops/kiln_ops.json, put kiln's sources in place of its stubs, build the package and
# install it (into $ASCEND_OPP_PATH/vendors) before ATC reads the graph.
command -v msopgen >/dev/null || {{ echo "msopgen not found: install CANN and source its set_env.sh" >&2; exit 1; }}
rm -rf build/kiln_ops
msopgen gen -i ops/kiln_ops.json -c "ai_core-${{SOC_VERSION:-{soc}}}" -lan cpp -out build/kiln_ops
find build/kiln_ops/op_host build/kiln_ops/op_kernel -maxdepth 1 -type f \( -name '*.cpp' -o -name '*.h' \) -delete
for op in ops/*/; do
  cp "$op"op_host/* build/kiln_ops/op_host/
  cp "$op"op_kernel/* build/kiln_ops/op_kernel/
done
(cd build/kiln_ops && bash build.sh)
./build/kiln_ops/build_out/custom_opp_*.run
"#,
            n = self.kernels.len(),
            types = types.join(", "),
            soc = SOC_VERSION,
        )
    }

    /// msopgen's description of the custom ops.
    pub fn ops_json(&self) -> serde_json::Value {
        serde_json::Value::Array(self.kernels.iter().map(Kernel::op_json).collect())
    }

    /// `ops/`: the custom op projects and msopgen's description (none when the graph references
    /// no custom op).
    pub fn ops_files(&self) -> std::io::Result<Vec<OutFile>> {
        let mut files = vec![];
        if !self.kernels.is_empty() {
            for k in &self.kernels {
                for (path, text) in k.files() {
                    files.push(OutFile { path: format!("ops/{}/{path}", k.snake), bytes: text.into_bytes(), executable: false });
                }
            }
            let j = serde_json::to_string_pretty(&self.ops_json()).map_err(std::io::Error::other)?;
            files.push(OutFile { path: "ops/kiln_ops.json".into(), bytes: (j + "\n").into_bytes(), executable: false });
        }
        Ok(files)
    }

    /// Writes `ops/` into `dir`.
    pub fn write_ops(&self, dir: &Path) -> std::io::Result<()> {
        write_files(&self.ops_files()?, dir).map(|_| ())
    }

    /// Every file of the bundle, paths relative to its directory.
    pub fn files(&self) -> std::io::Result<Vec<OutFile>> {
        let file = |path: &str, bytes: Vec<u8>| OutFile { path: path.into(), bytes, executable: false };
        let mut files = vec![file("graph.air", self.air())];
        files.extend(self.weights.iter().map(|(path, bytes)| file(path, bytes.clone())));
        files.push(file("graph.txt", self.text().into_bytes()));
        let m = serde_json::to_string_pretty(&self.manifest()).map_err(std::io::Error::other)?;
        files.push(file("manifest.json", (m + "\n").into_bytes()));
        files.extend(self.ops_files()?);
        files.push(OutFile { path: "build.sh".into(), bytes: self.build_script().into_bytes(), executable: true });
        Ok(files)
    }

    /// Writes the bundle's files into `dir` (created if absent).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        write_files(&self.files()?, dir).map(|_| ())
    }
}

fn desc(d: &TensorDescriptor) -> String {
    let dt = from_proto(d.dtype).map(|t| t.name().to_string()).unwrap_or_else(|| format!("dtype#{}", d.dtype));
    let dims = d.shape.as_ref().map(|s| s.dim.iter().map(i64::to_string).collect::<Vec<_>>().join(",")).unwrap_or_default();
    let origin = match (d.attr.get("origin_format").and_then(Attr::decode), d.attr.get("origin_shape").and_then(Attr::decode)) {
        (Some(Attr::Str(f)), Some(Attr::ListInt(s))) if f != d.layout => {
            format!(" (origin {f}[{}])", s.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
        }
        _ => String::new(),
    };
    format!("{dt}[{dims}] {}{origin}", d.layout)
}

fn attr_text(a: &Attr) -> String {
    match a {
        Attr::Int(i) => i.to_string(),
        Attr::Float(f) => format!("{f:?}"),
        Attr::Bool(b) => b.to_string(),
        Attr::Str(s) => format!("{s:?}"),
        Attr::Type(t) => format!("type#{t}"),
        Attr::ListInt(v) => format!("{v:?}"),
        Attr::ListFloat(v) => format!("{v:?}"),
        Attr::ListStr(v) => format!("{v:?}"),
        Attr::ListListInt(v) => format!("{v:?}"),
        Attr::Tensor(t) => format!("tensor {} ({} bytes)", t.desc.as_ref().map(desc).unwrap_or_default(), t.data.len()),
    }
}

/// A readable dump: one op per line with its inputs, then its output descriptors and its
/// attributes (the name-key bookkeeping attributes left out).
pub fn text(m: &ModelDef) -> String {
    let mut s = String::new();
    for g in &m.graph {
        let _ = writeln!(s, "graph {:?} inputs [{}] outputs [{}]", g.name, g.input.join(", "), g.output.join(", "));
        for op in &g.op {
            let ins: Vec<String> = op
                .input
                .iter()
                .zip(&op.input_desc)
                .map(|(e, d)| format!("{}={}", d.name, if e.is_empty() { "<unfed>" } else { e }))
                .collect();
            let _ = writeln!(s, "  {} = {}({})", op.name, op.r#type, ins.join(", "));
            for d in &op.output_desc {
                let _ = writeln!(s, "      -> {}: {}", d.name, desc(d));
            }
            for (k, v) in op.attr.iter().filter(|(k, _)| !k.starts_with("_input_name") && !k.starts_with("_output_name")) {
                let v = Attr::decode(v).map(|a| attr_text(&a)).unwrap_or_else(|| "<undecodable>".into());
                let _ = writeln!(s, "      {k} = {v}");
            }
        }
    }
    s
}
