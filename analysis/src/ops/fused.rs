//! Operations written as one pass over each `D × H × W` plane, in parallel
//! over the planes, where composing candle's element-wise operations would
//! make several full-size temporaries and run on one core: instance
//! normalisation fused with its affine and leaky ReLU, and ×2 trilinear
//! upsampling (both of PyTorch's corner conventions). Each has a
//! hand-written backward.

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp3, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::conv3d::{dims5, f32_slice, with_f32};

/// Source taps of ×2 linear upsampling along an axis of `n`: for each of the
/// `2n` outputs, the two inputs and the weight of the second. PyTorch's
/// `align_corners=True` maps output `j` to `j·(n−1)/(2n−1)`; `False` maps
/// it to `max(0, (j+½)/2 − ½)`.
fn taps(n: usize, align_corners: bool) -> Vec<(usize, usize, f32)> {
    (0..2 * n)
        .map(|j| {
            let src = if align_corners {
                if n == 1 {
                    0.0
                } else {
                    j as f64 * (n - 1) as f64 / (2 * n - 1) as f64
                }
            } else {
                ((j as f64 + 0.5) / 2.0 - 0.5).max(0.0)
            };
            let i0 = (src.floor() as usize).min(n - 1);
            let i1 = (i0 + 1).min(n - 1);
            (i0, i1, (src - i0 as f64) as f32)
        })
        .collect()
}

/// Upsamples one plane `[d, h, w]` into `out` (`[2d, 2h, 2w]`).
fn upsample_plane(x: &[f32], [d, h, w]: [usize; 3], align: bool, out: &mut [f32]) {
    let (tz, ty, tx) = (taps(d, align), taps(h, align), taps(w, align));
    let (w2, h2) = (2 * w, 2 * h);
    // along W: d·h rows of 2w
    let mut a = vec![0f32; d * h * w2];
    for (src, dst) in x.chunks_exact(w).zip(a.chunks_exact_mut(w2)) {
        for (o, &(i0, i1, l)) in dst.iter_mut().zip(&tx) {
            *o = src[i0] + l * (src[i1] - src[i0]);
        }
    }
    // along H: d slabs of 2h rows
    let mut b = vec![0f32; d * h2 * w2];
    for (src, dst) in a.chunks_exact(h * w2).zip(b.chunks_exact_mut(h2 * w2)) {
        for (row, &(i0, i1, l)) in dst.chunks_exact_mut(w2).zip(&ty) {
            let (r0, r1) = (&src[i0 * w2..][..w2], &src[i1 * w2..][..w2]);
            for ((o, &p), &q) in row.iter_mut().zip(r0).zip(r1) {
                *o = p + l * (q - p);
            }
        }
    }
    // along D
    let slab = h2 * w2;
    for (dst, &(i0, i1, l)) in out.chunks_exact_mut(slab).zip(&tz) {
        let (s0, s1) = (&b[i0 * slab..][..slab], &b[i1 * slab..][..slab]);
        for ((o, &p), &q) in dst.iter_mut().zip(s0).zip(s1) {
            *o = p + l * (q - p);
        }
    }
}

/// The adjoint of `upsample_plane`: `dy` (`[2d, 2h, 2w]`) into `dx`
/// (`[d, h, w]`).
fn upsample_plane_adjoint(dy: &[f32], [d, h, w]: [usize; 3], align: bool, dx: &mut [f32]) {
    let (tz, ty, tx) = (taps(d, align), taps(h, align), taps(w, align));
    let (w2, h2) = (2 * w, 2 * h);
    let slab = h2 * w2;
    let mut b = vec![0f32; d * slab];
    for (src, &(i0, i1, l)) in dy.chunks_exact(slab).zip(&tz) {
        for (k, &g) in src.iter().enumerate() {
            b[i0 * slab + k] += (1.0 - l) * g;
            b[i1 * slab + k] += l * g;
        }
    }
    let mut a = vec![0f32; d * h * w2];
    for (src, dst) in b.chunks_exact(slab).zip(a.chunks_exact_mut(h * w2)) {
        for (row, &(i0, i1, l)) in src.chunks_exact(w2).zip(&ty) {
            for (k, &g) in row.iter().enumerate() {
                dst[i0 * w2 + k] += (1.0 - l) * g;
                dst[i1 * w2 + k] += l * g;
            }
        }
    }
    for (src, dst) in a.chunks_exact(w2).zip(dx.chunks_exact_mut(w)) {
        dst.fill(0.0);
        for (&g, &(i0, i1, l)) in src.iter().zip(&tx) {
            dst[i0] += (1.0 - l) * g;
            dst[i1] += l * g;
        }
    }
}

struct Upsample2 {
    align_corners: bool,
    adjoint: bool,
}

impl CustomOp1 for Upsample2 {
    fn name(&self) -> &'static str {
        "upsample_trilinear_2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "upsample input")?;
        let &[n, c, d, h, w] = l.dims() else {
            bail!("upsample: expected N×C×D×H×W, got {:?}", l.dims());
        };
        let (plane, out_dims) = if self.adjoint {
            if d % 2 + h % 2 + w % 2 != 0 {
                bail!("upsample backward: odd gradient {:?}", l.dims());
            }
            ([d / 2, h / 2, w / 2], [n, c, d / 2, h / 2, w / 2])
        } else {
            ([d, h, w], [n, c, 2 * d, 2 * h, 2 * w])
        };
        let small: usize = plane.iter().product();
        let mut out = vec![0f32; n * c * small * 8];
        if self.adjoint {
            out.par_chunks_mut(small)
                .zip(x.par_chunks(small * 8))
                .for_each(|(dx, dy)| upsample_plane_adjoint(dy, plane, self.align_corners, dx));
        } else {
            out.par_chunks_mut(small * 8)
                .zip(x.par_chunks(small))
                .for_each(|(y, x)| upsample_plane(x, plane, self.align_corners, y));
        }
        Ok((CpuStorage::F32(out), Shape::from(out_dims.to_vec())))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let adjoint = Upsample2 {
            align_corners: self.align_corners,
            adjoint: true,
        };
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(&adjoint)?))
    }
}

/// Trilinear upsampling by 2 on every spatial axis, as PyTorch's
/// `interpolate(scale_factor=2, mode="trilinear", align_corners=…)`.
pub fn upsample_trilinear_2_with(x: &Tensor, align_corners: bool) -> Result<Tensor> {
    dims5(x, "upsample input")?;
    x.contiguous()?.apply_op1(Upsample2 {
        align_corners,
        adjoint: false,
    })
}

/// Mean and 1/σ of one plane (biased variance), accumulated in f64.
fn moments(x: &[f32], eps: f64) -> (f32, f32) {
    // One pass: Σx and Σx² in f64 per block of 1024 (exact enough for
    // activations; a shifted origin keeps cancellation small).
    let n = x.len() as f64;
    let shift = x.first().copied().unwrap_or(0.0);
    let (mut s1, mut s2) = (0f64, 0f64);
    for block in x.chunks(1024) {
        let (mut a, mut b) = (0f32, 0f32);
        for &v in block {
            let d = v - shift;
            a += d;
            b += d * d;
        }
        s1 += a as f64;
        s2 += b as f64;
    }
    let mean = s1 / n;
    let var = (s2 / n - mean * mean).max(0.0);
    (
        (mean + shift as f64) as f32,
        (1.0 / (var + eps).sqrt()) as f32,
    )
}

struct NormAct {
    eps: f64,
    slope: Option<f32>,
}

impl CustomOp3 for NormAct {
    fn name(&self) -> &'static str {
        "instance_norm_act"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(xs, xl, "instance norm input")?;
        let gamma = f32_slice(gs, gl, "instance norm weight")?;
        let beta = f32_slice(bs, bl, "instance norm bias")?;
        let &[_, c, d, h, w] = xl.dims() else {
            bail!("instance norm: expected N×C×D×H×W, got {:?}", xl.dims());
        };
        if gamma.len() != c || beta.len() != c {
            bail!("instance norm: {c} channels but {} weights", gamma.len());
        }
        let plane = d * h * w;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(plane)
            .zip(x.par_chunks(plane))
            .enumerate()
            .for_each(|(p, (y, x))| {
                let (mean, inv) = moments(x, self.eps);
                let (a, b) = (gamma[p % c] * inv, beta[p % c] - gamma[p % c] * inv * mean);
                match self.slope {
                    Some(s) => {
                        for (o, &v) in y.iter_mut().zip(x) {
                            let z = a * v + b;
                            *o = if z > 0.0 { z } else { s * z };
                        }
                    }
                    None => {
                        for (o, &v) in y.iter_mut().zip(x) {
                            *o = a * v + b;
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [_, c, d, h, w] = dims5(x, "instance norm input")?;
        let plane = d * h * w;
        let gamma_v = gamma.to_vec1::<f32>()?;
        let beta_v = beta.to_vec1::<f32>()?;
        let mut dx = vec![0f32; x.elem_count()];
        // per plane: (Σ dz, Σ dz·x̂)
        let sums: Vec<(f64, f64)> = with_f32(x, "instance norm input", |x| {
            with_f32(dy, "instance norm gradient", |dy| {
                dx.par_chunks_mut(plane)
                    .zip(x.par_chunks(plane).zip(dy.par_chunks(plane)))
                    .enumerate()
                    .map(|(p, (dx, (x, dy)))| {
                        let (mean, inv) = moments(x, self.eps);
                        let (g, b) = (gamma_v[p % c], beta_v[p % c]);
                        // dz into dx first, then the normalisation's Jacobian
                        let (mut s1, mut s2) = (0f64, 0f64);
                        for ((o, &v), &gy) in dx.iter_mut().zip(x).zip(dy) {
                            let xh = (v - mean) * inv;
                            let dz = match self.slope {
                                Some(s) if g * xh + b <= 0.0 => s * gy,
                                _ => gy,
                            };
                            *o = dz;
                            s1 += dz as f64;
                            s2 += (dz * xh) as f64;
                        }
                        let (m1, m2) = ((s1 / plane as f64) as f32, (s2 / plane as f64) as f32);
                        let k = g * inv;
                        for (o, &v) in dx.iter_mut().zip(x) {
                            let xh = (v - mean) * inv;
                            *o = k * (*o - m1 - xh * m2);
                        }
                        (s1, s2)
                    })
                    .collect()
            })
        })??;
        let (mut dgamma, mut dbeta) = (vec![0f32; c], vec![0f32; c]);
        for (p, (s1, s2)) in sums.into_iter().enumerate() {
            dbeta[p % c] += s1 as f32;
            dgamma[p % c] += s2 as f32;
        }
        let dev = Device::Cpu;
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), &dev)?),
            Some(Tensor::from_vec(dgamma, c, &dev)?),
            Some(Tensor::from_vec(dbeta, c, &dev)?),
        ))
    }
}

/// Instance normalisation (ε, biased variance) with its per-channel affine
/// `γ·x̂ + β`, followed by leaky ReLU with `slope` when given (0 is ReLU):
/// PyTorch's `leaky_relu(InstanceNorm3d(affine=True)(x), slope)`.
pub fn instance_norm_act(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    slope: Option<f64>,
) -> Result<Tensor> {
    dims5(x, "instance norm input")?;
    x.contiguous()?.apply_op3(
        &gamma.contiguous()?,
        &beta.contiguous()?,
        NormAct {
            eps,
            slope: slope.map(|s| s as f32),
        },
    )
}

/// Fills `out` plane by plane, in parallel, from `source(i)` (plane `i`).
fn gather_planes<'a>(out: &mut [f32], plane: usize, source: impl Fn(usize) -> &'a [f32] + Sync) {
    out.par_chunks_mut(plane)
        .enumerate()
        .for_each(|(i, dst)| dst.copy_from_slice(&source(i)[..plane]));
}

struct CatChannels;

impl candle_core::CustomOp2 for CatChannels {
    fn name(&self) -> &'static str {
        "cat_channels"
    }

    fn cpu_fwd(
        &self,
        as_: &CpuStorage,
        al: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let a = f32_slice(as_, al, "cat input")?;
        let b = f32_slice(bs, bl, "cat input")?;
        let (&[n, ca, d, h, w], &[nb, cb, db, hb, wb]) = (al.dims(), bl.dims()) else {
            bail!(
                "cat: expected N×C×D×H×W, got {:?} and {:?}",
                al.dims(),
                bl.dims()
            );
        };
        if (n, d, h, w) != (nb, db, hb, wb) {
            bail!(
                "cat: {:?} and {:?} differ beyond the channels",
                al.dims(),
                bl.dims()
            );
        }
        let plane = d * h * w;
        let c = ca + cb;
        let mut out = vec![0f32; n * c * plane];
        gather_planes(&mut out, plane, |i| {
            let (item, ch) = (i / c, i % c);
            if ch < ca {
                &a[(item * ca + ch) * plane..]
            } else {
                &b[(item * cb + ch - ca) * plane..]
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((n, c, d, h, w))))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let [n, ca, d, h, w] = dims5(a, "cat input")?;
        let cb = b.dim(1)?;
        let plane = d * h * w;
        let c = ca + cb;
        let (da, db) = with_f32(dy, "cat gradient", |g| {
            let mut da = vec![0f32; n * ca * plane];
            let mut db = vec![0f32; n * cb * plane];
            gather_planes(&mut da, plane, |i| &g[((i / ca) * c + i % ca) * plane..]);
            gather_planes(&mut db, plane, |i| {
                &g[((i / cb) * c + ca + i % cb) * plane..]
            });
            (da, db)
        })?;
        Ok((
            Some(Tensor::from_vec(da, a.shape(), a.device())?),
            Some(Tensor::from_vec(db, b.shape(), b.device())?),
        ))
    }
}

/// `torch.cat([a, b], dim=1)` of two `N × C × D × H × W` tensors, copying
/// planes in parallel (forward and backward).
pub fn cat_channels(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.contiguous()?.apply_op2(&b.contiguous()?, CatChannels)
}

struct ScaleByMap;

impl candle_core::CustomOp2 for ScaleByMap {
    fn name(&self) -> &'static str {
        "scale_by_map"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        as_: &CpuStorage,
        al: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(xs, xl, "scale input")?;
        let a = f32_slice(as_, al, "scale map")?;
        let (&[n, c, d, h, w], &[na, 1, da, ha, wa]) = (xl.dims(), al.dims()) else {
            bail!(
                "scale: expected N×C×D×H×W and N×1×D×H×W, got {:?}, {:?}",
                xl.dims(),
                al.dims()
            );
        };
        if (n, d, h, w) != (na, da, ha, wa) {
            bail!("scale: map {:?} does not fit {:?}", al.dims(), xl.dims());
        }
        let plane = d * h * w;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(plane)
            .zip(x.par_chunks(plane))
            .enumerate()
            .for_each(|(p, (y, x))| {
                let m = &a[(p / c) * plane..][..plane];
                for ((o, &v), &s) in y.iter_mut().zip(x).zip(m) {
                    *o = v * s;
                }
            });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let [n, c, d, h, w] = dims5(x, "scale input")?;
        let plane = d * h * w;
        let (dx, da) = with_f32(x, "scale input", |x| {
            with_f32(a, "scale map", |a| {
                with_f32(dy, "scale gradient", |g| {
                    let mut dx = vec![0f32; x.len()];
                    dx.par_chunks_mut(plane)
                        .zip(g.par_chunks(plane))
                        .enumerate()
                        .for_each(|(p, (o, g))| {
                            let m = &a[(p / c) * plane..][..plane];
                            for ((o, &g), &s) in o.iter_mut().zip(g).zip(m) {
                                *o = g * s;
                            }
                        });
                    // dα = Σ_c dy·x, in blocks of voxels
                    let mut da = vec![0f32; n * plane];
                    const BLOCK: usize = 4096;
                    da.par_chunks_mut(plane)
                        .enumerate()
                        .for_each(|(item, dplane)| {
                            dplane
                                .par_chunks_mut(BLOCK)
                                .enumerate()
                                .for_each(|(j, out)| {
                                    for ch in 0..c {
                                        let base = (item * c + ch) * plane + j * BLOCK;
                                        let (gs, xs) =
                                            (&g[base..][..out.len()], &x[base..][..out.len()]);
                                        for ((o, &gv), &xv) in out.iter_mut().zip(gs).zip(xs) {
                                            *o += gv * xv;
                                        }
                                    }
                                })
                        });
                    (dx, da)
                })
            })
        })???;
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), x.device())?),
            Some(Tensor::from_vec(da, a.shape(), a.device())?),
        ))
    }
}

/// `x · α` for `x`: `N × C × D × H × W` and one map per item `α`: `N × 1 ×
/// D × H × W` (the attention gate's scaling of its skip features), in one
/// parallel pass forward and backward.
pub fn scale_by_map(x: &Tensor, alpha: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&alpha.contiguous()?, ScaleByMap)
}
