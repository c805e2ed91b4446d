//! A thin layer over inkwell for writing kernels: typed loads and stores by IR dtype, index
//! arithmetic in i64, structured loops and branches, PTX special registers, shuffles, barriers
//! and shared memory. Kernel bodies keep loop-carried state in `alloca`s; the O3 pipeline run
//! before PTX emission promotes them to registers.

use super::CodegenError;
use inkwell::basic_block::BasicBlock;
use inkwell::builder::Builder;
use inkwell::context::Context;
use inkwell::module::{Linkage, Module};
use inkwell::types::{BasicMetadataTypeEnum, BasicType, BasicTypeEnum, FloatType, IntType};
use inkwell::values::{BasicMetadataValueEnum, BasicValue, BasicValueEnum, FloatValue, FunctionValue, IntValue, PointerValue};
use inkwell::{AddressSpace, FloatPredicate, IntPredicate};
use kiln_ir::DType;

pub type R<T> = Result<T, CodegenError>;

/// LLVM's PTX_Kernel calling convention: the function is a `.entry`.
const PTX_KERNEL: u32 = 71;
pub const GLOBAL: u16 = 1;
pub const SHARED: u16 = 3;

/// Builds one LLVM module of kernels. Each kernel is built in a module of its own (`m`), so
/// that its code can be compared with the kernels kept so far ([`Em::kernel_code`]: printing a
/// function of a large module costs as much as the module), and is linked into `out` when kept.
pub struct Em<'c> {
    pub cx: &'c Context,
    /// The kernel under construction (and what it declares: intrinsics, shared arrays).
    pub m: Module<'c>,
    out: Module<'c>,
    pub b: Builder<'c>,
    f: Option<FunctionValue<'c>>,
}

impl std::fmt::Debug for Em<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Em").field("module", &self.m.get_name()).finish()
    }
}

/// An i64 value (indices and sizes).
pub type Ix<'c> = IntValue<'c>;

impl<'c> Em<'c> {
    pub fn new(cx: &'c Context, name: &str) -> Em<'c> {
        Em { cx, m: cx.create_module("kernel"), out: cx.create_module(name), b: cx.create_builder(), f: None }
    }

    /// Moves what `m` holds into the output module and starts an empty `m`.
    fn flush(&mut self) -> R<()> {
        let m = std::mem::replace(&mut self.m, self.cx.create_module("kernel"));
        self.out.link_in_module(m).map_err(|e| CodegenError::Llvm(format!("linking a kernel: {}", e.to_string())))
    }

    /// The module of every kernel kept.
    pub fn into_module(mut self) -> R<Module<'c>> {
        self.flush()?;
        Ok(self.out)
    }

    pub fn i1(&self) -> IntType<'c> {
        self.cx.bool_type()
    }
    pub fn i32t(&self) -> IntType<'c> {
        self.cx.i32_type()
    }
    pub fn i64t(&self) -> IntType<'c> {
        self.cx.i64_type()
    }
    pub fn f32t(&self) -> FloatType<'c> {
        self.cx.f32_type()
    }
    pub fn gptr(&self) -> inkwell::types::PointerType<'c> {
        self.cx.ptr_type(AddressSpace::from(GLOBAL))
    }

    /// Starts kernel `name` with `params` global pointers; returns them.
    pub fn begin_kernel(&mut self, name: &str, params: usize) -> R<Vec<PointerValue<'c>>> {
        self.flush()?;
        let tys: Vec<BasicMetadataTypeEnum> = (0..params).map(|_| self.gptr().into()).collect();
        let f = self.m.add_function(name, self.cx.void_type().fn_type(&tys, false), None);
        f.set_call_conventions(PTX_KERNEL);
        let entry = self.cx.append_basic_block(f, "entry");
        self.b.position_at_end(entry);
        self.f = Some(f);
        Ok((0..params).filter_map(|i| f.get_nth_param(i as u32)).map(|p| p.into_pointer_value()).collect())
    }

    /// Ends the kernel begun last.
    pub fn end_kernel(&mut self) -> R<()> {
        self.b.build_return(None)?;
        self.b.clear_insertion_position();
        self.f = None;
        Ok(())
    }

    /// What the kernel just ended (named `name`) computes, as text that two kernels share
    /// exactly when they are the same code: its module (the kernel, the intrinsics and shared
    /// arrays it declares) with its name left out.
    pub fn kernel_code(&self, name: &str) -> String {
        self.m.print_to_string().to_string().replace(name, "@KERNEL")
    }

    /// Drops the kernel just ended (a copy of one already kept).
    pub fn drop_kernel(&mut self) {
        self.m = self.cx.create_module("kernel");
    }

    fn func(&self) -> R<FunctionValue<'c>> {
        self.f.ok_or_else(|| CodegenError::Internal("no kernel is being built".into()))
    }

    fn block(&self, name: &str) -> R<BasicBlock<'c>> {
        Ok(self.cx.append_basic_block(self.func()?, name))
    }

    // ---- constants and index arithmetic (i64) ----

    pub fn ix(&self, v: i64) -> Ix<'c> {
        self.i64t().const_int(v as u64, true)
    }
    pub fn f32c(&self, v: f64) -> FloatValue<'c> {
        self.f32t().const_float(v)
    }
    pub fn add(&self, a: Ix<'c>, b: Ix<'c>) -> R<Ix<'c>> {
        Ok(self.b.build_int_add(a, b, "")?)
    }
    pub fn sub(&self, a: Ix<'c>, b: Ix<'c>) -> R<Ix<'c>> {
        Ok(self.b.build_int_sub(a, b, "")?)
    }
    pub fn mul(&self, a: Ix<'c>, b: Ix<'c>) -> R<Ix<'c>> {
        Ok(self.b.build_int_mul(a, b, "")?)
    }
    /// a * k (k a compile-time constant; 1 and 0 fold away).
    pub fn mulk(&self, a: Ix<'c>, k: i64) -> R<Ix<'c>> {
        match k {
            0 => Ok(self.ix(0)),
            1 => Ok(a),
            _ => self.mul(a, self.ix(k)),
        }
    }
    pub fn addk(&self, a: Ix<'c>, k: i64) -> R<Ix<'c>> {
        if k == 0 {
            Ok(a)
        } else {
            self.add(a, self.ix(k))
        }
    }
    /// Unsigned division by a positive constant (indices are never negative).
    pub fn divk(&self, a: Ix<'c>, k: i64) -> R<Ix<'c>> {
        if k == 1 {
            Ok(a)
        } else {
            Ok(self.b.build_int_unsigned_div(a, self.ix(k), "")?)
        }
    }
    pub fn remk(&self, a: Ix<'c>, k: i64) -> R<Ix<'c>> {
        if k == 1 {
            Ok(self.ix(0))
        } else {
            Ok(self.b.build_int_unsigned_rem(a, self.ix(k), "")?)
        }
    }
    pub fn icmp(&self, p: IntPredicate, a: IntValue<'c>, b: IntValue<'c>) -> R<IntValue<'c>> {
        Ok(self.b.build_int_compare(p, a, b, "")?)
    }
    pub fn and(&self, a: IntValue<'c>, b: IntValue<'c>) -> R<IntValue<'c>> {
        Ok(self.b.build_and(a, b, "")?)
    }
    pub fn select<V: BasicValue<'c>>(&self, c: IntValue<'c>, a: V, b: V) -> R<BasicValueEnum<'c>> {
        Ok(self.b.build_select(c, a, b, "")?)
    }
    /// `0 <= i < len` (signed).
    pub fn in_range(&self, i: Ix<'c>, len: i64) -> R<IntValue<'c>> {
        self.and(self.icmp(IntPredicate::SGE, i, self.ix(0))?, self.icmp(IntPredicate::SLT, i, self.ix(len))?)
    }
    pub fn min_ix(&self, a: Ix<'c>, b: Ix<'c>) -> R<Ix<'c>> {
        let c = self.icmp(IntPredicate::SLT, a, b)?;
        Ok(self.select(c, a, b)?.into_int_value())
    }

    // ---- special registers ----

    /// `%tid.x`, `%ctaid.y`, `%ntid.x`, `%nctaid.x`, `%laneid` as i64.
    pub fn sreg(&self, reg: &str) -> R<Ix<'c>> {
        let name = format!("llvm.nvvm.read.ptx.sreg.{reg}");
        let v = self.call(&name, self.i32t().into(), &[])?.into_int_value();
        Ok(self.b.build_int_z_extend(v, self.i64t(), "")?)
    }

    /// Calls (declaring on first use) an external function or intrinsic.
    pub fn call(&self, name: &str, ret: BasicTypeEnum<'c>, args: &[BasicValueEnum<'c>]) -> R<BasicValueEnum<'c>> {
        let f = match self.m.get_function(name) {
            Some(f) => f,
            None => {
                let tys: Vec<BasicMetadataTypeEnum> = args.iter().map(|a| a.get_type().into()).collect();
                self.m.add_function(name, ret.fn_type(&tys, false), None)
            }
        };
        let args: Vec<BasicMetadataValueEnum> = args.iter().map(|&a| a.into()).collect();
        let v = self.b.build_call(f, &args, "")?;
        v.try_as_basic_value().basic().ok_or_else(|| CodegenError::Internal(format!("{name} returned void")))
    }

    /// Calls a void function or intrinsic.
    pub fn call_void(&self, name: &str, args: &[BasicValueEnum<'c>]) -> R<()> {
        let f = match self.m.get_function(name) {
            Some(f) => f,
            None => {
                let tys: Vec<BasicMetadataTypeEnum> = args.iter().map(|a| a.get_type().into()).collect();
                self.m.add_function(name, self.cx.void_type().fn_type(&tys, false), None)
            }
        };
        let args: Vec<BasicMetadataValueEnum> = args.iter().map(|&a| a.into()).collect();
        self.b.build_call(f, &args, "")?;
        Ok(())
    }

    /// One PTX instruction on f32 registers: `asm("ex2.approx.f32 $0, $1;")`.
    pub fn asm_f32(&self, text: &str, args: &[FloatValue<'c>]) -> R<FloatValue<'c>> {
        let tys: Vec<BasicMetadataTypeEnum> = args.iter().map(|_| self.f32t().into()).collect();
        let fty = self.f32t().fn_type(&tys, false);
        let constraints = std::iter::once("=f").chain(args.iter().map(|_| "f")).collect::<Vec<_>>().join(",");
        let asm = self.cx.create_inline_asm(fty, text.to_string(), constraints, false, false, None, false);
        let args: Vec<BasicMetadataValueEnum> = args.iter().map(|&a| a.into()).collect();
        let v = self.b.build_indirect_call(fty, asm, &args, "")?;
        v.try_as_basic_value()
            .basic()
            .map(|v| v.into_float_value())
            .ok_or_else(|| CodegenError::Internal("inline asm returned void".into()))
    }

    /// Inline PTX: `ret` is None for an instruction without outputs (then it is marked as
    /// having side effects). `side_effects` also marks the call `convergent`: warp-collective
    /// instructions (`mma.sync`, `ldmatrix`) must be, or LLVM may sink them into a branch that
    /// only some lanes of the warp take.
    pub fn asm(
        &self,
        text: &str,
        constraints: &str,
        ret: Option<BasicTypeEnum<'c>>,
        args: &[BasicValueEnum<'c>],
        side_effects: bool,
    ) -> R<Option<BasicValueEnum<'c>>> {
        let tys: Vec<BasicMetadataTypeEnum> = args.iter().map(|a| a.get_type().into()).collect();
        let fty = match ret {
            Some(r) => r.fn_type(&tys, false),
            None => self.cx.void_type().fn_type(&tys, false),
        };
        let effects = side_effects || ret.is_none();
        let asm = self.cx.create_inline_asm(fty, text.to_string(), constraints.to_string(), effects, false, None, false);
        let args: Vec<BasicMetadataValueEnum> = args.iter().map(|&a| a.into()).collect();
        let v = self.b.build_indirect_call(fty, asm, &args, "")?;
        if effects {
            let kind = inkwell::attributes::Attribute::get_named_enum_kind_id("convergent");
            v.add_attribute(inkwell::attributes::AttributeLoc::Function, self.cx.create_enum_attribute(kind, 0));
        }
        Ok(v.try_as_basic_value().basic())
    }

    /// Field `i` of a struct value (an inline-asm result with several outputs).
    pub fn field(&self, v: BasicValueEnum<'c>, i: u32) -> R<BasicValueEnum<'c>> {
        Ok(self.b.build_extract_value(v.into_struct_value(), i, "")?)
    }

    /// The address, as an i64 for inline PTX, of element `idx` of type `t` at `base` (a
    /// shared-memory address for a shared array, a global one for a kernel parameter).
    pub fn addr(&self, t: BasicTypeEnum<'c>, base: PointerValue<'c>, idx: Ix<'c>) -> R<Ix<'c>> {
        let p = unsafe_gep(&self.b, t, base, idx)?;
        Ok(self.b.build_ptr_to_int(p, self.i64t(), "")?)
    }

    /// A pointer to element `idx` of type `t` at `base` (in `base`'s address space).
    pub fn offset_ptr(&self, t: BasicTypeEnum<'c>, base: PointerValue<'c>, idx: Ix<'c>) -> R<PointerValue<'c>> {
        unsafe_gep(&self.b, t, base, idx)
    }

    pub fn i32c(&self, v: i64) -> IntValue<'c> {
        self.i32t().const_int(v as u64, true)
    }

    pub fn barrier(&self) -> R<()> {
        self.call_void("llvm.nvvm.barrier0", &[])
    }

    /// `shfl.sync.bfly` of an f32 across the full warp.
    pub fn shfl_xor(&self, v: FloatValue<'c>, lane_mask: i64) -> R<FloatValue<'c>> {
        let all = self.i32t().const_int(0xffff_ffff, false);
        let m = self.i32t().const_int(lane_mask as u64, false);
        let c = self.i32t().const_int(0x1f, false);
        Ok(self.call("llvm.nvvm.shfl.sync.bfly.f32", self.f32t().into(), &[all.into(), v.into(), m.into(), c.into()])?.into_float_value())
    }

    /// A `__shared__` array of `count` elements of `ty`, private to this module.
    pub fn shared_array(&self, name: &str, ty: BasicTypeEnum<'c>, count: u32) -> PointerValue<'c> {
        let at = ty.array_type(count);
        let g = self.m.add_global(at, Some(AddressSpace::from(SHARED)), name);
        g.set_linkage(Linkage::Internal);
        g.set_initializer(&at.get_undef());
        g.set_alignment(16);
        g.as_pointer_value()
    }

    /// The block's dynamic shared memory (`extern __shared__`) as an array of `ty`: its size is
    /// the launch's `shared_bytes`, which may exceed the 48 KiB a static array can have (the
    /// runtime raises the kernel's limit to it).
    pub fn dynamic_shared(&self, ty: BasicTypeEnum<'c>) -> PointerValue<'c> {
        const NAME: &str = "kiln_dynamic_smem";
        if let Some(g) = self.m.get_global(NAME) {
            return g.as_pointer_value();
        }
        let g = self.m.add_global(ty.array_type(0), Some(AddressSpace::from(SHARED)), NAME);
        g.set_linkage(Linkage::External);
        g.set_alignment(16);
        g.as_pointer_value()
    }

    // ---- typed memory access ----

    /// The register type a dtype computes in: f32 for f16/bf16/f32, f64, the int of its
    /// width, i1 for bool.
    pub fn compute_type(&self, d: DType) -> R<BasicTypeEnum<'c>> {
        Ok(match d {
            DType::F32 | DType::F16 | DType::BF16 => self.f32t().into(),
            d if d.minifloat().is_some() => self.f32t().into(),
            DType::F64 => self.cx.f64_type().into(),
            // The sub-byte integers live in a byte each, sign- or zero-extended.
            DType::I8 | DType::U8 | DType::I4 | DType::U4 | DType::I2 | DType::U2 => self.cx.i8_type().into(),
            DType::I16 | DType::U16 => self.cx.i16_type().into(),
            DType::I32 | DType::U32 => self.i32t().into(),
            DType::I64 | DType::U64 => self.i64t().into(),
            DType::Bool => self.i1().into(),
            other => return Err(CodegenError::Unsupported(format!("dtype {other} on the CUDA target"))),
        })
    }

    /// The type a dtype is stored as.
    pub fn storage_type(&self, d: DType) -> R<BasicTypeEnum<'c>> {
        Ok(match d {
            DType::F16 => self.cx.f16_type().into(),
            DType::BF16 => self.cx.bf16_type().into(),
            DType::Bool => self.cx.i8_type().into(),
            d if d.minifloat().is_some() => self.cx.i8_type().into(),
            _ => self.compute_type(d)?,
        })
    }

    pub fn gep(&self, d: DType, base: PointerValue<'c>, idx: Ix<'c>) -> R<PointerValue<'c>> {
        let t = self.storage_type(d)?;
        // SAFETY of the generated code: indices are computed from static shapes and stay in bounds.
        unsafe_gep(&self.b, t, base, idx)
    }

    /// Loads element `idx` of a `d` tensor as its compute type.
    pub fn load(&self, d: DType, base: PointerValue<'c>, idx: Ix<'c>) -> R<BasicValueEnum<'c>> {
        let p = self.gep(d, base, idx)?;
        let v = self.b.build_load(self.storage_type(d)?, p, "")?;
        self.widen(d, v)
    }

    /// Stored form to compute form.
    pub fn widen(&self, d: DType, v: BasicValueEnum<'c>) -> R<BasicValueEnum<'c>> {
        Ok(match d {
            DType::F16 | DType::BF16 => self.b.build_float_ext(v.into_float_value(), self.f32t(), "")?.into(),
            DType::Bool => self.icmp(IntPredicate::NE, v.into_int_value(), self.cx.i8_type().const_zero())?.into(),
            d if d.minifloat().is_some() => self.decode_minifloat(d, v.into_int_value())?.into(),
            _ => v,
        })
    }

    /// Compute form to stored form.
    pub fn narrow(&self, d: DType, v: BasicValueEnum<'c>) -> R<BasicValueEnum<'c>> {
        Ok(match d {
            DType::F16 | DType::BF16 => {
                let t = self.storage_type(d)?.into_float_type();
                self.b.build_float_trunc(v.into_float_value(), t, "")?.into()
            }
            DType::Bool => self.b.build_int_z_extend(v.into_int_value(), self.cx.i8_type(), "")?.into(),
            d if d.minifloat().is_some() => self.encode_minifloat(d, v.into_float_value())?.into(),
            d if d.is_packed_int() => self.wrap_packed(d, v.into_int_value())?.into(),
            _ => v,
        })
    }

    /// An integer's low bits as sub-byte integer `d` (an i8, sign-extended for the signed
    /// ones): Cast's wrapping.
    pub fn wrap_packed(&self, d: DType, v: IntValue<'c>) -> R<IntValue<'c>> {
        let i8t = self.cx.i8_type();
        let v = self.b.build_int_truncate_or_bit_cast(v, i8t, "")?;
        let (bits, signed) = match d {
            DType::I4 => (4, true),
            DType::U4 => (4, false),
            DType::I2 => (2, true),
            DType::U2 => (2, false),
            other => return Err(CodegenError::Internal(format!("{other} is not a sub-byte integer"))),
        };
        Ok(if signed {
            let up = self.b.build_left_shift(v, i8t.const_int(8 - bits, false), "")?;
            self.b.build_right_shift(up, i8t.const_int(8 - bits, false), true, "")?
        } else {
            self.b.build_and(v, i8t.const_int((1 << bits) - 1, false), "")?
        })
    }

    pub fn store(&self, d: DType, base: PointerValue<'c>, idx: Ix<'c>, v: BasicValueEnum<'c>) -> R<()> {
        let p = self.gep(d, base, idx)?;
        let v = self.narrow(d, v)?;
        self.b.build_store(p, v)?;
        Ok(())
    }

    /// Loads elements `idx .. idx + n` with one vector access (`idx` a multiple of `n`, the
    /// base aligned to `n` elements), each in its compute form.
    pub fn load_vec(&self, d: DType, base: PointerValue<'c>, idx: Ix<'c>, n: u32) -> R<Vec<BasicValueEnum<'c>>> {
        let st = self.storage_type(d)?;
        let p = self.gep(d, base, idx)?;
        let vt = vector_of(st, n)?;
        let v = self.b.build_load(vt, p, "")?;
        if let Some(i) = v.as_instruction_value() {
            i.set_alignment(n * store_bytes(d)).map_err(|e| CodegenError::Llvm(e.to_string()))?;
        }
        (0..n)
            .map(|k| {
                let e = self.b.build_extract_element(v.into_vector_value(), self.i32t().const_int(k as u64, false), "")?;
                self.widen(d, e)
            })
            .collect()
    }

    /// Stores `vals` (compute form) at `idx ..` with one vector access, aligned as for
    /// [`Em::load_vec`].
    pub fn store_vec(&self, d: DType, base: PointerValue<'c>, idx: Ix<'c>, vals: &[BasicValueEnum<'c>]) -> R<()> {
        let st = self.storage_type(d)?;
        let n = vals.len() as u32;
        let mut v = vector_of(st, n)?.get_undef();
        for (k, &x) in vals.iter().enumerate() {
            let x = self.narrow(d, x)?;
            v = self.b.build_insert_element(v, x, self.i32t().const_int(k as u64, false), "")?;
        }
        let p = self.gep(d, base, idx)?;
        let s = self.b.build_store(p, v)?;
        s.set_alignment(n * store_bytes(d)).map_err(|e| CodegenError::Llvm(e.to_string()))?;
        Ok(())
    }

    /// Loads element `i` as f32 where `ok`, 0 elsewhere: the index is replaced by 0 where
    /// invalid, so no out-of-bounds address is ever read.
    pub fn load_guarded(&self, d: DType, base: PointerValue<'c>, ok: IntValue<'c>, i: Ix<'c>) -> R<FloatValue<'c>> {
        let safe = self.select(ok, i, self.ix(0))?.into_int_value();
        let v = self.load(d, base, safe)?;
        let v = self.convert(v, d, DType::F32)?.into_float_value();
        Ok(self.select(ok, v, self.f32c(0.0))?.into_float_value())
    }

    /// Loads an f32 from a shared-memory array.
    pub fn load_shared_f32(&self, arr: PointerValue<'c>, idx: Ix<'c>) -> R<FloatValue<'c>> {
        let p = unsafe_gep(&self.b, self.f32t().into(), arr, idx)?;
        Ok(self.b.build_load(self.f32t(), p, "")?.into_float_value())
    }
    pub fn store_shared_f32(&self, arr: PointerValue<'c>, idx: Ix<'c>, v: FloatValue<'c>) -> R<()> {
        let p = unsafe_gep(&self.b, self.f32t().into(), arr, idx)?;
        self.b.build_store(p, v)?;
        Ok(())
    }

    // ---- variables and control flow ----

    /// A mutable local (promoted to a register by the optimizer).
    pub fn var(&self, init: BasicValueEnum<'c>) -> R<Var<'c>> {
        let f = self.func()?;
        let entry = f.get_first_basic_block().ok_or_else(|| CodegenError::Internal("kernel without entry".into()))?;
        let tmp = self.cx.create_builder();
        match entry.get_first_instruction() {
            Some(i) => tmp.position_before(&i),
            None => tmp.position_at_end(entry),
        }
        let ty = init.get_type();
        let p = tmp.build_alloca(ty, "")?;
        self.b.build_store(p, init)?;
        Ok(Var { p, ty })
    }
    pub fn get(&self, v: Var<'c>) -> R<BasicValueEnum<'c>> {
        Ok(self.b.build_load(v.ty, v.p, "")?)
    }
    pub fn set(&self, v: Var<'c>, x: BasicValueEnum<'c>) -> R<()> {
        self.b.build_store(v.p, x)?;
        Ok(())
    }

    /// `for (i = start; i < end; i += step) body(i)`.
    pub fn for_range(&mut self, start: Ix<'c>, end: Ix<'c>, step: Ix<'c>, mut body: impl FnMut(&mut Self, Ix<'c>) -> R<()>) -> R<()> {
        let i = self.var(start.into())?;
        let (head, bb, done) = (self.block("for.head")?, self.block("for.body")?, self.block("for.end")?);
        self.b.build_unconditional_branch(head)?;
        self.b.position_at_end(head);
        let iv = self.get(i)?.into_int_value();
        let c = self.icmp(IntPredicate::SLT, iv, end)?;
        self.b.build_conditional_branch(c, bb, done)?;
        self.b.position_at_end(bb);
        body(self, iv)?;
        let next = self.add(iv, step)?;
        self.set(i, next.into())?;
        self.b.build_unconditional_branch(head)?;
        self.b.position_at_end(done);
        Ok(())
    }

    /// `for i in 0..n` with a constant trip count.
    pub fn for_n(&mut self, n: i64, body: impl FnMut(&mut Self, Ix<'c>) -> R<()>) -> R<()> {
        let (z, n, one) = (self.ix(0), self.ix(n), self.ix(1));
        self.for_range(z, n, one, body)
    }

    /// `if (cond) then()`.
    pub fn if_(&mut self, cond: IntValue<'c>, then: impl FnOnce(&mut Self) -> R<()>) -> R<()> {
        let (t, done) = (self.block("if.then")?, self.block("if.end")?);
        self.b.build_conditional_branch(cond, t, done)?;
        self.b.position_at_end(t);
        then(self)?;
        self.b.build_unconditional_branch(done)?;
        self.b.position_at_end(done);
        Ok(())
    }

    /// `if (cond) a() else b()`, yielding a value of type `ty`.
    pub fn if_else(
        &mut self,
        cond: IntValue<'c>,
        ty: BasicTypeEnum<'c>,
        a: impl FnOnce(&mut Self) -> R<BasicValueEnum<'c>>,
        b: impl FnOnce(&mut Self) -> R<BasicValueEnum<'c>>,
    ) -> R<BasicValueEnum<'c>> {
        let (ta, tb, done) = (self.block("if.then")?, self.block("if.else")?, self.block("if.end")?);
        self.b.build_conditional_branch(cond, ta, tb)?;
        self.b.position_at_end(ta);
        let va = a(self)?;
        let ea = self.b.get_insert_block().ok_or_else(|| CodegenError::Internal("no block".into()))?;
        self.b.build_unconditional_branch(done)?;
        self.b.position_at_end(tb);
        let vb = b(self)?;
        let eb = self.b.get_insert_block().ok_or_else(|| CodegenError::Internal("no block".into()))?;
        self.b.build_unconditional_branch(done)?;
        self.b.position_at_end(done);
        let phi = self.b.build_phi(ty, "")?;
        phi.add_incoming(&[(&va, ea), (&vb, eb)]);
        Ok(phi.as_basic_value())
    }

    // ---- float helpers ----

    pub fn fadd(&self, a: FloatValue<'c>, b: FloatValue<'c>) -> R<FloatValue<'c>> {
        Ok(self.b.build_float_add(a, b, "")?)
    }
    pub fn fsub(&self, a: FloatValue<'c>, b: FloatValue<'c>) -> R<FloatValue<'c>> {
        Ok(self.b.build_float_sub(a, b, "")?)
    }
    pub fn fmul(&self, a: FloatValue<'c>, b: FloatValue<'c>) -> R<FloatValue<'c>> {
        Ok(self.b.build_float_mul(a, b, "")?)
    }
    pub fn fdiv(&self, a: FloatValue<'c>, b: FloatValue<'c>) -> R<FloatValue<'c>> {
        Ok(self.b.build_float_div(a, b, "")?)
    }
    pub fn fcmp(&self, p: FloatPredicate, a: FloatValue<'c>, b: FloatValue<'c>) -> R<IntValue<'c>> {
        Ok(self.b.build_float_compare(p, a, b, "")?)
    }
    /// `llvm.<name>.f32/f64` (fabs, floor, ceil, sqrt, maxnum, minnum, fma, ...).
    pub fn fintr(&self, name: &str, args: &[FloatValue<'c>]) -> R<FloatValue<'c>> {
        let t = args[0].get_type();
        let suffix = if t == self.f32t() { "f32" } else { "f64" };
        let args: Vec<BasicValueEnum> = args.iter().map(|&a| a.into()).collect();
        Ok(self.call(&format!("llvm.{name}.{suffix}"), t.into(), &args)?.into_float_value())
    }
    /// max(a, b) that propagates NaN like the interpreter's `f64::max` would not: uses maxnum.
    pub fn fmax(&self, a: FloatValue<'c>, b: FloatValue<'c>) -> R<FloatValue<'c>> {
        self.fintr("maxnum", &[a, b])
    }
    pub fn fmin(&self, a: FloatValue<'c>, b: FloatValue<'c>) -> R<FloatValue<'c>> {
        self.fintr("minnum", &[a, b])
    }

    /// Warp-wide sum (butterfly), every lane gets the total.
    pub fn warp_sum(&self, mut v: FloatValue<'c>) -> R<FloatValue<'c>> {
        for m in [16, 8, 4, 2, 1] {
            let o = self.shfl_xor(v, m)?;
            v = self.fadd(v, o)?;
        }
        Ok(v)
    }
    /// Warp-wide max.
    pub fn warp_max(&self, mut v: FloatValue<'c>) -> R<FloatValue<'c>> {
        for m in [16, 8, 4, 2, 1] {
            let o = self.shfl_xor(v, m)?;
            v = self.fmax(v, o)?;
        }
        Ok(v)
    }
}

fn vector_of(t: BasicTypeEnum<'_>, n: u32) -> R<inkwell::types::VectorType<'_>> {
    match t {
        BasicTypeEnum::FloatType(f) => Ok(f.vec_type(n)),
        BasicTypeEnum::IntType(i) => Ok(i.vec_type(n)),
        _ => Err(CodegenError::Internal(format!("a vector of {t}"))),
    }
}

/// Bytes of one stored element (bool is a byte).
pub fn store_bytes(d: DType) -> u32 {
    d.element_bytes() as u32
}

/// A local variable.
#[derive(Clone, Copy, Debug)]
pub struct Var<'c> {
    p: PointerValue<'c>,
    ty: BasicTypeEnum<'c>,
}

/// `getelementptr inbounds` (inkwell marks it unsafe: the index must stay in the allocation).
#[allow(unsafe_code)]
fn unsafe_gep<'c>(b: &Builder<'c>, t: BasicTypeEnum<'c>, base: PointerValue<'c>, idx: IntValue<'c>) -> R<PointerValue<'c>> {
    // SAFETY: building the instruction is safe; only the generated code's indices matter, and
    // every kernel computes them from the static shapes it was generated for.
    Ok(unsafe { b.build_in_bounds_gep(t, base, &[idx], "")? })
}
