//! AscendC custom operators for fused elementwise programs that no CANN built-in computes in
//! one op: [`program`] turns the body into vector instructions, [`tiling`] splits the static
//! shape over cores and Unified Buffer tiles, [`emit`] writes the msopgen project's sources;
//! and for reductions CANN computes only as several built-ins ([`reduce`]).
//! The lowering references each kernel by its op type (`KilnFused0`, …); identical bodies over
//! the same shapes share one.

pub mod emit;
pub mod program;
pub mod reduce;
pub mod tiling;

use kiln_ir::{DType, Graph};
pub use program::{KInput, Program};
pub use tiling::Tiling;

/// The op types of kiln's AscendC kernels start with this (`KilnFused0`, …).
pub const OP_TYPE_PREFIX: &str = "KilnFused";

/// One custom operator: the kernel of a fused body at one static shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    /// The GE op type (`KilnFused0`) and msopgen's file stem for it (`kiln_fused0`).
    pub op_type: String,
    pub snake: String,
    /// The first kiln node it computes, and the body in kiln's IR text.
    pub node: String,
    pub body_text: String,
    pub program: Program,
    pub tiling: Tiling,
    pub in_dims: Vec<Vec<usize>>,
    pub out_dims: Vec<usize>,
    /// A reduction kernel's plan (its `program` then only names the input and output dtypes,
    /// and `tiling` the cores and UB it uses); None for an elementwise kernel.
    pub reduce: Option<reduce::Reduction>,
}

impl Kernel {
    /// The kernel of `body` over inputs of `in_dims` (each one element or as many as the
    /// output), named `index`; Err says why the body is left to built-ins.
    pub fn plan(index: usize, node: &str, body: &Graph, in_dims: &[Vec<usize>], out_dims: &[usize]) -> Result<Kernel, String> {
        let total: usize = out_dims.iter().product();
        let scalar: Vec<bool> = in_dims.iter().map(|d| d.iter().product::<usize>() == 1 && total != 1).collect();
        let program = program::translate(body, &scalar)?;
        let tiling = tiling::tiling(&program, total)?;
        Ok(Kernel {
            op_type: format!("{OP_TYPE_PREFIX}{index}"),
            snake: format!("kiln_fused{index}"),
            node: node.to_string(),
            body_text: kiln_ir::text::print(body),
            program,
            tiling,
            in_dims: in_dims.to_vec(),
            out_dims: out_dims.to_vec(),
            reduce: None,
        })
    }

    /// The kernel reducing `in_dims` (viewed as `[outer, rows, inner]`) over `rows` by `kind`,
    /// its result shaped `out_dims`; Err says why it is left to built-ins.
    #[allow(clippy::too_many_arguments)]
    pub fn plan_reduce(
        index: usize,
        node: &str,
        kind: reduce::ReduceKind,
        dtype: DType,
        [outer, rows, inner]: [usize; 3],
        in_dims: &[usize],
        out_dims: &[usize],
    ) -> Result<Kernel, String> {
        let r = reduce::plan(kind, dtype, outer, rows, inner)?;
        let program = Program { inputs: vec![KInput { dtype, scalar: false }], out: dtype, temps: vec![], consts: vec![], code: vec![] };
        let tiling = Tiling { total: outer * inner, block_length: r.per_core, tile_length: r.tile, blocks: r.blocks, ub_bytes: r.ub_bytes };
        Ok(Kernel {
            op_type: format!("{OP_TYPE_PREFIX}{index}"),
            snake: format!("kiln_fused{index}"),
            node: node.to_string(),
            body_text: format!("{kind:?} over [{outer}, {rows}, {inner}]"),
            program,
            tiling,
            in_dims: vec![in_dims.to_vec()],
            out_dims: out_dims.to_vec(),
            reduce: Some(r),
        })
    }

    /// Whether `other` computes the same thing over the same shapes (it can share this op).
    pub fn same_op(&self, other: &Kernel) -> bool {
        self.program == other.program
            && self.tiling == other.tiling
            && self.reduce == other.reduce
            && self.in_dims == other.in_dims
            && self.out_dims == other.out_dims
    }

    /// The project's files, relative to its directory.
    pub fn files(&self) -> Vec<(String, String)> {
        if let Some(r) = &self.reduce {
            return vec![
                (format!("op_host/{}_tiling.h", self.snake), reduce::tiling_header(&self.op_type, &self.snake)),
                (format!("op_host/{}.cpp", self.snake), reduce::host(r, &self.op_type, &self.snake, &self.out_dims)),
                (format!("op_kernel/{}.cpp", self.snake), reduce::kernel(r, &self.op_type, &self.snake, &self.node)),
            ];
        }
        vec![
            (format!("op_host/{}_tiling.h", self.snake), emit::tiling_header(self)),
            (format!("op_host/{}.cpp", self.snake), emit::host(self)),
            (format!("op_kernel/{}.cpp", self.snake), emit::kernel(self)),
        ]
    }

    /// The op's entry in msopgen's op description json.
    pub fn op_json(&self) -> serde_json::Value {
        let desc = |name: String, d: DType| serde_json::json!({"name": name, "param_type": "required", "format": ["ND"], "type": [emit::json_type(d)]});
        let inputs: Vec<serde_json::Value> = self.program.inputs.iter().enumerate().map(|(i, x)| desc(format!("x{i}"), x.dtype)).collect();
        serde_json::json!({
            "op": self.op_type,
            "language": "cpp",
            "input_desc": inputs,
            "output_desc": [desc("y".into(), self.program.out)],
        })
    }
}
