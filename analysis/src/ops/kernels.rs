//! The CPU kernels behind `Conv3d`: a tiled im2col feeding `gemm`, and for
//! stride 1 a row-wise variant whose `col` is `k` times smaller
//! (`forward_rows`).
//!
//! A convolution of an input `(C_in, D, H, W)` with weights
//! `(C_out, C_in·k³)` is, for a tile of `t` output positions, one matrix
//! product `W · col` where `col` (`C_in·k³ × t`) holds, row by row, the input
//! value each kernel tap sees at each position of the tile. Tiles are sized so
//! that `col` stays near 512 KB (in L2), and are spread over the rayon pool,
//! each product single-threaded. The weight gradient is the same walk with
//! `dY_tile · colᵀ` accumulated per thread.
#![allow(unsafe_code)] // raw pointers into disjoint parts of one output, for gemm

use gemm::Parallelism;
use rayon::prelude::*;

/// Where each output voxel reads the input: kernel `k`³, stride, padding
/// before each axis (the padding after is implied by `out`), output size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub kernel: usize,
    pub stride: usize,
    pub pad: [isize; 3],
    pub input: [usize; 3],
    pub out: [usize; 3],
}

impl Geometry {
    /// Symmetric padding, as in PyTorch's `Conv3d`.
    pub fn new(input: [usize; 3], kernel: usize, stride: usize, padding: usize) -> Option<Self> {
        let mut out = [0; 3];
        for a in 0..3 {
            let span = (input[a] + 2 * padding).checked_sub(kernel)?;
            out[a] = span / stride + 1;
        }
        Some(Self {
            kernel,
            stride,
            pad: [padding as isize; 3],
            input,
            out,
        })
    }

    fn positions(&self) -> usize {
        self.out.iter().product()
    }

    fn input_len(&self) -> usize {
        self.input.iter().product()
    }

    /// Rows of `col`: one per input channel and kernel tap.
    fn rows(&self, c_in: usize) -> usize {
        c_in * self.kernel.pow(3)
    }

    /// Output positions per tile: `col` near 512 KB so that it stays in L2,
    /// and a multiple of 16 positions, so that `gemm` reads `col` as it is
    /// instead of packing a copy (its lhs needs rows in whole SIMD
    /// vectors). Measured on 16→16 3³ at 96³: on a 2-core AVX2 EPYC 1 MB
    /// tiles reached 64 % of sgemm peak, 2 MB 44 %, 8 MB 28 %; on the 2-core
    /// AVX-512 EPYC (1 MB L2) 96–576 positions ran at 186–200 GFLOP/s,
    /// 768–4608 at 157–181, and rounding 303 positions down to 288 took
    /// three interleaved runs from 119–147 to 162–192 GFLOP/s.
    fn tile(&self, c_in: usize) -> usize {
        let target = (1usize << 17) / self.rows(c_in).max(1);
        (target.clamp(128, 16384) / 16 * 16).min(self.positions())
    }
}

struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// Fills `col` (`rows × t`, row-major) for output positions `p0..p0 + t` of
/// one batch item `x` (`C_in × D × H × W`).
fn im2col(x: &[f32], c_in: usize, g: &Geometry, p0: usize, t: usize, col: &mut [f32]) {
    let [ind, inh, inw] = g.input;
    let [_, oh_n, ow_n] = g.out;
    let k = g.kernel;
    let s = g.stride;
    // Runs of consecutive positions along the output's W axis.
    let mut runs = Vec::with_capacity(t / ow_n + 2);
    let (mut i, mut p) = (0, p0);
    while i < t {
        let ow = p % ow_n;
        let oh = (p / ow_n) % oh_n;
        let od = p / (ow_n * oh_n);
        let len = (ow_n - ow).min(t - i);
        runs.push((i, len, od, oh, ow));
        i += len;
        p += len;
    }
    let in_len = g.input_len();
    for ci in 0..c_in {
        let xc = &x[ci * in_len..(ci + 1) * in_len];
        for kd in 0..k {
            for kh in 0..k {
                for kw in 0..k {
                    let row = ((ci * k + kd) * k + kh) * k + kw;
                    let dst = &mut col[row * t..(row + 1) * t];
                    for &(i, len, od, oh, ow) in &runs {
                        let out = &mut dst[i..i + len];
                        let id = (od * s + kd) as isize - g.pad[0];
                        let ih = (oh * s + kh) as isize - g.pad[1];
                        if id < 0 || id >= ind as isize || ih < 0 || ih >= inh as isize {
                            out.fill(0.0);
                            continue;
                        }
                        let line = &xc[(id as usize * inh + ih as usize) * inw..][..inw];
                        // iw = (ow + j)·s + kw − pad for j in 0..len
                        let iw0 = (ow * s + kw) as isize - g.pad[2];
                        if s == 1 {
                            let lo = (-iw0).clamp(0, len as isize) as usize;
                            let hi = (inw as isize - iw0).clamp(lo as isize, len as isize) as usize;
                            out[..lo].fill(0.0);
                            let start = (iw0 + lo as isize) as usize;
                            out[lo..hi].copy_from_slice(&line[start..start + hi - lo]);
                            out[hi..].fill(0.0);
                        } else {
                            for (j, o) in out.iter_mut().enumerate() {
                                let iw = iw0 + (j * s) as isize;
                                *o = if iw >= 0 && iw < inw as isize {
                                    line[iw as usize]
                                } else {
                                    0.0
                                };
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Tasks `(item, start, len)` covering `0..total` in steps of `tile`, for
/// every batch item.
fn spans(batch: usize, total: usize, tile: usize) -> Vec<(usize, usize, usize)> {
    (0..batch)
        .flat_map(|b| {
            (0..total)
                .step_by(tile)
                .map(move |s| (b, s, tile.min(total - s)))
        })
        .collect()
}

fn tiles(batch: usize, g: &Geometry, tile: usize) -> Vec<(usize, usize, usize)> {
    spans(batch, g.positions(), tile)
}

/// `y = conv(x, w) + bias`. `x`: `N × C_in × input`, `w`: `C_out × C_in ×
/// k³`, `bias`: `C_out`; returns `N × C_out × out`. The bias is written into
/// each output tile before its product accumulates onto it (no pass of its
/// own); a 1×1×1 kernel with stride 1 multiplies the input in place, without
/// im2col.
pub fn forward(
    x: &[f32],
    batch: usize,
    c_in: usize,
    w: &[f32],
    c_out: usize,
    bias: Option<&[f32]>,
    g: &Geometry,
) -> Vec<f32> {
    let rows = g.rows(c_in);
    let p = g.positions();
    let in_len = c_in * g.input_len();
    assert_eq!(x.len(), batch * in_len);
    assert_eq!(w.len(), c_out * rows);
    assert!(bias.is_none_or(|b| b.len() == c_out));
    let direct = g.kernel == 1 && g.stride == 1 && g.pad == [0; 3];
    if g.stride == 1 && g.kernel > 1 {
        return forward_rows(x, batch, c_in, w, c_out, bias, g);
    }
    let mut y = vec![0f32; batch * c_out * p];
    let tile = g.tile(c_in);
    let dst = SendPtr(y.as_mut_ptr());
    tiles(batch, g, tile).into_par_iter().for_each_init(
        || {
            if direct {
                vec![]
            } else {
                vec![0f32; rows * tile]
            }
        },
        |col, (b, p0, t)| {
            let (rhs, rhs_rs) = if direct {
                // row ci of "col" is x[b, ci, p0..p0 + t]
                (x[b * in_len + p0..].as_ptr(), g.input_len())
            } else {
                im2col(&x[b * in_len..(b + 1) * in_len], c_in, g, p0, t, col);
                (col.as_ptr(), t)
            };
            let dst = &dst;
            // SAFETY: each tile writes its own columns p0..p0+t of batch b:
            // no two tasks touch the same element, and `y` outlives the
            // loop. `rhs` has `rows` rows of stride `rhs_rs` holding `t`
            // values each, inside `x` or `col`.
            unsafe {
                if let Some(bias) = bias {
                    for (co, &v) in bias.iter().enumerate() {
                        std::slice::from_raw_parts_mut(dst.0.add(b * c_out * p + co * p + p0), t)
                            .fill(v);
                    }
                }
                gemm::gemm(
                    c_out,
                    t,
                    rows,
                    dst.0.add(b * c_out * p + p0),
                    1,
                    p as isize,
                    bias.is_some(),
                    w.as_ptr(),
                    1,
                    rows as isize,
                    rhs,
                    1,
                    rhs_rs as isize,
                    if bias.is_some() { 1.0 } else { 0.0 },
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
        },
    );
    y
}

/// The row-wise tiling of a stride-1 convolution: output rows (`(od, oh)`
/// pairs) per tile, the columns of one output row in `col` (`W + k − 1`),
/// and `col`'s row length (columns computed, a multiple of 16 so that gemm
/// reads `col` in place, plus `k` zeros so that every shifted read fits).
struct RowTiles {
    per_tile: usize,
    span: usize,
    width: usize,
    tasks: Vec<(usize, usize, usize)>,
}

impl RowTiles {
    fn new(batch: usize, c_in: usize, g: &Geometry) -> RowTiles {
        let k = g.kernel;
        let span = g.out[2] + k - 1;
        let out_rows = g.out[0] * g.out[1];
        let per_tile = ((1usize << 17) / (c_in * k * k * span)).clamp(1, out_rows);
        let tasks = spans(batch, out_rows, per_tile);
        let mut t = RowTiles {
            per_tile,
            span,
            width: 0,
            tasks,
        };
        t.width = t.cols(per_tile) + k;
        t
    }

    /// Columns computed for a tile of `nr` rows.
    fn cols(&self, nr: usize) -> usize {
        (nr * self.span).div_ceil(16) * 16
    }
}

/// Fills `col` (`C_in·k² × width`) for output rows `r0..r0 + nr` of one
/// batch item: row `(ci, kd, kh)`, column `r·(W + k − 1) + j` holds input
/// `(ci, od + kd − pad, oh + kh − pad, j − pad)`, zero outside the input.
fn row_col(
    xb: &[f32],
    c_in: usize,
    g: &Geometry,
    r0: usize,
    nr: usize,
    width: usize,
    col: &mut [f32],
) {
    let k = g.kernel;
    let [ind, inh, inw] = g.input;
    let [_, oh_n, ow_n] = g.out;
    let in_len = g.input_len();
    let span = ow_n + k - 1;
    for ci in 0..c_in {
        let xc = &xb[ci * in_len..(ci + 1) * in_len];
        for kd in 0..k {
            for kh in 0..k {
                let row = &mut col[((ci * k + kd) * k + kh) * width..][..width];
                row.fill(0.0);
                for r in 0..nr {
                    let (od, oh) = ((r0 + r) / oh_n, (r0 + r) % oh_n);
                    let id = (od + kd) as isize - g.pad[0];
                    let ih = (oh + kh) as isize - g.pad[1];
                    if id < 0 || id >= ind as isize || ih < 0 || ih >= inh as isize {
                        continue;
                    }
                    let line = &xc[(id as usize * inh + ih as usize) * inw..][..inw];
                    let seg = &mut row[r * span..(r + 1) * span];
                    let lo = g.pad[2].clamp(0, span as isize) as usize;
                    let hi = (inw as isize + g.pad[2]).clamp(lo as isize, span as isize) as usize;
                    let start = (lo as isize - g.pad[2]) as usize;
                    seg[lo..hi].copy_from_slice(&line[start..start + hi - lo]);
                }
            }
        }
    }
}

/// `dL/dw` of a stride-1 convolution by output rows: per tile and `kw`,
/// `dW_kw += dY_tile · col_kwᵀ` with `dY_tile` laid out on `col`'s columns
/// (zero between rows).
fn weight_grad_rows(
    x: &[f32],
    batch: usize,
    c_in: usize,
    dy: &[f32],
    c_out: usize,
    g: &Geometry,
) -> Vec<f32> {
    let k = g.kernel;
    let rows = c_in * k * k;
    let (p, in_len, ow_n) = (g.positions(), g.input_len(), g.out[2]);
    let tiles = RowTiles::new(batch, c_in, g);
    let (span, width) = (tiles.span, tiles.width);
    let acc = tiles
        .tasks
        .par_iter()
        .fold(
            || {
                (
                    vec![0f32; k * c_out * rows],
                    vec![0f32; rows * width],
                    vec![0f32; c_out * tiles.cols(tiles.per_tile)],
                )
            },
            |(mut acc, mut col, mut dyt), &(b, r0, nr)| {
                let m = tiles.cols(nr);
                row_col(
                    &x[b * c_in * in_len..(b + 1) * c_in * in_len],
                    c_in,
                    g,
                    r0,
                    nr,
                    width,
                    &mut col,
                );
                for co in 0..c_out {
                    let dst = &mut dyt[co * m..(co + 1) * m];
                    dst.fill(0.0);
                    let src = &dy[b * c_out * p + co * p + r0 * ow_n..][..nr * ow_n];
                    for r in 0..nr {
                        dst[r * span..r * span + ow_n]
                            .copy_from_slice(&src[r * ow_n..(r + 1) * ow_n]);
                    }
                }
                for kw in 0..k {
                    // SAFETY: acc[kw] is c_out × rows; dyt c_out × m; col rows
                    // hold width ≥ m + kw values (read transposed).
                    unsafe {
                        gemm::gemm(
                            c_out,
                            rows,
                            m,
                            acc.as_mut_ptr().add(kw * c_out * rows),
                            1,
                            rows as isize,
                            true,
                            dyt.as_ptr(),
                            1,
                            m as isize,
                            col.as_ptr().add(kw),
                            width as isize,
                            1,
                            1.0,
                            1.0,
                            false,
                            false,
                            false,
                            Parallelism::None,
                        );
                    }
                }
                (acc, col, dyt)
            },
        )
        .map(|(acc, _, _)| acc)
        .reduce(
            || vec![0f32; k * c_out * rows],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        );
    let mut dw = vec![0f32; c_out * rows * k];
    for kw in 0..k {
        for co in 0..c_out {
            for r in 0..rows {
                dw[(co * rows + r) * k + kw] = acc[(kw * c_out + co) * rows + r];
            }
        }
    }
    dw
}

/// Stride-1 convolution by output rows: for a tile of `R` whole output rows
/// (each `W` positions), `col` holds one row per input channel and `(kd,
/// kh)` tap, each the `W + k − 1` input values the output row's window
/// slides over (zero outside the input). The `k` taps along W are then `k`
/// products with `col` shifted by `kw` columns, accumulating in a small
/// tile of the output (row `r`'s columns `r·(W + k − 1) + ow`), which is
/// copied out with the bias. `col` is `k` times smaller than im2col's.
fn forward_rows(
    x: &[f32],
    batch: usize,
    c_in: usize,
    w: &[f32],
    c_out: usize,
    bias: Option<&[f32]>,
    g: &Geometry,
) -> Vec<f32> {
    let k = g.kernel;
    let ow_n = g.out[2];
    let p = g.positions();
    let in_len = g.input_len();
    let rows = c_in * k * k; // (ci, kd, kh)
                             // weights per kw: wk[kw][co][(ci, kd, kh)]
    let mut wk = vec![0f32; k * c_out * rows];
    for co in 0..c_out {
        for r in 0..rows {
            for kw in 0..k {
                wk[(kw * c_out + co) * rows + r] = w[(co * rows + r) * k + kw];
            }
        }
    }
    let tiles = RowTiles::new(batch, c_in, g);
    let (per_tile, width, span) = (tiles.per_tile, tiles.width, tiles.span);
    let cols_for = |nr: usize| tiles.cols(nr);
    let mut y = vec![0f32; batch * c_out * p];
    let dst = SendPtr(y.as_mut_ptr());
    tiles.tasks.par_iter().for_each_init(
        || {
            (
                vec![0f32; rows * width],
                vec![0f32; c_out * cols_for(per_tile)],
            )
        },
        |(col, tmp), &(b, r0, nr)| {
            let m = cols_for(nr);
            row_col(
                &x[b * c_in * in_len..(b + 1) * c_in * in_len],
                c_in,
                g,
                r0,
                nr,
                width,
                col,
            );
            for kw in 0..k {
                // SAFETY: tmp is c_out × m; col rows hold `width` ≥ m + kw
                // values; wk[kw] is c_out × rows.
                unsafe {
                    gemm::gemm(
                        c_out,
                        m,
                        rows,
                        tmp.as_mut_ptr(),
                        1,
                        m as isize,
                        kw > 0,
                        wk[kw * c_out * rows..].as_ptr(),
                        1,
                        rows as isize,
                        col.as_ptr().add(kw),
                        1,
                        width as isize,
                        if kw > 0 { 1.0 } else { 0.0 },
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
            }
            let dst = &dst;
            for co in 0..c_out {
                let add = bias.map_or(0.0, |b| b[co]);
                let src = &tmp[co * m..(co + 1) * m];
                // SAFETY: this task owns output rows r0..r0+nr of item b.
                let out = unsafe {
                    std::slice::from_raw_parts_mut(
                        dst.0.add(b * c_out * p + co * p + r0 * ow_n),
                        nr * ow_n,
                    )
                };
                for r in 0..nr {
                    for (o, &v) in out[r * ow_n..(r + 1) * ow_n]
                        .iter_mut()
                        .zip(&src[r * span..])
                    {
                        *o = v + add;
                    }
                }
            }
        },
    );
    y
}

/// `dL/dbias` of `y = conv(x, w) + bias`: each channel's gradient summed.
pub fn bias_grad(dy: &[f32], batch: usize, c_out: usize, positions: usize) -> Vec<f32> {
    let sums: Vec<f64> = dy
        .par_chunks(positions)
        .map(|plane| plane.iter().map(|&v| v as f64).sum())
        .collect();
    let mut db = vec![0f32; c_out];
    for (i, s) in sums.into_iter().enumerate().take(batch * c_out) {
        db[i % c_out] += s as f32;
    }
    db
}

/// `dL/dw` of `y = conv(x, w)` given `dy` (`N × C_out × out`): returns
/// `C_out × C_in × k³`.
pub fn weight_grad(
    x: &[f32],
    batch: usize,
    c_in: usize,
    dy: &[f32],
    c_out: usize,
    g: &Geometry,
) -> Vec<f32> {
    let rows = g.rows(c_in);
    let p = g.positions();
    let in_len = c_in * g.input_len();
    assert_eq!(x.len(), batch * in_len);
    assert_eq!(dy.len(), batch * c_out * p);
    if g.stride == 1 && g.kernel > 1 {
        return weight_grad_rows(x, batch, c_in, dy, c_out, g);
    }
    let tile = g.tile(c_in);
    tiles(batch, g, tile)
        .into_par_iter()
        .fold(
            || (vec![0f32; c_out * rows], vec![0f32; rows * tile]),
            |(mut acc, mut col), (b, p0, t)| {
                im2col(&x[b * in_len..(b + 1) * in_len], c_in, g, p0, t, &mut col);
                let lhs = &dy[b * c_out * p + p0..];
                // SAFETY: `acc` is this task's own; lhs has c_out rows of
                // stride p with t columns; col holds rows × t.
                unsafe {
                    gemm::gemm(
                        c_out,
                        rows,
                        t,
                        acc.as_mut_ptr(),
                        1,
                        rows as isize,
                        true,
                        lhs.as_ptr(),
                        1,
                        p as isize,
                        col.as_ptr(),
                        t as isize,
                        1,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
                (acc, col)
            },
        )
        .map(|(acc, _)| acc)
        .reduce(
            || vec![0f32; c_out * rows],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        )
}

/// `dL/dx` of `y = conv(x, w)`: the same convolution run on `dy` (spread
/// out by the stride) with the weights flipped in space and their channel
/// axes swapped. Returns `N × C_in × input`.
pub fn input_grad(
    dy: &[f32],
    batch: usize,
    c_out: usize,
    w: &[f32],
    c_in: usize,
    g: &Geometry,
) -> Vec<f32> {
    let k = g.kernel;
    let k3 = k.pow(3);
    // w'[ci][co][t] = w[co][ci][k³ − 1 − t]
    let mut wt = vec![0f32; w.len()];
    for co in 0..c_out {
        for ci in 0..c_in {
            for t in 0..k3 {
                wt[(ci * c_out + co) * k3 + t] = w[(co * c_in + ci) * k3 + (k3 - 1 - t)];
            }
        }
    }
    let (dy, spread) = if g.stride == 1 {
        (std::borrow::Cow::Borrowed(dy), g.out)
    } else {
        let s = g.stride;
        let [od, oh, ow] = g.out;
        let spread = [(od - 1) * s + 1, (oh - 1) * s + 1, (ow - 1) * s + 1];
        let len: usize = spread.iter().product();
        let mut v = vec![0f32; batch * c_out * len];
        for plane in 0..batch * c_out {
            let src = &dy[plane * od * oh * ow..][..od * oh * ow];
            let dst = &mut v[plane * len..][..len];
            for d in 0..od {
                for h in 0..oh {
                    for x in 0..ow {
                        dst[((d * s) * spread[1] + h * s) * spread[2] + x * s] =
                            src[(d * oh + h) * ow + x];
                    }
                }
            }
        }
        (std::borrow::Cow::Owned(v), spread)
    };
    let back = Geometry {
        kernel: k,
        stride: 1,
        pad: [
            k as isize - 1 - g.pad[0],
            k as isize - 1 - g.pad[1],
            k as isize - 1 - g.pad[2],
        ],
        input: spread,
        out: g.input,
    };
    forward(&dy, batch, c_out, &wt, c_in, None, &back)
}

/// This machine's single-precision matrix-multiply speed through the same
/// `gemm` kernels the convolutions use: the best of `rounds` products of
/// two `n × n` matrices, in GFLOP/s (the peak the benchmark quotes
/// fractions of).
pub fn sgemm_peak_gflops(n: usize, rounds: usize) -> f64 {
    let a = vec![1.0f32; n * n];
    let b = vec![0.5f32; n * n];
    let mut c = vec![0f32; n * n];
    let threads = rayon::current_num_threads();
    let mut best = f64::INFINITY;
    for _ in 0..rounds.max(1) + 1 {
        let t = std::time::Instant::now();
        // SAFETY: three n×n row-major buffers of the sizes made above.
        unsafe {
            gemm::gemm(
                n,
                n,
                n,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                n as isize,
                b.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(threads),
            )
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (n as f64).powi(3) / best / 1e9
}
