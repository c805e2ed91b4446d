//! The `910b-sim` executor of the conformance runner: the graph optimized as for the 910B,
//! lowered to a GE graph, encoded to the bytes ATC would read and decoded again, and run in the
//! GE-graph simulator (custom ops on the CPU model of the AscendC API).

use crate::conformance::{freeze_shape_inputs, Outcome};
use kiln_ascend::ge::proto::ModelDef;
use kiln_ascend::sim::{custom_ops, run_with, Options};
use kiln_backend::Target;
use kiln_ir::{Graph, Tensor};
use prost::Message;

pub fn execute(g: &Graph, inputs: Vec<Tensor>) -> Outcome {
    let (g, inputs, _) = match freeze_shape_inputs(g, inputs) {
        Ok(x) => x,
        Err(e) => return Outcome::Failed(format!("fixing shape inputs: {e}")),
    };
    let (opt, _) = match crate::optimize(&g, Target::Ascend910B, std::time::Instant::now()) {
        Ok(x) => x,
        Err(e) if e.is_unsupported() => return Outcome::Unsupported(crate::error_chain(&e)),
        Err(e) => return Outcome::Failed(format!("optimizing: {}", crate::error_chain(&e))),
    };
    let bundle = match kiln_ascend::bundle::compile(&opt, &kiln_ascend::bundle::Options::default()) {
        Ok(b) => b,
        Err(e @ (kiln_ascend::lower::LowerError::Unsupported(_) | kiln_ascend::lower::LowerError::Dynamic(..))) => {
            return Outcome::Unsupported(e.to_string())
        }
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let model = match ModelDef::decode(bundle.model.encode_to_vec().as_slice()) {
        Ok(m) => m,
        Err(e) => return Outcome::Failed(format!("decoding the encoded graph: {e}")),
    };
    let custom = match custom_ops(&bundle) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    match run_with(&model, &inputs, Options { force_fp16: false, custom: custom.as_ref().map(|(c, _)| c), weights_dir: None }) {
        Ok(o) => Outcome::Ran(o),
        Err(e) => Outcome::Failed(format!("simulating: {e}")),
    }
}
