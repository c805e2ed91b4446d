//! The Ascend 910B target: the rules and the cost model the optimizer extracts under
//! ([`rules`], [`cost`]), GE graph emission ([`lower`]: the op table and its families; [`ge`]:
//! the graph, its prototypes and conventions) and the bundle that `kiln compile --target 910b`
//! writes ([`bundle`]), with AscendC kernels for the fused programs no built-in computes in one
//! op ([`ascendc`]). [`sim`] executes a bundle by the documented semantics of each CANN op, the
//! check that stands in for the NPU here.

pub mod ascendc;
pub mod bundle;
pub mod cost;
pub mod ge;
pub mod lower;
pub mod rules;
pub mod sim;

pub use cost::AscendCost;

use kiln_backend::{Backend, BackendError, EmitOptions, Emitted, OpSupport, Output, SupportReport, Target, Unsupported};
use kiln_ir::{DType, Graph, Op, TensorType};
use kiln_passes::eqsat::roofline::dtypes_within;
use kiln_passes::eqsat::Rule;

/// The 910B as a kiln target.
#[derive(Debug, Default)]
pub struct Ascend {
    cost: AscendCost,
}

/// Dtypes neither the cube nor the vector units compute in: f64 and float8/float4 (not among
/// the 910B's Mmad dtypes).
fn no_math_in(d: DType) -> bool {
    matches!(d, DType::F64 | DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ | DType::F8E8M0 | DType::F4E2M1)
}

impl Backend for Ascend {
    fn target(&self) -> Target {
        Target::Ascend910B
    }

    fn op_support(&self, op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> Result<(), String> {
        if op.is_control_flow() {
            return Err(format!("{} (control flow) is not mapped to GE's control-flow ops yet", op.kind_name()));
        }
        if let Op::Trap { message, .. } = op {
            return Err(message.clone());
        }
        if let Op::MatMulQ8 {} | Op::MatMulQ4 { .. } = op {
            let k = ins.get(1).copied().flatten().and_then(|w| w.shape.0.first()).and_then(|d| d.known());
            let group = if let Op::MatMulQ4 { group_size } = op { Some(*group_size) } else { None };
            let x = ins.first().copied().flatten().map_or(DType::F32, |t| t.dtype);
            return match lower::quantized_products::refusal(x, k, group) {
                Some(why) => Err(why),
                None => Ok(()),
            };
        }
        if matches!(op, Op::LSTM { dynamic_quant: true, .. }) {
            return Err(
                "an LSTM whose products quantize their inputs per step (onnxruntime's DynamicQuantizeLSTM) is not mapped yet".into()
            );
        }
        // Cast converts to and from f64 on the AI CPU (CANN registers an AI CPU Cast kernel
        // with DT_DOUBLE); every other op would compute in it.
        let converts = matches!(op, Op::Cast { .. } | Op::CastLike { .. });
        match dtypes_within(op, ins, outs).into_iter().find(|&d| no_math_in(d) && !(converts && d == DType::F64)) {
            Some(d) => Err(format!("{d} math: the 910B's cube and vector units do not compute in {d}")),
            None => Ok(()),
        }
    }

    fn rules(&self) -> Vec<Rule> {
        rules::rules()
    }

    fn op_cost(&self, op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> f64 {
        self.cost.cost(op, ins, outs)
    }

    fn support(&self, g: &Graph) -> Result<SupportReport, BackendError> {
        let (mapping, missing) = lower::support(g).map_err(|e| BackendError::Other(Box::new(e)))?;
        let ops = mapping
            .ops
            .iter()
            .map(|(op, (cann, n))| OpSupport {
                op: op.clone(),
                count: *n,
                status: mapping.kind(cann).to_string(),
                lowered_to: cann.clone(),
                generated: cann.iter().filter(|t| mapping.custom.contains(*t)).cloned().collect(),
            })
            .collect();
        let unsupported = missing.into_iter().map(|u| Unsupported { node: u.node, op: u.op, reason: u.reason }).collect();
        Ok(SupportReport { ops, unsupported })
    }

    fn emit(&self, g: &Graph, opts: &EmitOptions) -> Result<Emitted, BackendError> {
        let b = bundle::compile(g, &bundle::Options { precision: opts.precision, external_weights: opts.external_weights }).map_err(
            |e| match e {
                lower::LowerError::Unsupported(_) | lower::LowerError::Dynamic(..) => BackendError::Unsupported(Box::new(e)),
                lower::LowerError::Internal { .. } => BackendError::Other(Box::new(e)),
            },
        )?;
        let ops = b.model.graph.first().map_or(0, |g| g.op.len());
        let custom = match b.kernels.len() {
            0 => "all CANN built-ins".to_string(),
            k => format!("{k} AscendC custom op(s) in ops/, the rest CANN built-ins"),
        };
        let weights = match b.weights.len() {
            0 => String::new(),
            n => format!(", {n} weight files in weights/ ({} bytes)", b.weights.iter().map(|(_, w)| w.len()).sum::<usize>()),
        };
        let summary =
            format!("graph.air: {} bytes, {ops} GE ops, {custom}{weights}; ATC precision_mode {}", b.air().len(), b.precision_mode());
        let files = b.files().map_err(|e| BackendError::Other(Box::new(e)))?;
        Ok(Emitted { output: Output::Files(files), summary, notes: vec![] })
    }
}
