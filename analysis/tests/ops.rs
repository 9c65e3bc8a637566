//! Every 3D op against a naive f64 reference on random small shapes, forward
//! and gradients. The naive convolution's gradients are themselves checked
//! by finite differences, so the chain of trust ends in arithmetic.
#![allow(clippy::needless_range_loop)] // index loops read like the definitions they check

use candle_core::{Device, Tensor, Var};
use gyri_analysis::ops;
use rand::{rngs::StdRng, Rng, SeedableRng};

type Dims = [usize; 5];

fn random(rng: &mut StdRng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

fn tensor(v: &[f64], dims: Dims) -> Tensor {
    let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    Tensor::from_vec(v, dims.to_vec(), &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Largest difference relative to the reference's largest magnitude.
fn assert_close(ours: &[f64], reference: &[f64], tol: f64, what: &str) {
    assert_eq!(ours.len(), reference.len(), "{what}: length");
    let scale = reference.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
    let worst = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= tol * scale,
        "{what}: off by {worst:e} (scale {scale:e})"
    );
}

/// The gradients of `Σ ours·dy` and of `Σ theirs·dy` agree for every
/// named variable.
fn assert_same_grads(
    ours: &Tensor,
    theirs: &Tensor,
    dy: &Tensor,
    vars: &[(&str, &Var)],
    tol: f64,
    what: &str,
) {
    let g1 = (ours * dy).unwrap().sum_all().unwrap().backward().unwrap();
    let g2 = (theirs * dy)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (name, v) in vars {
        assert_close(
            &values(g1.get(v).unwrap()),
            &values(g2.get(v).unwrap()),
            tol,
            &format!("{what} {name}"),
        );
    }
}

fn idx(d: Dims, n: usize, c: usize, z: usize, y: usize, x: usize) -> usize {
    (((n * d[1] + c) * d[2] + z) * d[3] + y) * d[4] + x
}

struct Conv {
    k: usize,
    stride: usize,
    pad: usize,
    x: Dims,
    c_out: usize,
}

impl Conv {
    fn y(&self) -> Dims {
        let o = |i: usize| (i + 2 * self.pad - self.k) / self.stride + 1;
        [
            self.x[0],
            self.c_out,
            o(self.x[2]),
            o(self.x[3]),
            o(self.x[4]),
        ]
    }
    fn w(&self) -> Dims {
        [self.c_out, self.x[1], self.k, self.k, self.k]
    }

    /// Calls `f(y index, x index, w index)` for every product term.
    fn each(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (xd, yd, wd) = (self.x, self.y(), self.w());
        for n in 0..xd[0] {
            for co in 0..yd[1] {
                for z in 0..yd[2] {
                    for y in 0..yd[3] {
                        for x in 0..yd[4] {
                            for ci in 0..xd[1] {
                                for a in 0..self.k {
                                    for b in 0..self.k {
                                        for c in 0..self.k {
                                            let iz =
                                                (z * self.stride + a) as isize - self.pad as isize;
                                            let iy =
                                                (y * self.stride + b) as isize - self.pad as isize;
                                            let ix =
                                                (x * self.stride + c) as isize - self.pad as isize;
                                            if iz < 0 || iy < 0 || ix < 0 {
                                                continue;
                                            }
                                            let (iz, iy, ix) =
                                                (iz as usize, iy as usize, ix as usize);
                                            if iz >= xd[2] || iy >= xd[3] || ix >= xd[4] {
                                                continue;
                                            }
                                            f(
                                                idx(yd, n, co, z, y, x),
                                                idx(xd, n, ci, iz, iy, ix),
                                                idx(wd, co, ci, a, b, c),
                                            );
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn forward(&self, x: &[f64], w: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; self.y().iter().product()];
        self.each(|yi, xi, wi| y[yi] += x[xi] * w[wi]);
        y
    }

    fn grads(&self, x: &[f64], w: &[f64], dy: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        self.each(|yi, xi, wi| {
            dx[xi] += dy[yi] * w[wi];
            dw[wi] += dy[yi] * x[xi];
        });
        (dx, dw)
    }
}

#[test]
fn the_naive_convolution_gradients_agree_with_finite_differences() {
    let mut rng = StdRng::seed_from_u64(1);
    let conv = Conv {
        k: 3,
        stride: 2,
        pad: 1,
        x: [1, 2, 5, 4, 3],
        c_out: 2,
    };
    let x = random(&mut rng, conv.x.iter().product());
    let w = random(&mut rng, conv.w().iter().product());
    let dy = random(&mut rng, conv.y().iter().product());
    let loss = |x: &[f64], w: &[f64]| -> f64 {
        conv.forward(x, w).iter().zip(&dy).map(|(a, b)| a * b).sum()
    };
    let (dx, dw) = conv.grads(&x, &w, &dy);
    let h = 1e-6;
    for i in [0, 7, 19, x.len() - 1] {
        let (mut a, mut b) = (x.clone(), x.clone());
        a[i] += h;
        b[i] -= h;
        assert!(((loss(&a, &w) - loss(&b, &w)) / (2.0 * h) - dx[i]).abs() < 1e-6);
    }
    for i in [0, 5, 30, w.len() - 1] {
        let (mut a, mut b) = (w.clone(), w.clone());
        a[i] += h;
        b[i] -= h;
        assert!(((loss(&x, &a) - loss(&x, &b)) / (2.0 * h) - dw[i]).abs() < 1e-6);
    }
}

#[test]
fn conv3d_matches_the_naive_convolution_forward_and_backward() {
    let mut rng = StdRng::seed_from_u64(2);
    let cases = [
        Conv {
            k: 3,
            stride: 1,
            pad: 1,
            x: [2, 3, 6, 5, 7],
            c_out: 4,
        },
        // enough channels for several tiles, the last one partial
        Conv {
            k: 3,
            stride: 1,
            pad: 1,
            x: [1, 40, 12, 10, 9],
            c_out: 3,
        },
        Conv {
            k: 3,
            stride: 2,
            pad: 1,
            x: [1, 40, 12, 10, 9],
            c_out: 3,
        },
        Conv {
            k: 3,
            stride: 1,
            pad: 0,
            x: [1, 2, 5, 6, 4],
            c_out: 3,
        },
        Conv {
            k: 3,
            stride: 2,
            pad: 1,
            x: [1, 4, 7, 6, 5],
            c_out: 2,
        },
        Conv {
            k: 2,
            stride: 2,
            pad: 0,
            x: [2, 3, 6, 4, 8],
            c_out: 5,
        },
        Conv {
            k: 1,
            stride: 1,
            pad: 0,
            x: [1, 5, 3, 4, 5],
            c_out: 3,
        },
        Conv {
            k: 5,
            stride: 1,
            pad: 2,
            x: [1, 2, 6, 6, 6],
            c_out: 2,
        },
        // Larger than one tile of output positions.
        Conv {
            k: 3,
            stride: 1,
            pad: 1,
            x: [1, 16, 12, 14, 13],
            c_out: 8,
        },
    ];
    for conv in cases {
        let what = format!(
            "k{} s{} p{} x{:?} c_out {}",
            conv.k, conv.stride, conv.pad, conv.x, conv.c_out
        );
        let x = random(&mut rng, conv.x.iter().product());
        let w = random(&mut rng, conv.w().iter().product());
        let dy = random(&mut rng, conv.y().iter().product());
        let xv = Var::from_tensor(&tensor(&x, conv.x)).unwrap();
        let wv = Var::from_tensor(&tensor(&w, conv.w())).unwrap();
        let y = ops::conv3d(&xv, &wv, conv.stride, conv.pad).unwrap();
        assert_eq!(y.dims(), &conv.y(), "{what}: shape");
        assert_close(
            &values(&y),
            &conv.forward(&x, &w),
            1e-5,
            &format!("{what}: forward"),
        );

        let loss = (y * tensor(&dy, conv.y())).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let (dx, dw) = conv.grads(&x, &w, &dy);
        assert_close(
            &values(grads.get(&xv).unwrap()),
            &dx,
            1e-5,
            &format!("{what}: dx"),
        );
        assert_close(
            &values(grads.get(&wv).unwrap()),
            &dw,
            1e-5,
            &format!("{what}: dw"),
        );
    }
}

#[test]
fn conv3d_refuses_shapes_that_do_not_fit() {
    let x = Tensor::zeros((1, 2, 4, 4, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    let w = Tensor::zeros((3, 5, 3, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(ops::conv3d(&x, &w, 1, 1).is_err());
    let w = Tensor::zeros((3, 2, 7, 7, 7), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(ops::conv3d(&x, &w, 1, 0)
        .unwrap_err()
        .to_string()
        .contains("smaller than the kernel"));
    let x4 = Tensor::zeros((2, 4, 4, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(ops::conv3d(&x4, &w, 1, 0).is_err());
}

#[test]
fn max_pool_matches_the_naive_pool_and_routes_gradients_to_the_maxima() {
    let mut rng = StdRng::seed_from_u64(3);
    for xd in [[2, 3, 4, 6, 8], [1, 2, 5, 7, 3]] {
        let x = random(&mut rng, xd.iter().product());
        let yd = [xd[0], xd[1], xd[2] / 2, xd[3] / 2, xd[4] / 2];
        let dy = random(&mut rng, yd.iter().product());
        let mut y = vec![f64::NEG_INFINITY; dy.len()];
        let mut arg = vec![0; dy.len()];
        for n in 0..xd[0] {
            for c in 0..xd[1] {
                for z in 0..yd[2] * 2 {
                    for yy in 0..yd[3] * 2 {
                        for xx in 0..yd[4] * 2 {
                            let o = idx(yd, n, c, z / 2, yy / 2, xx / 2);
                            let i = idx(xd, n, c, z, yy, xx);
                            if x[i] > y[o] {
                                y[o] = x[i];
                                arg[o] = i;
                            }
                        }
                    }
                }
            }
        }
        let mut dx = vec![0.0; x.len()];
        for (o, &i) in arg.iter().enumerate() {
            dx[i] += dy[o];
        }
        let xv = Var::from_tensor(&tensor(&x, xd)).unwrap();
        let out = ops::max_pool3d_2(&xv).unwrap();
        assert_eq!(out.dims(), &yd);
        assert_close(&values(&out), &y, 1e-6, "max pool forward");
        let g = (out * tensor(&dy, yd))
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert_close(&values(g.get(&xv).unwrap()), &dx, 1e-6, "max pool dx");
    }
}

/// PyTorch's `interpolate(scale_factor=2, mode='trilinear',
/// align_corners=False)` as explicit weights: source coordinate
/// `max(0, (i + ½)/2 − ½)`, linear between its neighbours.
fn linear_weights(n: usize) -> Vec<Vec<(usize, f64)>> {
    (0..2 * n)
        .map(|i| {
            let src = ((i as f64 + 0.5) / 2.0 - 0.5).max(0.0);
            let i0 = src.floor() as usize;
            let i1 = (i0 + 1).min(n - 1);
            let l = src - i0 as f64;
            vec![(i0, 1.0 - l), (i1, l)]
        })
        .collect()
}

#[test]
fn trilinear_and_nearest_upsampling_match_their_definitions() {
    let mut rng = StdRng::seed_from_u64(4);
    for xd in [[1, 2, 3, 4, 5], [2, 1, 1, 2, 3]] {
        let yd = [xd[0], xd[1], 2 * xd[2], 2 * xd[3], 2 * xd[4]];
        let x = random(&mut rng, xd.iter().product());
        let dy = random(&mut rng, yd.iter().product());
        let (wz, wy, wx) = (
            linear_weights(xd[2]),
            linear_weights(xd[3]),
            linear_weights(xd[4]),
        );
        let (mut lin, mut near) = (vec![0.0; dy.len()], vec![0.0; dy.len()]);
        let (mut dlin, mut dnear) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        for n in 0..yd[0] {
            for c in 0..yd[1] {
                for z in 0..yd[2] {
                    for y in 0..yd[3] {
                        for xx in 0..yd[4] {
                            let o = idx(yd, n, c, z, y, xx);
                            let i = idx(xd, n, c, z / 2, y / 2, xx / 2);
                            near[o] = x[i];
                            dnear[i] += dy[o];
                            for &(a, la) in &wz[z] {
                                for &(b, lb) in &wy[y] {
                                    for &(e, le) in &wx[xx] {
                                        let i = idx(xd, n, c, a, b, e);
                                        lin[o] += la * lb * le * x[i];
                                        dlin[i] += la * lb * le * dy[o];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let xv = Var::from_tensor(&tensor(&x, xd)).unwrap();
        for (name, out, want, dwant) in [
            (
                "trilinear",
                ops::upsample_trilinear_2(&xv).unwrap(),
                &lin,
                &dlin,
            ),
            (
                "nearest",
                ops::upsample_nearest_2(&xv).unwrap(),
                &near,
                &dnear,
            ),
        ] {
            assert_eq!(out.dims(), &yd, "{name}");
            assert_close(&values(&out), want, 1e-6, name);
            let g = (out * tensor(&dy, yd))
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            assert_close(
                &values(g.get(&xv).unwrap()),
                dwant,
                1e-5,
                &format!("{name} dx"),
            );
        }
    }
}

#[test]
fn transposed_and_pointwise_convolutions_match_their_definitions() {
    let mut rng = StdRng::seed_from_u64(5);
    let xd = [2, 3, 2, 3, 4];
    let c_out = 4;
    let yd = [2, c_out, 4, 6, 8];
    let wd = [3, c_out, 2, 2, 2];
    let x = random(&mut rng, xd.iter().product());
    let w = random(&mut rng, wd.iter().product());
    let dy = random(&mut rng, yd.iter().product());
    let (mut y, mut dx, mut dw) = (vec![0.0; dy.len()], vec![0.0; x.len()], vec![0.0; w.len()]);
    for n in 0..2 {
        for ci in 0..3 {
            for co in 0..c_out {
                for z in 0..4 {
                    for yy in 0..6 {
                        for xx in 0..8 {
                            let o = idx(yd, n, co, z, yy, xx);
                            let i = idx(xd, n, ci, z / 2, yy / 2, xx / 2);
                            let wi = idx(wd, ci, co, z % 2, yy % 2, xx % 2);
                            y[o] += x[i] * w[wi];
                            dx[i] += dy[o] * w[wi];
                            dw[wi] += dy[o] * x[i];
                        }
                    }
                }
            }
        }
    }
    let (xv, wv) = (
        Var::from_tensor(&tensor(&x, xd)).unwrap(),
        Var::from_tensor(&tensor(&w, wd)).unwrap(),
    );
    let out = ops::conv_transpose3d_2(&xv, &wv).unwrap();
    assert_eq!(out.dims(), &yd);
    assert_close(&values(&out), &y, 1e-5, "transposed forward");
    let g = (out * tensor(&dy, yd))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_close(&values(g.get(&xv).unwrap()), &dx, 1e-5, "transposed dx");
    assert_close(&values(g.get(&wv).unwrap()), &dw, 1e-5, "transposed dw");

    // 1×1×1 is conv3d with k = 1.
    let w1 = random(&mut rng, c_out * 3);
    let w1d = [c_out, 3, 1, 1, 1];
    let a = ops::conv1x1x1(&xv, &tensor(&w1, w1d)).unwrap();
    let b = ops::conv3d(&xv, &tensor(&w1, w1d), 1, 0).unwrap();
    assert_close(&values(&a), &values(&b), 1e-6, "1×1×1");
}

fn naive_instance_norm(x: &[f64], xd: Dims, gamma: &[f64], beta: &[f64]) -> Vec<f64> {
    let s = xd[2] * xd[3] * xd[4];
    let mut y = vec![0.0; x.len()];
    for (p, (src, dst)) in x.chunks(s).zip(y.chunks_mut(s)).enumerate() {
        let c = p % xd[1];
        let mean = src.iter().sum::<f64>() / s as f64;
        let var = src.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / s as f64;
        for (d, v) in dst.iter_mut().zip(src) {
            *d = gamma[c] * (v - mean) / (var + 1e-5).sqrt() + beta[c];
        }
    }
    y
}

#[test]
fn instance_norm_matches_the_definition_and_finite_differences() {
    let mut rng = StdRng::seed_from_u64(6);
    let xd = [2, 3, 3, 4, 2];
    let x = random(&mut rng, xd.iter().product());
    let gamma = random(&mut rng, 3);
    let beta = random(&mut rng, 3);
    let dy = random(&mut rng, x.len());
    let xv = Var::from_tensor(&tensor(&x, xd)).unwrap();
    let (g, b) = (
        tensor(&gamma, [3, 1, 1, 1, 1]).flatten_all().unwrap(),
        tensor(&beta, [3, 1, 1, 1, 1]).flatten_all().unwrap(),
    );
    let out = ops::instance_norm3d(&xv, Some((&g, &b)), 1e-5).unwrap();
    assert_close(
        &values(&out),
        &naive_instance_norm(&x, xd, &gamma, &beta),
        1e-5,
        "instance norm",
    );
    let grads = (out * tensor(&dy, xd))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let dx = values(grads.get(&xv).unwrap());
    let loss = |x: &[f64]| -> f64 {
        naive_instance_norm(x, xd, &gamma, &beta)
            .iter()
            .zip(&dy)
            .map(|(a, b)| a * b)
            .sum()
    };
    let h = 1e-6;
    for i in [0, 11, 40, x.len() - 1] {
        let (mut a, mut b) = (x.clone(), x.clone());
        a[i] += h;
        b[i] -= h;
        let fd = (loss(&a) - loss(&b)) / (2.0 * h);
        assert!(
            (fd - dx[i]).abs() < 1e-3 * fd.abs().max(1.0),
            "dx[{i}]: {} vs {fd}",
            dx[i]
        );
    }

    // Batch normalisation with the batch's statistics normalises each
    // channel over the whole batch.
    let (mean, var) = ops::batch_stats(&xv).unwrap();
    let ones = Tensor::ones(3, candle_core::DType::F32, &Device::Cpu).unwrap();
    let zeros = ones.zeros_like().unwrap();
    let bn = values(&ops::batch_norm3d(&xv, &mean, &var, &ones, &zeros, 1e-5).unwrap());
    let s = xd[2] * xd[3] * xd[4];
    for c in 0..3 {
        let vals: Vec<f64> = (0..2)
            .flat_map(|n| bn[(n * 3 + c) * s..(n * 3 + c + 1) * s].to_vec())
            .collect();
        let m = vals.iter().sum::<f64>() / vals.len() as f64;
        let v = vals.iter().map(|x| (x - m).powi(2)).sum::<f64>() / vals.len() as f64;
        assert!(
            m.abs() < 1e-5 && (v - 1.0).abs() < 1e-3,
            "channel {c}: mean {m}, var {v}"
        );
    }
}

/// `interpolate(scale_factor=2, mode='trilinear', align_corners=True)`:
/// output `j` samples `j·(n−1)/(2n−1)`.
fn aligned_weights(n: usize) -> Vec<Vec<(usize, f64)>> {
    (0..2 * n)
        .map(|j| {
            let src = if n == 1 {
                0.0
            } else {
                j as f64 * (n - 1) as f64 / (2 * n - 1) as f64
            };
            let i0 = (src.floor() as usize).min(n - 1);
            let i1 = (i0 + 1).min(n - 1);
            vec![(i0, 1.0 - (src - i0 as f64)), (i1, src - i0 as f64)]
        })
        .collect()
}

#[test]
fn fused_trilinear_upsampling_matches_both_corner_conventions_and_its_adjoint() {
    let mut rng = StdRng::seed_from_u64(7);
    for xd in [[1, 2, 3, 4, 5], [2, 1, 1, 2, 3]] {
        let yd = [xd[0], xd[1], 2 * xd[2], 2 * xd[3], 2 * xd[4]];
        let x = random(&mut rng, xd.iter().product());
        let dy = random(&mut rng, yd.iter().product());
        for align in [false, true] {
            let w = |n| {
                if align {
                    aligned_weights(n)
                } else {
                    linear_weights(n)
                }
            };
            let (wz, wy, wx) = (w(xd[2]), w(xd[3]), w(xd[4]));
            let mut want = vec![0.0; dy.len()];
            let mut dwant = vec![0.0; x.len()];
            for n in 0..yd[0] {
                for c in 0..yd[1] {
                    for z in 0..yd[2] {
                        for y in 0..yd[3] {
                            for xx in 0..yd[4] {
                                let o = idx(yd, n, c, z, y, xx);
                                for &(a, la) in &wz[z] {
                                    for &(b, lb) in &wy[y] {
                                        for &(e, le) in &wx[xx] {
                                            let i = idx(xd, n, c, a, b, e);
                                            want[o] += la * lb * le * x[i];
                                            dwant[i] += la * lb * le * dy[o];
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let xv = Var::from_tensor(&tensor(&x, xd)).unwrap();
            let out = ops::upsample_trilinear_2_with(&xv, align).unwrap();
            assert_eq!(out.dims(), &yd);
            assert_close(&values(&out), &want, 1e-6, &format!("align {align}"));
            let g = (out * tensor(&dy, yd))
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            assert_close(
                &values(g.get(&xv).unwrap()),
                &dwant,
                1e-5,
                &format!("align {align} dx"),
            );
        }
    }
}

#[test]
fn fused_instance_norm_with_leaky_relu_matches_the_definition_and_finite_differences() {
    let mut rng = StdRng::seed_from_u64(8);
    let xd = [2, 3, 3, 4, 2];
    let x = random(&mut rng, xd.iter().product());
    let gamma = random(&mut rng, 3);
    let beta = random(&mut rng, 3);
    let dy = random(&mut rng, x.len());
    let slope = 0.1;
    let naive = |x: &[f64], gamma: &[f64], beta: &[f64]| -> Vec<f64> {
        naive_instance_norm(x, xd, gamma, beta)
            .into_iter()
            .map(|z| if z > 0.0 { z } else { slope * z })
            .collect()
    };
    let xv = Var::from_tensor(&tensor(&x, xd)).unwrap();
    let gv = Var::from_tensor(&tensor(&gamma, [3, 1, 1, 1, 1]).flatten_all().unwrap()).unwrap();
    let bv = Var::from_tensor(&tensor(&beta, [3, 1, 1, 1, 1]).flatten_all().unwrap()).unwrap();
    let out = ops::instance_norm_act(&xv, &gv, &bv, 1e-5, Some(slope)).unwrap();
    assert_close(&values(&out), &naive(&x, &gamma, &beta), 1e-5, "forward");
    let grads = (out * tensor(&dy, xd))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let loss = |x: &[f64], g: &[f64], b: &[f64]| -> f64 {
        naive(x, g, b).iter().zip(&dy).map(|(a, b)| a * b).sum()
    };
    let h = 1e-6;
    let fd = |f: &dyn Fn(f64) -> f64| (f(h) - f(-h)) / (2.0 * h);
    let dx = values(grads.get(&xv).unwrap());
    for i in [0, 7, 30, x.len() - 1] {
        let want = fd(&|e| {
            let mut a = x.clone();
            a[i] += e;
            loss(&a, &gamma, &beta)
        });
        assert!(
            (want - dx[i]).abs() < 1e-3 * want.abs().max(1.0),
            "dx[{i}]: {} vs {want}",
            dx[i]
        );
    }
    let (dg, db) = (
        values(grads.get(&gv).unwrap()),
        values(grads.get(&bv).unwrap()),
    );
    for c in 0..3 {
        let want_g = fd(&|e| {
            let mut g = gamma.clone();
            g[c] += e;
            loss(&x, &g, &beta)
        });
        let want_b = fd(&|e| {
            let mut b = beta.clone();
            b[c] += e;
            loss(&x, &gamma, &b)
        });
        assert!(
            (want_g - dg[c]).abs() < 1e-3 * want_g.abs().max(1.0),
            "dγ[{c}]: {} vs {want_g}",
            dg[c]
        );
        assert!(
            (want_b - db[c]).abs() < 1e-3 * want_b.abs().max(1.0),
            "dβ[{c}]: {} vs {want_b}",
            db[c]
        );
    }
    // Without an activation it is the plain instance norm.
    let plain = ops::instance_norm_act(&xv, &gv, &bv, 1e-5, None).unwrap();
    assert_close(
        &values(&plain),
        &naive_instance_norm(&x, xd, &gamma, &beta),
        1e-5,
        "plain",
    );
}

#[test]
fn the_bias_inside_the_convolution_equals_adding_it_after_forward_and_backward() {
    let mut rng = StdRng::seed_from_u64(9);
    let xd = [2, 3, 4, 5, 3];
    for (k, stride, pad) in [(3, 1, 1), (3, 2, 1), (2, 2, 0), (1, 1, 0)] {
        let x = random(&mut rng, xd.iter().product());
        let wd = [4, 3, k, k, k];
        let w = random(&mut rng, wd.iter().product());
        let b = random(&mut rng, 4);
        let xv = Var::from_tensor(&tensor(&x, xd)).unwrap();
        let wv = Var::from_tensor(&tensor(&w, wd)).unwrap();
        let bv = Var::from_tensor(&tensor(&b, [4, 1, 1, 1, 1]).flatten_all().unwrap()).unwrap();
        let fused = ops::conv3d_bias(&xv, &wv, &bv, stride, pad).unwrap();
        let apart =
            ops::add_channel_bias(&ops::conv3d(&xv, &wv, stride, pad).unwrap(), &bv).unwrap();
        let what = format!("k {k} stride {stride}");
        assert_close(&values(&fused), &values(&apart), 1e-6, &what);
        if k == 1 {
            let mm = ops::conv1x1x1(&xv, &wv).unwrap();
            let plain = ops::conv3d(&xv, &wv, 1, 0).unwrap();
            assert_close(&values(&plain), &values(&mm), 1e-6, "1×1×1 in place");
        }
        let dy = tensor(&random(&mut rng, fused.elem_count()), {
            let d = fused.dims();
            [d[0], d[1], d[2], d[3], d[4]]
        });
        assert_same_grads(
            &fused,
            &apart,
            &dy,
            &[("dx", &xv), ("dw", &wv), ("db", &bv)],
            1e-5,
            &what,
        );
    }
}

#[test]
fn channel_concatenation_matches_candles_cat_forward_and_backward() {
    let mut rng = StdRng::seed_from_u64(10);
    let (ad, bd) = ([2, 3, 2, 3, 4], [2, 1, 2, 3, 4]);
    let av = Var::from_tensor(&tensor(&random(&mut rng, 144), ad)).unwrap();
    let bv = Var::from_tensor(&tensor(&random(&mut rng, 48), bd)).unwrap();
    let ours = ops::cat_channels(&av, &bv).unwrap();
    let theirs = Tensor::cat(&[av.as_tensor(), bv.as_tensor()], 1).unwrap();
    assert_eq!(ours.dims(), &[2, 4, 2, 3, 4]);
    assert_close(&values(&ours), &values(&theirs), 0.0, "cat");
    let dy = tensor(&random(&mut rng, 192), [2, 4, 2, 3, 4]);
    assert_same_grads(
        &ours,
        &theirs,
        &dy,
        &[("a", &av), ("b", &bv)],
        0.0,
        "cat grad",
    );
    assert!(ops::cat_channels(&av, &tensor(&[0.0; 24], [1, 1, 2, 3, 4])).is_err());
}

#[test]
fn the_transposed_convolution_kernel_equals_its_composed_definition() {
    let mut rng = StdRng::seed_from_u64(11);
    let xd = [2, 3, 2, 3, 4];
    let wd = [3, 5, 2, 2, 2];
    let xv = Var::from_tensor(&tensor(&random(&mut rng, 144), xd)).unwrap();
    let wv = Var::from_tensor(&tensor(&random(&mut rng, 120), wd)).unwrap();
    let bv = Var::from_tensor(
        &tensor(&random(&mut rng, 5), [5, 1, 1, 1, 1])
            .flatten_all()
            .unwrap(),
    )
    .unwrap();
    let ours = ops::conv_transpose3d_2_bias(&xv, &wv, &bv).unwrap();
    let composed = ops::add_channel_bias(&ops::conv_transpose3d_2(&xv, &wv).unwrap(), &bv).unwrap();
    assert_eq!(ours.dims(), &[2, 5, 4, 6, 8]);
    assert_close(&values(&ours), &values(&composed), 1e-6, "forward");
    let dy = tensor(&random(&mut rng, ours.elem_count()), [2, 5, 4, 6, 8]);
    assert_same_grads(
        &ours,
        &composed,
        &dy,
        &[("dx", &xv), ("dw", &wv), ("db", &bv)],
        1e-5,
        "transposed",
    );
}

#[test]
fn scaling_by_a_map_matches_broadcast_multiplication_forward_and_backward() {
    let mut rng = StdRng::seed_from_u64(12);
    let (xd, ad) = ([2, 3, 2, 3, 5], [2, 1, 2, 3, 5]);
    let xv = Var::from_tensor(&tensor(&random(&mut rng, 180), xd)).unwrap();
    let av = Var::from_tensor(&tensor(&random(&mut rng, 60), ad)).unwrap();
    let ours = ops::scale_by_map(&xv, &av).unwrap();
    let theirs = xv.broadcast_mul(&av).unwrap();
    assert_close(&values(&ours), &values(&theirs), 1e-7, "forward");
    let dy = tensor(&random(&mut rng, 180), xd);
    assert_same_grads(
        &ours,
        &theirs,
        &dy,
        &[("dx", &xv), ("dα", &av)],
        1e-6,
        "scale",
    );
}
