//! NonMaxSuppression: per batch and class, boxes sorted by score (ties: lower index first)
//! are kept unless they overlap an already kept box by more than `iou_threshold`.

use super::elementwise::tensor;
use super::{invalid, opt, req, DimNamer, InType, OpError, TensorType};
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

pub(crate) fn infer_roi_align(out_h: i64, out_w: i64, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let (x, rois) = (req(ins, 0)?, req(ins, 1)?);
    if x.shape.rank() != 4 || rois.shape.rank() != 2 {
        return invalid("RoiAlign needs X [N, C, H, W] and rois [R, 4]");
    }
    let dims = vec![rois.shape.0[0].clone(), x.shape.0[1].clone(), Dim::Known(out_h.max(0) as usize), Dim::Known(out_w.max(0) as usize)];
    Ok(vec![TensorType::new(x.dtype, Shape(dims))])
}

/// The four bilinear taps (flat index, weight) of a sampling point, or none outside the map.
fn bilinear_taps(y: f64, x: f64, h: usize, w: usize) -> Option<[(usize, f64); 4]> {
    if y < -1.0 || y > h as f64 || x < -1.0 || x > w as f64 {
        return None;
    }
    // Per axis: the lower and upper neighbours and the weight of the upper one, clamped at the
    // last row/column (where both neighbours are that row/column).
    let axis = |v: f64, n: usize| -> (usize, usize, f64) {
        let v = v.max(0.0);
        let lo = v as usize;
        if lo >= n - 1 {
            (n - 1, n - 1, 0.0)
        } else {
            (lo, lo + 1, v - lo as f64)
        }
    };
    let ((y0, y1, ly), (x0, x1, lx)) = (axis(y, h), axis(x, w));
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    Some([(y0 * w + x0, hy * hx), (y0 * w + x1, hy * lx), (y1 * w + x0, ly * hx), (y1 * w + x1, ly * lx)])
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn eval_roi_align(
    half_pixel: bool,
    max_mode: bool,
    out_h: i64,
    out_w: i64,
    sampling_ratio: i64,
    spatial_scale: f32,
    ins: &[Option<&Tensor>],
) -> Result<Tensor, OpError> {
    let (x, rois, batch) = (*req(ins, 0)?, *req(ins, 1)?, *req(ins, 2)?);
    let [n, c, h, w] = *x.dims() else { return invalid("RoiAlign X must be [N, C, H, W]") };
    let [r, 4] = *rois.dims() else { return invalid("RoiAlign rois must be [R, 4]") };
    let (ph, pw) = (out_h.max(0) as usize, out_w.max(0) as usize);
    if h == 0 || w == 0 || batch.numel() != r {
        return invalid("RoiAlign: empty feature map or batch_indices not matching rois");
    }
    let (xv, rv, bv) = (x.to_f64(), rois.to_f64(), batch.to_i64());
    let (scale, off) = (spatial_scale as f64, if half_pixel { 0.5 } else { 0.0 });
    let mut y = vec![0f64; r * c * ph * pw];
    for ri in 0..r {
        let b = usize::try_from(bv[ri])
            .ok()
            .filter(|&b| b < n)
            .ok_or_else(|| OpError::Invalid(format!("RoiAlign: batch index {} out of range", bv[ri])))?;
        let roi = &rv[ri * 4..ri * 4 + 4];
        let (x0, y0) = (roi[0] * scale - off, roi[1] * scale - off);
        let (mut rw, mut rh) = (roi[2] * scale - off - x0, roi[3] * scale - off - y0);
        if !half_pixel {
            rw = rw.max(1.0);
            rh = rh.max(1.0);
        }
        let (bh, bw) = (rh / ph.max(1) as f64, rw / pw.max(1) as f64);
        let gh = if sampling_ratio > 0 { sampling_ratio as usize } else { (rh / ph.max(1) as f64).ceil() as usize };
        let gw = if sampling_ratio > 0 { sampling_ratio as usize } else { (rw / pw.max(1) as f64).ceil() as usize };
        let count = (gh * gw).max(1) as f64;
        for ch in 0..c {
            let plane = &xv[(b * c + ch) * h * w..][..h * w];
            for py in 0..ph {
                for px in 0..pw {
                    let mut acc: Option<f64> = None;
                    for iy in 0..gh {
                        let yy = y0 + py as f64 * bh + (iy as f64 + 0.5) * bh / gh as f64;
                        for ix in 0..gw {
                            let xx = x0 + px as f64 * bw + (ix as f64 + 0.5) * bw / gw as f64;
                            let taps = bilinear_taps(yy, xx, h, w);
                            let v = if max_mode {
                                taps.map_or(0.0, |t| t.iter().map(|&(i, wt)| wt * plane[i]).fold(f64::NEG_INFINITY, f64::max))
                            } else {
                                taps.map_or(0.0, |t| t.iter().map(|&(i, wt)| wt * plane[i]).sum())
                            };
                            acc = Some(match (acc, max_mode) {
                                (None, _) => v,
                                (Some(a), true) => a.max(v),
                                (Some(a), false) => a + v,
                            });
                        }
                    }
                    let v = acc.unwrap_or(0.0);
                    y[((ri * c + ch) * ph + py) * pw + px] = if max_mode { v } else { v / count };
                }
            }
        }
    }
    Ok(tensor(vec![r, c, ph, pw], Data::from_f64(x.dtype(), &y)))
}
