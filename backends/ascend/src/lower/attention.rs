//! Attention that FlashAttentionScore cannot compute, as its defining ops: a KV cache (the
//! past keys and values concatenated before the new ones, with the present outputs), K and V
//! of different head sizes, logit soft-capping, and the QK-product output. In BNSD:
//! `S = scale·QKᵀ` (BatchMatMulV2), the mask (an additive float bias, or SelectV2 of a bool
//! mask against -∞), causality offset by the cached length, `c·tanh(S/c)`, SoftmaxV2 over the
//! keys, and `P·V`. Grouped KV heads are broadcast to the query heads.

use super::ops::{concat, input, output, reshape, Outs};
use super::transformer::{broadcast, cast_to, AttentionAttrs};
use super::{unsupported, Cx, Fail};
use crate::ge::builder::{Desc, Port};
use crate::ge::Attr;
use kiln_ir::{DType, Tensor};

fn nd(d: DType, dims: &[i64]) -> Desc {
    Desc::nd(d, &dims.iter().map(|&v| v as usize).collect::<Vec<_>>())
}

/// `x` (`[B, S, H·D]` or `[B, H, S, D]`) as `[B, H, S, D]`.
fn heads_first(cx: &mut Cx, name: &str, x: Port, heads: i64) -> Result<Port, Fail> {
    let d = cx.desc(&x)?;
    let &[b, s, hd] = d.dims.as_slice() else { return Ok(x) };
    if heads <= 0 || hd % heads != 0 {
        return Err(Fail::Internal("3-D attention without its head counts".into()));
    }
    let split = reshape(cx, &format!("{name}_heads"), x, nd(d.dtype, &[b, s, heads, hd / heads]))?;
    let perm = Attr::ListInt(vec![0, 2, 1, 3]);
    cx.op1(name, "TransposeD", &[("x", Some(split))], nd(d.dtype, &[b, heads, s, hd / heads]), vec![("perm", perm)])
}

/// `[B, hk, S, D]` repeated to `[B, hk·g, S, D]` (each KV head serves g query heads).
fn repeat_heads(cx: &mut Cx, name: &str, x: Port, g: i64) -> Result<Port, Fail> {
    if g == 1 {
        return Ok(x);
    }
    let d = cx.desc(&x)?;
    let [b, hk, s, dh] = d.dims[..] else { return Err(Fail::Internal("KV heads of rank other than 4".into())) };
    let one = reshape(cx, &format!("{name}/unsqueeze"), x, nd(d.dtype, &[b, hk, 1, s, dh]))?;
    let wide = broadcast(cx, &format!("{name}/broadcast"), one, &[b, hk, g, s, dh])?;
    reshape(cx, name, wide, nd(d.dtype, &[b, hk * g, s, dh]))
}

pub(crate) fn attention(cx: &mut Cx, name: &str, a: &AttentionAttrs, ins: &[Option<Port>], outs: &[Option<Desc>]) -> Result<Outs, Fail> {
    if ins.get(6).is_some_and(Option::is_some) {
        return unsupported("nonpad_kv_seqlen (FlashAttentionScore's actual_seq_kvlen) is not mapped yet");
    }
    if a.zero_undefined_rows {
        return unsupported("zero_undefined_rows: the decomposed attention leaves fully masked rows NaN");
    }
    let at = |s: &str| format!("{name}/{s}");
    let (q, k, v) = (input(ins, 0)?, input(ins, 1)?, input(ins, 2)?);
    let ranks = [cx.desc(&q)?.dims.len(), cx.desc(&k)?.dims.len(), cx.desc(&v)?.dims.len()];
    if ranks != [3; 3] && ranks != [4; 3] {
        return unsupported("attention inputs that are neither all 3-D nor all 4-D");
    }
    let three_d = ranks[0] == 3;
    let q = heads_first(cx, &at("q"), q, a.q_heads)?;
    let k = heads_first(cx, &at("k"), k, a.kv_heads)?;
    let v = heads_first(cx, &at("v"), v, a.kv_heads)?;
    let qd = cx.desc(&q)?;
    let dt = qd.dtype;
    let past_len = match ins.get(4).cloned().flatten() {
        Some(p) => cx.desc(&p)?.dims.get(2).copied().unwrap_or(0),
        None => 0,
    };
    // The present keys and values: the cache, then the new ones.
    let mut present = vec![];
    for (i, x) in [(4, k), (5, v)] {
        let p = match ins.get(i).cloned().flatten() {
            Some(past) => {
                let (pd, xd) = (cx.desc(&past)?, cx.desc(&x)?);
                let mut dims = xd.dims.clone();
                dims[2] += pd.dims[2];
                concat(cx, &at(if i == 4 { "present_key" } else { "present_value" }), vec![past, x], 2, nd(dt, &dims))?
            }
            None => x,
        };
        present.push(p);
    }
    let (kd, vd) = (cx.desc(&present[0])?, cx.desc(&present[1])?);
    let (b, hq, sq, d) = (qd.dims[0], qd.dims[1], qd.dims[2], qd.dims[3]);
    let (hk, sk, dv) = (kd.dims[1], kd.dims[2], vd.dims[3]);
    if hk == 0 || hq % hk != 0 || vd.dims[1] != hk || vd.dims[2] != sk || kd.dims[3] != d {
        return Err(Fail::Internal(format!("attention shapes Q {:?}, K {:?}, V {:?}", qd.dims, kd.dims, vd.dims)));
    }
    let k_all = repeat_heads(cx, &at("k_groups"), present[0].clone(), hq / hk)?;
    let v_all = repeat_heads(cx, &at("v_groups"), present[1].clone(), hq / hk)?;
    let sd = nd(dt, &[b, hq, sq, sk]);
    let mm = |adj2: bool| vec![("adj_x1", Attr::Bool(false)), ("adj_x2", Attr::Bool(adj2)), ("offset_x", Attr::Int(0))];
    let qk = cx.op1(
        &at("qk"),
        "BatchMatMulV2",
        &[("x1", Some(q)), ("x2", Some(k_all)), ("bias", None), ("offset_w", None)],
        sd.clone(),
        mm(true),
    )?;
    let scale = a.scale.map_or(1.0 / (d as f64).sqrt(), f64::from);
    let sc = cx.scalar(&at("scale"), dt, scale)?;
    let raw = cx.op1(&at("scaled"), "Mul", &[("x1", Some(qk)), ("x2", Some(sc))], sd.clone(), vec![])?;
    let mut s = raw.clone();
    let neg_inf = cx.scalar(&at("neg_inf"), dt, f64::NEG_INFINITY)?;
    if let Some(m) = ins.get(3).cloned().flatten() {
        let md = cx.desc(&m)?;
        if md.dims.last().copied() != Some(sk) {
            return unsupported("an attention mask shorter than the keys");
        }
        s = if md.dtype == DType::Bool {
            let inputs = [("condition", Some(m)), ("x1", Some(s)), ("x2", Some(neg_inf.clone()))];
            cx.op1(&at("masked"), "SelectV2", &inputs, sd.clone(), vec![])?
        } else {
            let m = cast_to(cx, &at("bias_cast"), m, dt)?;
            cx.op1(&at("biased"), "Add", &[("x1", Some(s)), ("x2", Some(m))], sd.clone(), vec![])?
        };
    }
    if a.is_causal {
        // Query i sees key j when j − past ≤ i.
        let allowed: Vec<bool> = (0..(sq * sk) as usize).map(|f| (f as i64 % sk) - past_len <= f as i64 / sk).collect();
        let t = Tensor::new(vec![sq as usize, sk as usize], kiln_ir::Data::Bool(allowed)).map_err(|e| Fail::Internal(e.to_string()))?;
        let c = cx.constant(&at("causal"), &t)?;
        s = cx.op1(
            &at("causal_masked"),
            "SelectV2",
            &[("condition", Some(c)), ("x1", Some(s)), ("x2", Some(neg_inf))],
            sd.clone(),
            vec![],
        )?;
    }
    let after_mask = s.clone();
    if a.softcap > 0.0 {
        let inv = cx.scalar(&at("softcap_inv"), dt, 1.0 / f64::from(a.softcap))?;
        let cap = cx.scalar(&at("softcap"), dt, f64::from(a.softcap))?;
        let t = cx.op1(&at("softcap_in"), "Mul", &[("x1", Some(s)), ("x2", Some(inv))], sd.clone(), vec![])?;
        let t = cx.op1(&at("softcap_tanh"), "Tanh", &[("x", Some(t))], sd.clone(), vec![])?;
        s = cx.op1(&at("capped"), "Mul", &[("x1", Some(t)), ("x2", Some(cap))], sd.clone(), vec![])?;
    }
    let capped = s.clone();
    let p = cx.op1(
        &at("softmax"),
        "SoftmaxV2",
        &[("x", Some(s))],
        sd,
        vec![("axes", Attr::ListInt(vec![-1])), ("half_to_float", Attr::Bool(false))],
    )?;
    let y4 = cx.op1(
        &at("pv"),
        "BatchMatMulV2",
        &[("x1", Some(p.clone())), ("x2", Some(v_all)), ("bias", None), ("offset_w", None)],
        nd(dt, &[b, hq, sq, dv]),
        mm(false),
    )?;
    let y = if three_d {
        let t = cx.op1(
            &at("y_heads"),
            "TransposeD",
            &[("x", Some(y4))],
            nd(dt, &[b, sq, hq, dv]),
            vec![("perm", Attr::ListInt(vec![0, 2, 1, 3]))],
        )?;
        reshape(cx, name, t, output(outs, 0)?)?
    } else {
        y4
    };
    let mut result = vec![Some(y)];
    for (i, p) in present.into_iter().enumerate() {
        result.push(outs.get(i + 1).cloned().flatten().map(|_| p));
    }
    if let Some(Some(_)) = outs.get(3) {
        result.push(Some(match a.qk_output_mode {
            0 => raw,
            1 => after_mask,
            2 => capped,
            3 => p,
            m => return unsupported(format!("qk_matmul_output_mode {m}")),
        }));
    }
    result.truncate(outs.len());
    result.resize(outs.len(), None);
    Ok(result)
}
