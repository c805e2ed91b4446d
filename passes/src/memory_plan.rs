//! Memory planning: every intermediate value gets a place in one arena.
//!
//! - Liveness: a value lives from the node that defines it to its last use (graph outputs to the
//!   end). Graph inputs and weights live outside the arena.
//! - Views (Reshape, Flatten, Squeeze, Unsqueeze, Identity) change no bytes: their output shares
//!   the input's buffer, which then lives as long as either.
//! - In place: an elementwise op whose input buffer dies at that op, with the output's byte size,
//!   writes its output over that input.
//! - Offsets: buffers are placed largest first at the lowest offset that overlaps no placed
//!   buffer alive at the same time ("greedy by size"); the report gives the arena size and the
//!   liveness lower bound (the largest sum of simultaneously live buffers).
//!
//! [`MemoryPlan::check`] verifies a plan independently: no two buffers alive at the same time
//! overlap in the arena.

use kiln_ir::{Graph, ValueId};
use std::collections::HashMap;

/// Buffer offsets and sizes are multiples of this many bytes.
pub const ALIGN: usize = 64;

/// One arena region and the values that live in it (a value and its views or in-place results).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buffer {
    pub values: Vec<ValueId>,
    pub bytes: usize,
    /// First and last node index (inclusive) at which the buffer is alive; `nodes.len()` means
    /// "until the graph returns".
    pub first: usize,
    pub last: usize,
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemoryPlan {
    pub buffers: Vec<Buffer>,
    /// Which buffer holds each planned value.
    pub value_buffer: HashMap<ValueId, usize>,
    pub arena_bytes: usize,
    pub lower_bound_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("value `{0}` has a symbolic shape; specialize the inputs (--input-shape) to plan memory")]
    Symbolic(String),
}

fn aligned(bytes: usize) -> usize {
    bytes.div_ceil(ALIGN) * ALIGN
}

/// Plans the arena for `g` (all intermediate shapes must be static).
pub fn plan_memory(g: &Graph) -> Result<MemoryPlan, PlanError> {
    let n = g.nodes.len();
    let mut last_use: HashMap<ValueId, usize> = HashMap::new();
    for (i, node) in g.nodes.iter().enumerate() {
        for v in node.inputs.iter().flatten() {
            last_use.insert(*v, i);
        }
    }
    for o in &g.outputs {
        last_use.insert(*o, n);
    }
    let mut plan = MemoryPlan::default();
    for (i, node) in g.nodes.iter().enumerate() {
        let first_in = node.inputs.first().copied().flatten();
        for (k, out) in node.outputs.iter().enumerate() {
            let Some(out) = *out else { continue };
            let ty = &g.value(out).ty;
            let numel = ty.shape.numel().ok_or_else(|| PlanError::Symbolic(g.value(out).name.clone()))?;
            let bytes = aligned(ty.dtype.element_bytes() * numel);
            let own_last = last_use.get(&out).copied().unwrap_or(i);
            // A view of a value outside the arena (input or weight) needs no arena space.
            if k == 0 && node.op.is_view() {
                if let Some(src) = first_in {
                    if let Some(b) = plan.value_buffer.get(&src).copied() {
                        let buf = &mut plan.buffers[b];
                        buf.values.push(out);
                        buf.last = buf.last.max(own_last);
                        plan.value_buffer.insert(out, b);
                    }
                    continue;
                }
            }
            if k == 0 && node.op.may_run_in_place() {
                // Element i of the output overwrites element i of the input: same element size
                // and count, so no element is overwritten before it is read.
                let reusable = node.inputs.iter().flatten().find_map(|v| {
                    let b = *plan.value_buffer.get(v)?;
                    let buf = &plan.buffers[b];
                    let vt = &g.value(*v).ty;
                    let same_layout = vt.dtype.bits() == ty.dtype.bits() && vt.shape.numel() == Some(numel);
                    let dies_here = buf.values.iter().all(|w| last_use.get(w).copied().unwrap_or(0) <= i);
                    (dies_here && same_layout && buf.bytes == bytes).then_some(b)
                });
                if let Some(b) = reusable {
                    let buf = &mut plan.buffers[b];
                    buf.values.push(out);
                    buf.last = own_last.max(i);
                    plan.value_buffer.insert(out, b);
                    continue;
                }
            }
            plan.value_buffer.insert(out, plan.buffers.len());
            plan.buffers.push(Buffer { values: vec![out], bytes, first: i, last: own_last.max(i), offset: 0 });
        }
    }
    // Lower bound: the peak of the live bytes over the schedule.
    let mut delta = vec![0i64; n + 2];
    for b in &plan.buffers {
        delta[b.first] += b.bytes as i64;
        delta[b.last + 1] -= b.bytes as i64;
    }
    let mut live = 0i64;
    for d in delta {
        live += d;
        plan.lower_bound_bytes = plan.lower_bound_bytes.max(live as usize);
    }
    // Greedy by size: largest buffers first, each at the lowest gap free during its lifetime.
    let mut order: Vec<usize> = (0..plan.buffers.len()).collect();
    order.sort_by_key(|&b| (std::cmp::Reverse(plan.buffers[b].bytes), plan.buffers[b].first));
    let mut placed: Vec<usize> = vec![];
    for b in order {
        let (first, last, bytes) = (plan.buffers[b].first, plan.buffers[b].last, plan.buffers[b].bytes);
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .map(|&p| &plan.buffers[p])
            .filter(|p| p.first <= last && first <= p.last)
            .map(|p| (p.offset, p.offset + p.bytes))
            .collect();
        busy.sort_unstable();
        let mut offset = 0;
        for (start, end) in busy {
            if start >= offset + bytes {
                break;
            }
            offset = offset.max(end);
        }
        plan.buffers[b].offset = offset;
        plan.arena_bytes = plan.arena_bytes.max(offset + bytes);
        placed.push(b);
    }
    Ok(plan)
}

impl MemoryPlan {
    /// Checks that no two buffers alive at the same time overlap and that every buffer lies in
    /// the arena; `Err` names the first conflict.
    pub fn check(&self) -> Result<(), String> {
        for (i, a) in self.buffers.iter().enumerate() {
            if a.offset % ALIGN != 0 || a.offset + a.bytes > self.arena_bytes {
                return Err(format!("buffer {i} at {}+{} is misaligned or outside the arena", a.offset, a.bytes));
            }
            for (j, b) in self.buffers.iter().enumerate().skip(i + 1) {
                let in_time = a.first <= b.last && b.first <= a.last;
                let in_space = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
                if in_time && in_space && a.bytes > 0 && b.bytes > 0 {
                    return Err(format!("buffers {i} and {j} are alive together and overlap"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::text::parse;

    fn plan(src: &str) -> (Graph, MemoryPlan) {
        let g = parse(src, &HashMap::new()).expect("parse");
        let p = plan_memory(&g).expect("plan");
        p.check().expect("valid plan");
        (g, p)
    }

    #[test]
    fn a_chain_reuses_buffers_and_views_share_them() {
        // x -> relu (in place impossible: x is an input) -> reshape (view) -> exp (in place) -> mul
        let (g, p) = plan(
            "graph \"g\" (%x: f32[64]) {\n  %s = const i64[2] [8, 8]\n  %a = Relu[r](%x) : f32[64]\n  %b = Reshape[v](%a, %s) {allowzero=false} : f32[8,8]\n  %c = Exp[e](%b) : f32[8,8]\n  %d = Mul[m](%c, %c) : f32[8,8]\n  return %d\n}\n",
        );
        let name = |v: &ValueId| g.value(*v).name.clone();
        assert_eq!(p.buffers.len(), 1, "{:?}", p.buffers.iter().map(|b| b.values.iter().map(name).collect::<Vec<_>>()).collect::<Vec<_>>());
        assert_eq!(p.arena_bytes, 256);
        assert_eq!(p.lower_bound_bytes, 256);
    }

    #[test]
    fn values_alive_together_get_disjoint_space() {
        let (_, p) = plan(
            "graph \"g\" (%x: f32[16]) {\n  %a = Exp[e1](%x) : f32[16]\n  %b = Exp[e2](%x) : f32[16]\n  %c = Add[add](%a, %b) : f32[16]\n  return %c\n}\n",
        );
        // a and b are both alive at `add`; c reuses one of them in place.
        assert_eq!(p.buffers.len(), 2);
        assert_eq!(p.arena_bytes, 128);
        assert_eq!(p.lower_bound_bytes, 128);
    }

    #[test]
    fn a_narrower_output_does_not_overwrite_its_input_in_place() {
        // bool (1 byte) from f32 (4 bytes): both round up to one 64-byte block, but writing in
        // place would clobber input elements not yet read by a parallel kernel.
        let (_, p) = plan("graph \"g\" (%x: f32[16]) {\n  %a = Exp[e](%x) : f32[16]\n  %b = IsNaN[n](%a) : bool[16]\n  return %b\n}\n");
        assert_eq!(p.buffers.len(), 2);
    }

    #[test]
    fn symbolic_shapes_are_refused() {
        let g = parse("graph \"g\" (%x: f32[N]) {\n  %a = Exp[e](%x) : f32[N]\n  return %a\n}\n", &HashMap::new()).expect("parse");
        assert_eq!(plan_memory(&g), Err(PlanError::Symbolic("a".into())));
    }
}
