//! The emission layer the kernel families build on: the lowering state of one graph ([`Cx`]:
//! value locations, weights, the launch sequence), an inkwell helper layer ([`llvm`]), scalar
//! math ([`scalar`]) and minifloat conversions ([`minifloat`]).

pub mod llvm;
pub mod minifloat;
pub mod scalar;

use inkwell::context::Context;
use kiln_artifact::artifact::{Arg, ElemType, Loc};
use kiln_ir::{DType, Graph, Node, Tensor, ValueId};
use kiln_passes::MemoryPlan;
use llvm::{Em, R};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodegenError {
    /// Not supported on this target yet (the message names what).
    #[error("unsupported on the CUDA target: {0}")]
    Unsupported(String),
    #[error("node `{node}` ({op}): {source}")]
    Node {
        node: String,
        op: &'static str,
        #[source]
        source: Box<CodegenError>,
    },
    #[error("internal error in the CUDA backend: {0}")]
    Internal(String),
    #[error("LLVM: {0}")]
    Llvm(String),
}

impl CodegenError {
    /// Whether the target lacks a kernel for something (rather than the compiler failing).
    pub fn is_unsupported(&self) -> bool {
        match self {
            CodegenError::Unsupported(_) => true,
            CodegenError::Node { source, .. } => source.is_unsupported(),
            _ => false,
        }
    }
}

impl From<inkwell::builder::BuilderError> for CodegenError {
    fn from(e: inkwell::builder::BuilderError) -> Self {
        CodegenError::Llvm(e.to_string())
    }
}

pub fn unsupported<T>(what: impl Into<String>) -> R<T> {
    Err(CodegenError::Unsupported(what.into()))
}

/// A kernel parameter: a value of the graph or a constant tensor that the kernel needs beside
/// the node's inputs (a fused body's non-scalar constant).
#[derive(Clone, Debug)]
pub enum Param {
    Value(ValueId),
    Const(Arc<Tensor>),
}

/// The static type of a tensor a kernel reads or writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Ty {
    pub dtype: DType,
    pub dims: Vec<usize>,
}

impl Ty {
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }
}

/// One planned launch.
#[derive(Clone, Debug, PartialEq)]
pub struct LaunchSpec {
    pub kernel: String,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_bytes: u32,
    pub args: Vec<Arg>,
}

/// What lowering produced: the module (as PTX later), the launches, the weights image.
#[derive(Debug)]
pub struct Lowered {
    pub launches: Vec<LaunchSpec>,
    /// (kernel name, node name, op kind, first output value)
    pub kernels: Vec<(String, String, &'static str, Option<ValueId>)>,
    pub weights: Vec<u8>,
    pub weight_table: Vec<(String, DType, Vec<usize>, u64)>,
    pub locs: HashMap<ValueId, Loc>,
    pub arena_bytes: u64,
}

/// Weights are placed at multiples of this (aligned vector loads).
const WEIGHT_ALIGN: usize = 256;

/// State shared by the kernel families while lowering one graph.
pub struct Cx<'c, 'g> {
    pub em: Em<'c>,
    pub g: &'g Graph,
    plan: MemoryPlan,
    locs: HashMap<ValueId, Loc>,
    weights: Vec<u8>,
    weight_table: Vec<(String, DType, Vec<usize>, u64)>,
    /// Placed constants by address, each held here so that its address cannot be reused by a
    /// later constant while the key stands (kernels build temporary constants: reordered
    /// weights, epilogue scalars).
    const_locs: HashMap<*const Tensor, (Arc<Tensor>, u64)>,
    launches: Vec<LaunchSpec>,
    kernels: Vec<(String, String, &'static str, Option<ValueId>)>,
    /// Each distinct kernel code ([`Em::kernel_code`]) and the kernel that has it.
    kernel_by_code: HashMap<String, String>,
    /// Name of the kernel under construction and its parameters' args.
    current: Option<(String, Vec<Arg>)>,
    node_index: usize,
    /// Transposes of 2-D constants read only as a product's B: each output and the constant,
    /// which the product reads transposed (no kernel, no buffer).
    transposed_b: HashMap<ValueId, Arc<Tensor>>,
    /// The GPU generated for: kernels that need sm_90a instructions (wgmma) check it.
    pub arch: crate::ptx::Arch,
}

impl std::fmt::Debug for Cx<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cx").field("node", &self.node_index).finish()
    }
}

pub fn elem_type(d: DType) -> R<ElemType> {
    Ok(match d {
        DType::F32 => ElemType::F32,
        DType::F16 => ElemType::F16,
        DType::BF16 => ElemType::Bf16,
        DType::F64 => ElemType::F64,
        DType::I8 => ElemType::I8,
        DType::U8 => ElemType::U8,
        DType::I16 => ElemType::I16,
        DType::U16 => ElemType::U16,
        DType::I32 => ElemType::I32,
        DType::U32 => ElemType::U32,
        DType::I64 => ElemType::I64,
        DType::U64 => ElemType::U64,
        DType::Bool => ElemType::Bool,
        DType::F8E4M3FN => ElemType::F8E4m3fn,
        DType::F8E4M3FNUZ => ElemType::F8E4m3fnuz,
        DType::F8E5M2 => ElemType::F8E5m2,
        DType::F8E5M2FNUZ => ElemType::F8E5m2fnuz,
        DType::I4 => ElemType::I4,
        DType::U4 => ElemType::U4,
        DType::I2 => ElemType::I2,
        DType::U2 => ElemType::U2,
        DType::F4E2M1 => ElemType::F4e2m1,
        other => return unsupported(format!("dtype {other}")),
    })
}

/// Little-endian bytes of a tensor in its device layout (bool as one byte).
pub fn tensor_bytes(t: &Tensor) -> R<Vec<u8>> {
    t.data().to_le_bytes().ok_or_else(|| CodegenError::Unsupported(format!("weights of dtype {}", t.dtype())))
}

impl<'c, 'g> Cx<'c, 'g> {
    /// The lowering state of `g`: its memory plan (without the transposes products absorb),
    /// and the locations of its inputs, weights and planned values.
    pub fn new(context: &'c Context, g: &'g Graph, arch: crate::ptx::Arch, transposed_b: HashMap<ValueId, Arc<Tensor>>) -> R<Cx<'c, 'g>> {
        let plan = if transposed_b.is_empty() {
            kiln_passes::plan_memory(g)
        } else {
            let mut planned = g.clone();
            planned.nodes.retain(|n| !n.outputs.iter().flatten().any(|o| transposed_b.contains_key(o)));
            kiln_passes::plan_memory(&planned)
        }
        .map_err(|e| CodegenError::Unsupported(e.to_string()))?;
        plan.check().map_err(|e| CodegenError::Internal(format!("memory plan: {e}")))?;
        let mut cx = Cx {
            em: Em::new(context, &g.name),
            g,
            plan,
            locs: HashMap::new(),
            weights: vec![],
            weight_table: vec![],
            const_locs: HashMap::new(),
            launches: vec![],
            kernels: vec![],
            kernel_by_code: HashMap::new(),
            current: None,
            node_index: 0,
            transposed_b,
            arch,
        };
        for (i, &v) in g.inputs.iter().enumerate() {
            cx.locs.insert(v, Loc::Input { index: i as u32, offset: 0 });
        }
        let consts: Vec<(ValueId, Arc<Tensor>)> = g.consts.iter().map(|(k, t)| (*k, t.clone())).collect();
        for (v, t) in consts {
            let off = cx.place_const(&g.value(v).name, &t)?;
            cx.locs.insert(v, Loc::Weights { offset: off });
        }
        for (&v, &b) in &cx.plan.value_buffer {
            cx.locs.insert(v, Loc::Arena { offset: cx.plan.buffers[b].offset as u64 });
        }
        Ok(cx)
    }

    /// Starts node `i`: whether it needs kernels. A transpose a product absorbs needs none; a
    /// view of an input or weight has no arena buffer either: it is the same bytes.
    pub fn begin_node(&mut self, i: usize, node: &Node) -> R<bool> {
        self.node_index = i;
        if node.outputs.iter().flatten().any(|o| self.transposed_b.contains_key(o)) {
            return Ok(false);
        }
        if node.op.is_view() {
            if let (Some(Some(src)), Some(Some(out))) = (node.inputs.first(), node.outputs.first()) {
                if !self.locs.contains_key(out) {
                    let l = self.loc_of(*src)?;
                    self.locs.insert(*out, l);
                }
            }
            return Ok(false);
        }
        Ok(true)
    }

    /// The module and what the lowering made.
    pub fn finish(self) -> (Em<'c>, Lowered) {
        let lowered = Lowered {
            launches: self.launches,
            kernels: self.kernels,
            weights: self.weights,
            weight_table: self.weight_table,
            locs: self.locs,
            arena_bytes: self.plan.arena_bytes as u64,
        };
        (self.em, lowered)
    }

    pub fn ty(&self, v: ValueId) -> R<Ty> {
        let t = &self.g.value(v).ty;
        let dims =
            t.shape.as_fixed().ok_or_else(|| CodegenError::Unsupported(format!("value `{}` has symbolic dims", self.g.value(v).name)))?;
        Ok(Ty { dtype: t.dtype, dims })
    }

    /// The constant behind `v`, if it is one.
    pub fn konst(&self, v: ValueId) -> Option<&Arc<Tensor>> {
        self.g.const_value(v)
    }

    /// The untransposed 2-D constant when `v` is a transpose that only products read as B.
    pub fn transposed_b(&self, v: ValueId) -> Option<&Arc<Tensor>> {
        self.transposed_b.get(&v)
    }

    fn place_const(&mut self, name: &str, t: &Arc<Tensor>) -> R<u64> {
        let key = Arc::as_ptr(t);
        if let Some((_, o)) = self.const_locs.get(&key) {
            return Ok(*o);
        }
        self.weights.resize(self.weights.len().div_ceil(WEIGHT_ALIGN) * WEIGHT_ALIGN, 0);
        let off = self.weights.len() as u64;
        self.weights.extend(tensor_bytes(t)?);
        self.weight_table.push((name.to_string(), t.dtype(), t.dims().to_vec(), off));
        self.const_locs.insert(key, (t.clone(), off));
        Ok(off)
    }

    /// Whether `v`'s bytes start at a multiple of `align` bytes (device allocations are
    /// 256-byte aligned; arena and weight offsets are known here).
    pub fn is_aligned(&self, v: ValueId, align: u64) -> bool {
        match self.locs.get(&v) {
            Some(Loc::Arena { offset } | Loc::Weights { offset } | Loc::Input { offset, .. }) => offset % align == 0,
            None => false,
        }
    }

    fn loc_of(&mut self, v: ValueId) -> R<Loc> {
        if let Some(l) = self.locs.get(&v) {
            return Ok(*l);
        }
        Err(CodegenError::Internal(format!("value `{}` has no location", self.g.value(v).name)))
    }

    /// Starts a kernel for the current node whose parameters are `params` (in order); returns
    /// the pointers to use in its body.
    pub fn begin(&mut self, suffix: &str, params: &[Param]) -> R<Vec<inkwell::values::PointerValue<'c>>> {
        let node = &self.g.nodes[self.node_index];
        let base: String = node.op.kind_name().chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let name = format!("k{}_{}{}", self.launches.len(), base.to_ascii_lowercase(), suffix);
        let mut args = vec![];
        for p in params {
            let (loc, bytes) = match p {
                Param::Value(v) => {
                    let t = &self.g.value(*v).ty;
                    let n = t.shape.numel().unwrap_or(0);
                    (self.loc_of(*v)?, (t.dtype.element_bytes() * n) as u64)
                }
                Param::Const(t) => {
                    let off = self.place_const(&format!("{}.const", node.name), t)?;
                    (Loc::Weights { offset: off }, (t.dtype().element_bytes() * t.numel()) as u64)
                }
            };
            args.push(Arg::Ptr { loc, bytes });
        }
        let ptrs = self.em.begin_kernel(&name, params.len())?;
        self.current = Some((name, args));
        Ok(ptrs)
    }

    /// Ends the kernel begun last and schedules its launch. A kernel whose code an earlier one
    /// has (an unrolled recurrence's steps, a network's repeated blocks) is dropped and the
    /// launch runs the earlier one: one copy for LLVM, ptxas and the artifact.
    pub fn launch(&mut self, grid: [u32; 3], block: [u32; 3], shared_bytes: u32) -> R<()> {
        self.em.end_kernel()?;
        let (name, args) = self.current.take().ok_or_else(|| CodegenError::Internal("launch without begin".into()))?;
        // The dynamic shared size is part of the key: the runtime sets it per kernel.
        let code = format!("{shared_bytes}\n{}", self.em.kernel_code(&name));
        let kernel = match self.kernel_by_code.get(&code) {
            Some(first) => {
                self.em.drop_kernel();
                first.clone()
            }
            None => {
                self.kernel_by_code.insert(code, name.clone());
                name
            }
        };
        let node = &self.g.nodes[self.node_index];
        self.kernels.push((kernel.clone(), node.name.clone(), node.op.kind_name(), node.outputs.first().copied().flatten()));
        self.launches.push(LaunchSpec { kernel, grid, block, shared_bytes, args });
        Ok(())
    }
}

/// Grid size for `n` items at `per_block` items per block.
pub fn blocks(n: usize, per_block: usize) -> R<u32> {
    u32::try_from(n.div_ceil(per_block).max(1)).map_err(|_| CodegenError::Unsupported(format!("{n} elements need more than 2^32 blocks")))
}
