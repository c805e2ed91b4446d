//! NonMaxSuppression: per batch and class, boxes sorted by score (ties: lower index first)
//! are kept unless they overlap an already kept box by more than `iou_threshold`.

use super::elementwise::tensor;
use super::{invalid, opt, req, DimNamer, OpError, TensorType};
use crate::dtype::DType;
use crate::shape::{Dim, Shape};
use crate::tensor::{Data, Tensor};

pub(crate) fn infer_nms(names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    Ok(vec![TensorType::new(DType::I64, Shape(vec![names.fresh(), Dim::Known(3)]))])
}

/// (x_min, x_max, y_min, y_max) of a box in either encoding.
fn extent(b: &[f64], center: bool) -> (f64, f64, f64, f64) {
    if center {
        let (hw, hh) = (b[2] / 2.0, b[3] / 2.0);
        (b[0] - hw, b[0] + hw, b[1] - hh, b[1] + hh)
    } else {
        (b[1].min(b[3]), b[1].max(b[3]), b[0].min(b[2]), b[0].max(b[2]))
    }
}

fn suppresses(a: &[f64], b: &[f64], center: bool, threshold: f64) -> bool {
    let (ax0, ax1, ay0, ay1) = extent(a, center);
    let (bx0, bx1, by0, by1) = extent(b, center);
    let (ix0, ix1, iy0, iy1) = (ax0.max(bx0), ax1.min(bx1), ay0.max(by0), ay1.min(by1));
    if ix1 <= ix0 || iy1 <= iy0 {
        return false;
    }
    let inter = (ix1 - ix0) * (iy1 - iy0);
    let (area_a, area_b) = ((ax1 - ax0) * (ay1 - ay0), (bx1 - bx0) * (by1 - by0));
    let union = area_a + area_b - inter;
    if area_a <= 0.0 || area_b <= 0.0 || union <= 0.0 {
        return false;
    }
    inter / union > threshold
}

pub(crate) fn eval_nms(center: bool, ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let (boxes, scores) = (*req(ins, 0)?, *req(ins, 1)?);
    let ([nb, nbox, four], [nb2, nc, nbox2]) = (
        <[usize; 3]>::try_from(boxes.dims()).map_err(|_| OpError::Invalid("boxes must be [batch, boxes, 4]".into()))?,
        <[usize; 3]>::try_from(scores.dims()).map_err(|_| OpError::Invalid("scores must be [batch, classes, boxes]".into()))?,
    );
    if four != 4 || nb != nb2 || nbox != nbox2 {
        return invalid(format!("NonMaxSuppression: boxes {:?} and scores {:?} disagree", boxes.dims(), scores.dims()));
    }
    let scalar = |i: usize| opt(ins, i).and_then(|t| t.to_f64().first().copied());
    let max_out = scalar(2).unwrap_or(0.0).max(0.0) as usize;
    let iou = scalar(3).unwrap_or(0.0);
    let score_threshold = scalar(4);
    let (bv, sv) = (boxes.to_f64(), scores.to_f64());
    let mut out = vec![];
    for b in 0..nb {
        for c in 0..nc {
            let s = &sv[(b * nc + c) * nbox..][..nbox];
            let mut cand: Vec<usize> = (0..nbox).filter(|&i| score_threshold.is_none_or(|t| s[i] > t)).collect();
            cand.sort_by(|&i, &j| s[j].total_cmp(&s[i]).then(i.cmp(&j)));
            let mut kept: Vec<usize> = vec![];
            for i in cand {
                if kept.len() >= max_out {
                    break;
                }
                let bi = &bv[(b * nbox + i) * 4..][..4];
                if kept.iter().all(|&k| !suppresses(bi, &bv[(b * nbox + k) * 4..][..4], center, iou)) {
                    kept.push(i);
                    out.extend([b as i64, c as i64, i as i64]);
                }
            }
        }
    }
    Ok(tensor(vec![out.len() / 3, 3], Data::I64(out)))
}
