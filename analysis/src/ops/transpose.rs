//! `ConvTranspose3d` with a 2³ kernel and stride 2, with bias: each input
//! voxel paints its own 2³ block of the output. Per input `z`-slice, one
//! product `P = Wᵀ · X_z` (`C_out·8 × H·W`) scattered into output slices
//! `2z` and `2z + 1`, in parallel over the slices; the backward gathers the
//! same blocks back (`dX_z = W · G_z`, `dW = Σ X_z · G_zᵀ`).
#![allow(unsafe_code)] // gemm on slices checked here

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::conv3d::{dims5, f32_slice, with_f32};

/// `c = a · b` (`m × k` times `k × n`, all row-major with the given row
/// strides), or `c += a · b` when `accumulate`.
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_rs: usize,
    b: &[f32],
    b_rs: usize,
    c: &mut [f32],
    accumulate: bool,
) {
    assert!(m == 0 || a.len() >= (m - 1) * a_rs + k);
    assert!(k == 0 || b.len() >= (k - 1) * b_rs + n);
    assert!(c.len() >= m * n);
    // SAFETY: the bounds of all three operands are checked above.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            1,
            a_rs as isize,
            b.as_ptr(),
            1,
            b_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// The transposed product's rows `(co, a, b, c)` for one input slice, to
/// and from the output's slices `2z`, `2z+1` (`out2`: `C_out × 2 × 2H × 2W`
/// laid out as the output's own planes, given per channel).
fn scatter(p: &[f32], c_out: usize, [h, w]: [usize; 2], bias: &[f32], out: &mut [&mut [f32]]) {
    let hw = h * w;
    for co in 0..c_out {
        for a in 0..2 {
            let dst = &mut out[co * 2 + a];
            for b in 0..2 {
                for c in 0..2 {
                    let row = &p[((co * 8) + a * 4 + b * 2 + c) * hw..][..hw];
                    for y in 0..h {
                        let o = (2 * y + b) * 2 * w + c;
                        for (x, &v) in row[y * w..(y + 1) * w].iter().enumerate() {
                            dst[o + 2 * x] = v + bias[co];
                        }
                    }
                }
            }
        }
    }
}

fn gather(g: &[&[f32]], c_out: usize, [h, w]: [usize; 2], p: &mut [f32]) {
    let hw = h * w;
    for co in 0..c_out {
        for a in 0..2 {
            let src = g[co * 2 + a];
            for b in 0..2 {
                for c in 0..2 {
                    let row = &mut p[((co * 8) + a * 4 + b * 2 + c) * hw..][..hw];
                    for y in 0..h {
                        let o = (2 * y + b) * 2 * w + c;
                        for (x, v) in row[y * w..(y + 1) * w].iter_mut().enumerate() {
                            *v = src[o + 2 * x];
                        }
                    }
                }
            }
        }
    }
}

struct ConvTranspose2;

impl CustomOp3 for ConvTranspose2 {
    fn name(&self) -> &'static str {
        "conv_transpose3d_2"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(xs, xl, "conv_transpose3d input")?;
        let w = f32_slice(ws, wl, "conv_transpose3d weight")?;
        let bias = f32_slice(bs, bl, "conv_transpose3d bias")?;
        let (&[n, c_in, d, h, wd], &[wc_in, c_out, 2, 2, 2]) = (xl.dims(), wl.dims()) else {
            bail!(
                "conv_transpose3d: input {:?}, weight {:?}",
                xl.dims(),
                wl.dims()
            );
        };
        if wc_in != c_in || bias.len() != c_out {
            bail!(
                "conv_transpose3d: weight {:?} or bias does not fit {:?}",
                wl.dims(),
                xl.dims()
            );
        }
        // Wᵀ: C_out·8 × C_in
        let mut wt = vec![0f32; w.len()];
        for ci in 0..c_in {
            for r in 0..c_out * 8 {
                wt[r * c_in + ci] = w[ci * c_out * 8 + r];
            }
        }
        let (hw, in_plane) = (h * wd, d * h * wd);
        let out_slice = 4 * hw; // one output z-slice: 2H × 2W
        let out_plane = 8 * in_plane;
        let mut y = vec![0f32; n * c_out * out_plane];
        // task (item, z) owns output slices 2z, 2z+1 of every channel
        let mut slots: Vec<Vec<&mut [f32]>> =
            (0..n * d).map(|_| Vec::with_capacity(2 * c_out)).collect();
        for (i, slice) in y.chunks_mut(out_slice).enumerate() {
            let (plane, s) = (i / (2 * d), i % (2 * d));
            let item = plane / c_out;
            slots[item * d + s / 2].push(slice);
        }
        slots.into_par_iter().enumerate().for_each_init(
            || vec![0f32; c_out * 8 * hw],
            |p, (task, mut out)| {
                let (item, z) = (task / d, task % d);
                let xz = &x[item * c_in * in_plane + z * hw..];
                matmul(c_out * 8, hw, c_in, &wt, c_in, xz, in_plane, p, false);
                scatter(p, c_out, [h, wd], bias, &mut out);
            },
        );
        Ok((
            CpuStorage::F32(y),
            Shape::from((n, c_out, 2 * d, 2 * h, 2 * wd)),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [n, c_in, d, h, wd] = dims5(x, "conv_transpose3d input")?;
        let c_out = w.dims()[1];
        let (hw, in_plane) = (h * wd, d * h * wd);
        let out_slice = 4 * hw;
        let r = c_out * 8;
        let (dx, dw, db) = with_f32(x, "conv_transpose3d input", |x| {
            with_f32(w, "conv_transpose3d weight", |w| {
                with_f32(dy, "conv_transpose3d gradient", |g| {
                    // dX per (item, z): C_in × HW = W (C_in × r) · G_z (r × HW)
                    let mut dxz = vec![0f32; n * d * c_in * hw];
                    let dws: Vec<Vec<f32>> = dxz
                        .par_chunks_mut(c_in * hw)
                        .enumerate()
                        .fold(
                            || {
                                (
                                    vec![0f32; c_in * r],
                                    vec![0f32; r * hw],
                                    vec![0f32; c_in * hw],
                                )
                            },
                            |(mut dw, mut gz, mut xz), (task, out)| {
                                let (item, z) = (task / d, task % d);
                                let planes: Vec<&[f32]> = (0..c_out)
                                    .flat_map(|co| {
                                        let base = (item * c_out + co) * 8 * in_plane;
                                        [0, 1].map(|a| {
                                            &g[base + (2 * z + a) * out_slice..][..out_slice]
                                        })
                                    })
                                    .collect();
                                gather(&planes, c_out, [h, wd], &mut gz);
                                matmul(c_in, hw, r, w, r, &gz, hw, out, false);
                                // X_z (C_in × HW), then dW += X_z · G_zᵀ
                                for ci in 0..c_in {
                                    let src = &x[(item * c_in + ci) * in_plane + z * hw..][..hw];
                                    xz[ci * hw..(ci + 1) * hw].copy_from_slice(src);
                                }
                                // SAFETY: dw is c_in × r, xz c_in × hw, gz r × hw
                                // (read transposed: column stride hw).
                                unsafe {
                                    gemm::gemm(
                                        c_in,
                                        r,
                                        hw,
                                        dw.as_mut_ptr(),
                                        1,
                                        r as isize,
                                        true,
                                        xz.as_ptr(),
                                        1,
                                        hw as isize,
                                        gz.as_ptr(),
                                        hw as isize,
                                        1,
                                        1.0,
                                        1.0,
                                        false,
                                        false,
                                        false,
                                        Parallelism::None,
                                    );
                                }
                                (dw, gz, xz)
                            },
                        )
                        .map(|(dw, _, _)| dw)
                        .collect();
                    let mut dw = vec![0f32; c_in * r];
                    for part in dws {
                        dw.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
                    }
                    // dxz is (item, z, ci, hw): reorder to (item, ci, z, hw)
                    let mut dx = vec![0f32; n * c_in * in_plane];
                    dx.par_chunks_mut(hw).enumerate().for_each(|(i, dst)| {
                        let (item, ci, z) = (i / (c_in * d), (i / d) % c_in, i % d);
                        dst.copy_from_slice(&dxz[((item * d + z) * c_in + ci) * hw..][..hw]);
                    });
                    let db = super::kernels::bias_grad(g, n, c_out, 8 * in_plane);
                    (dx, dw, db)
                })
            })
        })???;
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), x.device())?),
            Some(Tensor::from_vec(dw, w.shape(), w.device())?),
            Some(Tensor::from_vec(db, b.shape(), b.device())?),
        ))
    }
}

/// `ConvTranspose3d(kernel 2, stride 2)` with bias: `x`: `N × C_in × D × H
/// × W`, `w`: `C_in × C_out × 2 × 2 × 2` (PyTorch's layout), `bias`:
/// `C_out`; returns `N × C_out × 2D × 2H × 2W`.
pub fn conv_transpose3d_2_bias(x: &Tensor, w: &Tensor, bias: &Tensor) -> Result<Tensor> {
    dims5(x, "conv_transpose3d input")?;
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &bias.contiguous()?, ConvTranspose2)
}
