//! `MaxPool3d` with a 2³ window and stride 2 (odd trailing voxels are
//! dropped, as in PyTorch), with its backward: the gradient goes to the
//! first maximum of each window.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::conv3d::{dims5, f32_slice, with_f32};

struct MaxPool2;

/// For each output voxel of one plane, the index (within the plane) of the
/// first maximum of its window.
fn argmax_plane(x: &[f32], [d, h, w]: [usize; 3], out: &mut [usize]) {
    let (od, oh, ow) = (d / 2, h / 2, w / 2);
    for z in 0..od {
        for y in 0..oh {
            for xx in 0..ow {
                let mut best = ((2 * z) * h + 2 * y) * w + 2 * xx;
                for dz in 0..2 {
                    for dy in 0..2 {
                        for dx in 0..2 {
                            let i = ((2 * z + dz) * h + 2 * y + dy) * w + 2 * xx + dx;
                            // NaN wins, so that it propagates as in PyTorch.
                            if x[i] > x[best] || (x[i].is_nan() && !x[best].is_nan()) {
                                best = i;
                            }
                        }
                    }
                }
                out[(z * oh + y) * ow + xx] = best;
            }
        }
    }
}

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "max_pool3d_2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "max_pool3d input")?;
        let [n, c, d, h, w] = match l.dims() {
            &[n, c, d, h, w] => [n, c, d, h, w],
            other => candle_core::bail!("max_pool3d: expected N×C×D×H×W, got {other:?}"),
        };
        let (plane, oplane) = (d * h * w, (d / 2) * (h / 2) * (w / 2));
        let mut y = vec![0f32; n * c * oplane];
        if oplane > 0 {
            y.par_chunks_mut(oplane).enumerate().for_each(|(p, out)| {
                let src = &x[p * plane..(p + 1) * plane];
                let mut idx = vec![0usize; oplane];
                argmax_plane(src, [d, h, w], &mut idx);
                out.iter_mut().zip(&idx).for_each(|(o, &i)| *o = src[i]);
            });
        }
        Ok((CpuStorage::F32(y), Shape::from((n, c, d / 2, h / 2, w / 2))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let [n, c, d, h, w] = dims5(x, "max_pool3d input")?;
        let (plane, oplane) = (d * h * w, (d / 2) * (h / 2) * (w / 2));
        let mut dx = vec![0f32; n * c * plane];
        if oplane > 0 {
            with_f32(x, "max_pool3d input", |xs| {
                with_f32(dy, "max_pool3d gradient", |dys| {
                    dx.par_chunks_mut(plane).enumerate().for_each(|(p, out)| {
                        let mut idx = vec![0usize; oplane];
                        argmax_plane(&xs[p * plane..(p + 1) * plane], [d, h, w], &mut idx);
                        for (o, &i) in idx.iter().enumerate() {
                            out[i] += dys[p * oplane + o];
                        }
                    })
                })
            })??;
        }
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// 2³ max pooling with stride 2 of `N × C × D × H × W`.
pub fn max_pool3d_2(x: &Tensor) -> Result<Tensor> {
    dims5(x, "max_pool3d input")?;
    x.contiguous()?.apply_op1(MaxPool2)
}
