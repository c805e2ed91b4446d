//! Attention → FlashAttentionScore and RotaryEmbedding → RotaryMul.
//!
//! FlashAttentionScore is chosen over PromptFlashAttention because CANN documents FLOAT among
//! its query types (PromptFlashAttention takes FLOAT16, BFLOAT16 and INT8 only), and kiln keeps
//! fp32 models in fp32 (`must_keep_origin_dtype`). Its masks follow CANN's convention: a true
//! `atten_mask` element is *not* attended, the opposite of ONNX's boolean mask; an ONNX float
//! mask is an additive bias, which is `real_shift` (pse) with `pse_type` 0 (`scale·QKᵀ + pse`).

use super::ops::{cast, concat, input, output, reshape, split_last, strided_slice};
use super::{unsupported, Cx, Fail};
use crate::ge::builder::{Desc, Port};
use crate::ge::Attr;
use kiln_ir::{DType, Tensor};

/// FlashAttentionScore's "no band limit" for `pre_tockens`/`next_tockens`.
const NO_BAND: i64 = 2147483647;

pub(crate) struct AttentionAttrs {
    pub is_causal: bool,
    pub q_heads: i64,
    pub kv_heads: i64,
    pub scale: Option<f32>,
    pub softcap: f32,
    pub qk_output_mode: i64,
    pub zero_undefined_rows: bool,
}

fn internal(e: impl std::fmt::Display) -> Fail {
    Fail::Internal(e.to_string())
}

/// A bool constant `[sq, sk]`, true above the diagonal: the keys a causal query may not see.
/// One per shape, shared by the graph's attention layers.
fn causal_mask(cx: &mut Cx, name: &str, sq: usize, sk: usize) -> Result<Port, Fail> {
    let key = format!("causal {sq}x{sk}");
    if let Some(p) = cx.shared.get(&key) {
        return Ok(p.clone());
    }
    let v: Vec<bool> = (0..sq * sk).map(|i| i % sk > i / sk).collect();
    let t = Tensor::new(vec![sq, sk], kiln_ir::Data::Bool(v)).map_err(internal)?;
    let p = cx.constant(name, &t)?;
    cx.shared.insert(key, p.clone());
    Ok(p)
}

/// `x` broadcast to `dims` (BroadcastToD), or `x` when it has them already.
pub(super) fn broadcast(cx: &mut Cx, name: &str, x: Port, dims: &[i64]) -> Result<Port, Fail> {
    let d = cx.desc(&x)?;
    if d.dims == dims {
        return Ok(x);
    }
    let out = Desc::nd(d.dtype, &dims.iter().map(|&v| v as usize).collect::<Vec<_>>());
    cx.op1(name, "BroadcastToD", &[("x", Some(x))], out, vec![("shape", Attr::ListInt(dims.to_vec()))])
}

/// `x` as dtype `to` (a Cast when it is not).
pub(super) fn cast_to(cx: &mut Cx, name: &str, x: Port, to: DType) -> Result<Port, Fail> {
    let d = cx.desc(&x)?;
    if d.dtype == to {
        return Ok(x);
    }
    cast(cx, name, x, Desc { dtype: to, ..d })
}

/// Attention over Q, K, V (all `[B, S, heads·D]`, or all `[B, heads, S, D]`), with an optional
/// mask; outputs Y and, without a cache, the present key and value (`[B, kv heads, S, D]`).
pub(crate) fn attention(
    cx: &mut Cx,
    name: &str,
    a: &AttentionAttrs,
    ins: &[Option<Port>],
    outs: &[Option<Desc>],
) -> Result<Vec<Option<Port>>, Fail> {
    let cache = ins.get(4).is_some_and(Option::is_some) || ins.get(5).is_some_and(Option::is_some);
    let qk_out = outs.get(3).is_some_and(Option::is_some);
    let (kd, vd) = (cx.desc(&input(ins, 1)?)?, cx.desc(&input(ins, 2)?)?);
    // FlashAttentionScore has no cache inputs, no QK output, no soft-capping and one head size.
    if cache || qk_out || a.softcap != 0.0 || kd.dims != vd.dims {
        return super::attention::attention(cx, name, a, ins, outs);
    }
    if ins.get(6).is_some_and(Option::is_some) {
        return unsupported("nonpad_kv_seqlen (FlashAttentionScore's actual_seq_kvlen) is not mapped yet");
    }
    let (q, k, v) = (input(ins, 0)?, input(ins, 1)?, input(ins, 2)?);
    let qd = cx.desc(&q)?;
    let u = |x: i64| x as usize;
    // (batch, q length, kv length, q heads, kv heads, head size) and the layout.
    let (b, sq, sk, hq, hk, d, layout) = match (qd.dims.as_slice(), kd.dims.as_slice()) {
        (&[b, sq, hq_d], &[_, sk, hk_d]) => {
            let (hq, hk) = (a.q_heads, a.kv_heads);
            if hq <= 0 || hk <= 0 || hq_d % hq != 0 {
                return Err(Fail::Internal("3-D attention without its head counts".into()));
            }
            let d = hq_d / hq;
            if hk_d != hk * d {
                return super::attention::attention(cx, name, a, ins, outs);
            }
            (b, sq, sk, hq, hk, d, "BSH")
        }
        (&[b, hq, sq, d], &[_, hk, sk, _]) => (b, sq, sk, hq, hk, d, "BNSD"),
        _ => return unsupported("attention inputs that are neither all 3-D nor all 4-D"),
    };
    if hk == 0 || hq % hk != 0 {
        return unsupported("query heads that are not a multiple of the KV heads");
    }
    let scale = a.scale.map_or(1.0 / (d as f64).sqrt(), f64::from) as f32;
    // The mask: CANN's atten_mask (bool, true = masked) or real_shift (an additive bias).
    let mut atten_mask: Option<Port> = None;
    let mut pse: Option<Port> = None;
    if let Some(m) = ins.get(3).cloned().flatten() {
        let md = cx.desc(&m)?;
        if md.dims.last().copied() != Some(sk) || md.dims.len() > 4 {
            return unsupported("an attention mask shorter than the keys, or of rank above 4");
        }
        // The mask as 4-D [Bm, Hm, Sq, Sk] with Bm, Hm each 1 or full.
        let mut m4 = vec![1i64; 4 - md.dims.len()];
        m4.extend(&md.dims);
        let (bm, hm) = (if m4[0] == 1 { 1 } else { b }, if m4[1] == 1 { 1 } else { hq });
        if md.dtype == DType::Bool {
            let target = [bm, hm, sq, sk];
            let m = reshape_to(cx, &format!("{name}/mask4"), m, &m4)?;
            let m = broadcast(cx, &format!("{name}/mask_broadcast"), m, &target)?;
            let t = Desc::nd(DType::Bool, &target.map(u));
            atten_mask = Some(cx.op1(&format!("{name}/mask_not"), "LogicalNot", &[("x", Some(m))], t, vec![])?);
        } else if md.dtype.is_float() {
            // pse is 1NSS or BNSS.
            let target = [bm, hq, sq, sk];
            let m = reshape_to(cx, &format!("{name}/bias4"), m, &m4)?;
            let m = broadcast(cx, &format!("{name}/bias_broadcast"), m, &target)?;
            pse = Some(cast_to(cx, &format!("{name}/bias_cast"), m, qd.dtype)?);
        } else {
            return unsupported(format!("a {} attention mask", md.dtype));
        }
    }
    if a.is_causal {
        let c = causal_mask(cx, &format!("{name}/causal"), u(sq), u(sk))?;
        atten_mask = Some(match atten_mask {
            None => c,
            Some(m) => {
                let md = cx.desc(&m)?;
                cx.op1(&format!("{name}/mask_or_causal"), "LogicalOr", &[("x1", Some(m)), ("x2", Some(c))], md, vec![])?
            }
        });
    }
    let stat = Desc::nd(DType::F32, &[u(b), u(hq), u(sq), 8]);
    let inputs = [
        ("query", Some(q)),
        ("key", Some(k.clone())),
        ("value", Some(v.clone())),
        ("real_shift", pse.clone()),
        ("drop_mask", None),
        ("padding_mask", None),
        ("atten_mask", atten_mask),
        ("prefix", None),
        ("actual_seq_qlen", None),
        ("actual_seq_kvlen", None),
        ("q_start_idx", None),
        ("kv_start_idx", None),
    ];
    let mut attrs = vec![
        ("scale_value", Attr::Float(scale)),
        ("keep_prob", Attr::Float(1.0)),
        ("pre_tockens", Attr::Int(NO_BAND)),
        ("next_tockens", Attr::Int(NO_BAND)),
        ("head_num", Attr::Int(hq)),
        ("input_layout", Attr::str(layout)),
        ("inner_precise", Attr::Int(0)),
        ("sparse_mode", Attr::Int(0)),
    ];
    if pse.is_some() {
        // CANN releases that know pse_type default it to 1 (`scale·(QKᵀ + pse)`); 0 is the
        // additive bias after scaling, which is ONNX's mask. Written explicitly either way.
        attrs.push(("pse_type", Attr::Int(0)));
    }
    let outputs = vec![
        ("softmax_max", stat.clone()),
        ("softmax_sum", stat),
        ("softmax_out", Desc::nd(qd.dtype, &[0])),
        ("attention_out", output(outs, 0)?),
    ];
    let made = cx.op(name, "FlashAttentionScore", &inputs, outputs, attrs)?;
    let y = made.get(3).cloned().ok_or_else(|| Fail::Internal("FlashAttentionScore made no attention_out".into()))?;
    let mut result = vec![Some(y)];
    // The present key and value: K and V as [B, kv heads, S, D].
    for (i, (x, which)) in [(k, "key"), (v, "value")].into_iter().enumerate() {
        let Some(Some(want)) = outs.get(i + 1) else {
            result.push(None);
            continue;
        };
        let p = match layout {
            "BSH" => {
                let split = reshape_to(cx, &format!("{name}/present_{which}_heads"), x, &[b, sk, hk, d])?;
                cx.op1(
                    &format!("{name}/present_{which}"),
                    "TransposeD",
                    &[("x", Some(split))],
                    want.clone(),
                    vec![("perm", Attr::ListInt(vec![0, 2, 1, 3]))],
                )?
            }
            _ => x,
        };
        result.push(Some(p));
    }
    result.resize(outs.len(), None);
    Ok(result)
}

/// `x` reshaped to `dims` (no op when it has them).
fn reshape_to(cx: &mut Cx, name: &str, x: Port, dims: &[i64]) -> Result<Port, Fail> {
    let d = cx.desc(&x)?;
    if d.dims == dims {
        return Ok(x);
    }
    let out = Desc::nd(d.dtype, &dims.iter().map(|&v| v as usize).collect::<Vec<_>>());
    reshape(cx, name, x, out)
}

/// RotaryEmbedding (rotate-half form) of X (`[B, S, heads·D]` or `[B, heads, S, D]`) by the
/// cos/sin caches (`[B, S, D'/2]`, or `[positions, D'/2]` read at `position_ids` or at 0..S)
/// as RotaryMul: `y = x·r1 + rotate_half(x)·r2` with `r1 = [cos, cos]`, `r2 = [sin, sin]`;
/// interleaved pairs are gathered into halves around it.
pub(crate) fn rotary(
    cx: &mut Cx,
    name: &str,
    interleaved: bool,
    heads: i64,
    rot_dim: i64,
    ins: &[Option<Port>],
    outs: &[Option<Desc>],
) -> Result<Vec<Option<Port>>, Fail> {
    let x = input(ins, 0)?;
    let xd = cx.desc(&x)?;
    // X as 4-D, with the sequence axis and the broadcast shape of r1/r2.
    let (x4, seq_axis) = match xd.dims.as_slice() {
        &[b, s, hd] => {
            if heads <= 0 || hd % heads != 0 {
                return Err(Fail::Internal("3-D RotaryEmbedding without num_heads".into()));
            }
            (vec![b, s, heads, hd / heads], 1)
        }
        [_, _, _, _] => (xd.dims.clone(), 2),
        _ => return unsupported("RotaryEmbedding of an input that is not 3-D or 4-D"),
    };
    let (s, d) = (x4[seq_axis], x4[3]);
    let rd = if rot_dim == 0 { d } else { rot_dim };
    if rd > d || rd % 2 != 0 {
        return Err(Fail::Internal(format!("rotary_embedding_dim {rd} for head size {d}")));
    }
    // r1 or r2 from the cos or sin cache: its rows for each (batch, position), [Bc, S, rd/2],
    // doubled along the last axis and shaped to broadcast over X's heads. Shared by the
    // rotations (of Q and of K) that read the same cache at the same positions.
    let rows = |cx: &mut Cx, which: &str, cache: Port| -> Result<Port, Fail> {
        let pos = ins.get(3).cloned().flatten().map(|p| p.edge()).unwrap_or_default();
        let key = format!("rotary {} {pos} {rd} {seq_axis} {s} {}", cache.edge(), xd.dtype);
        if let Some(p) = cx.shared.get(&key) {
            return Ok(p.clone());
        }
        let cd = cx.desc(&cache)?;
        let half = rd / 2;
        let p = match (ins.get(3).cloned().flatten(), cd.dims.len()) {
            (Some(pos), _) => {
                let axis = cx.ints(&format!("{name}/{which}_axis"), &[0])?;
                let pd = cx.desc(&pos)?;
                let mut dims: Vec<usize> = pd.dims.iter().map(|&v| v as usize).collect();
                dims.push(half as usize);
                let out = Desc::nd(cd.dtype, &dims);
                let inputs = [("x", Some(cache)), ("indices", Some(pos)), ("axis", Some(axis))];
                let attrs = vec![
                    ("batch_dims", Attr::Int(0)),
                    ("is_preprocessed", Attr::Bool(false)),
                    ("negative_index_support", Attr::Bool(false)),
                ];
                cx.op1(&format!("{name}/{which}_rows"), "GatherV2", &inputs, out, attrs)?
            }
            (None, 3) => cache,
            (None, 2) if cd.dims[0] == s => cache,
            (None, 2) => {
                let out = Desc::nd(cd.dtype, &[s as usize, half as usize]);
                strided_slice(cx, &format!("{name}/{which}_rows"), cache, vec![0, 0], vec![s, half], vec![1, 1], out)?
            }
            _ => return unsupported("a cos/sin cache that is not 2-D or 3-D"),
        };
        let pd = cx.desc(&p)?;
        let bc = if pd.dims.len() == 3 { pd.dims[0] } else { 1 };
        // [cos, cos] along the last axis, shaped to broadcast over X's heads.
        let mut full = pd.dims.clone();
        if let Some(l) = full.last_mut() {
            *l = rd;
        }
        let cat = Desc::nd(pd.dtype, &full.iter().map(|&v| v as usize).collect::<Vec<_>>());
        let r = concat(cx, &format!("{name}/{which}_full"), vec![p.clone(), p], full.len() as i64 - 1, cat)?;
        let shape = if seq_axis == 1 { [bc, s, 1, rd] } else { [bc, 1, s, rd] };
        let r = reshape_to(cx, &format!("{name}/{which}_4d"), r, &shape)?;
        let r = cast_to(cx, &format!("{name}/{which}_cast"), r, xd.dtype)?;
        cx.shared.insert(key, r.clone());
        Ok(r)
    };
    let r1 = rows(cx, "cos", input(ins, 1)?)?;
    let r2 = rows(cx, "sin", input(ins, 2)?)?;
    let x4p = reshape_to(cx, &format!("{name}/x4"), x, &x4)?;
    let (rot, pass) = if rd < d {
        let mut parts = split_last(cx, &format!("{name}/split"), x4p, &[rd, d - rd])?.into_iter();
        let (r, p) = (parts.next(), parts.next());
        (r.ok_or_else(|| Fail::Internal("split".into()))?, p)
    } else {
        (x4p, None)
    };
    let rot_d = cx.desc(&rot)?;
    // Interleaved pairs (x₂ᵢ, x₂ᵢ₊₁) are rotate-half's (xᵢ, xᵢ₊ₕ) once the even elements are
    // gathered before the odd ones: [.., rd] → [.., rd/2, 2] → [.., 2, rd/2] → [.., rd], and
    // back the same way after RotaryMul.
    let swap = |cx: &mut Cx, s: &str, x: Port, from: [i64; 2]| -> Result<Port, Fail> {
        let mut split = rot_d.dims.clone();
        split.pop();
        let mut to = split.clone();
        split.extend(from);
        to.extend([from[1], from[0]]);
        let x = reshape_to(cx, &format!("{name}/{s}_pairs"), x, &split)?;
        let r = split.len() as i64;
        let perm: Vec<i64> = (0..r - 2).chain([r - 1, r - 2]).collect();
        let t = Desc::nd(rot_d.dtype, &to.iter().map(|&v| v as usize).collect::<Vec<_>>());
        let x = cx.op1(&format!("{name}/{s}"), "TransposeD", &[("x", Some(x))], t, vec![("perm", Attr::ListInt(perm))])?;
        reshape_to(cx, &format!("{name}/{s}_flat"), x, &rot_d.dims)
    };
    let rot = if interleaved { swap(cx, "deinterleave", rot, [rd / 2, 2])? } else { rot };
    let y =
        cx.op1(&format!("{name}/rotary"), "RotaryMul", &[("x", Some(rot)), ("r1", Some(r1)), ("r2", Some(r2))], rot_d.clone(), vec![])?;
    let y = if interleaved { swap(cx, "interleave", y, [2, rd / 2])? } else { y };
    let y = match pass {
        Some(p) => {
            let out = Desc::nd(xd.dtype, &x4.iter().map(|&v| v as usize).collect::<Vec<_>>());
            concat(cx, &format!("{name}/join"), vec![y, p], 3, out)?
        }
        None => y,
    };
    let want = output(outs, 0)?;
    Ok(vec![Some(reshape_to(cx, name, y, &want.dims)?)])
}
