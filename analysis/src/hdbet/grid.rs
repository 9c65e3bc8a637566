//! The array operations of HD-BET's preprocessing and post-processing, on
//! 3D arrays in C order (last axis fastest, as NumPy holds them):
//! scikit-image's cubic `resize`, the inverse nearest-neighbour mapping of
//! a label map back onto the original grid, padding, mirroring and the
//! largest connected component.

/// Cubic B-spline resize to `new_dims`, as `skimage.transform.resize(image,
/// new_dims, order=3, mode="edge", anti_aliasing=False)` (which is
/// `scipy.ndimage.zoom(…, grid_mode=True, mode="nearest")` followed by
/// clipping to the input's range): output voxel `o` samples input
/// coordinate `(o + ½)·n/m − ½`. Separable, exact: the spline's prefilter,
/// the edge padding and the evaluation each act on one axis.
pub fn resize_cubic(data: &[f32], dims: [usize; 3], new_dims: [usize; 3]) -> Vec<f32> {
    let (lo, hi) = data
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let mut cur: Vec<f64> = data.iter().map(|&v| v as f64).collect();
    let mut cur_dims = dims;
    for axis in 0..3 {
        if new_dims[axis] != cur_dims[axis] {
            (cur, cur_dims) = resize_axis(&cur, cur_dims, axis, new_dims[axis]);
        }
    }
    cur.into_iter().map(|v| (v as f32).clamp(lo, hi)).collect()
}

/// SciPy pads by this much (edge values) before its spline prefilter when
/// the mode is "nearest".
const PAD: usize = 12;

fn resize_axis(data: &[f64], dims: [usize; 3], axis: usize, m: usize) -> (Vec<f64>, [usize; 3]) {
    let n = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let outer: usize = dims[..axis].iter().product();
    let mut new_dims = dims;
    new_dims[axis] = m;
    let mut out = vec![0f64; outer * m * inner];
    // The output coordinates' spline weights, once per axis.
    let zoom = n as f64 / m as f64;
    let taps: Vec<(usize, [f64; 4])> = (0..m)
        .map(|o| {
            let x = (o as f64 + 0.5) * zoom - 0.5 + PAD as f64;
            let i = x.floor();
            (i as usize - 1, bspline3_weights(x - i))
        })
        .collect();
    let mut line = vec![0f64; n + 2 * PAD];
    for a in 0..outer {
        for b in 0..inner {
            let base = a * n * inner + b;
            for (k, slot) in line.iter_mut().enumerate() {
                let src = k.saturating_sub(PAD).min(n - 1);
                *slot = data[base + src * inner];
            }
            prefilter_cubic(&mut line);
            let obase = a * m * inner + b;
            for (o, (i, w)) in taps.iter().enumerate() {
                let c = &line[*i..*i + 4];
                out[obase + o * inner] = w[0] * c[0] + w[1] * c[1] + w[2] * c[2] + w[3] * c[3];
            }
        }
    }
    (out, new_dims)
}

/// Cubic B-spline weights of the four coefficients around a point `t`
/// (0 ≤ t < 1) past the second.
fn bspline3_weights(t: f64) -> [f64; 4] {
    let u = 1.0 - t;
    [
        u * u * u / 6.0,
        (3.0 * t * t * t - 6.0 * t * t + 4.0) / 6.0,
        (-3.0 * t * t * t + 3.0 * t * t + 3.0 * t + 1.0) / 6.0,
        t * t * t / 6.0,
    ]
}

/// In place: interpolation samples to cubic B-spline coefficients (Unser's
/// recursive filter, mirror boundary, as SciPy's `spline_filter1d`).
fn prefilter_cubic(c: &mut [f64]) {
    let n = c.len();
    if n < 2 {
        return;
    }
    let z = 3f64.sqrt() - 2.0;
    for v in c.iter_mut() {
        *v *= (1.0 - z) * (1.0 - 1.0 / z);
    }
    // causal initialisation over the whole mirrored line
    let z2n = z.powi(2 * n as i32 - 2);
    let mut sum = c[0] + z.powi(n as i32 - 1) * c[n - 1];
    let mut zk = z;
    for v in &c[1..n - 1] {
        sum += (zk + z2n / zk) * v;
        zk *= z;
    }
    c[0] = sum / (1.0 - z2n);
    for k in 1..n {
        c[k] += z * c[k - 1];
    }
    c[n - 1] = (z / (z * z - 1.0)) * (c[n - 1] + z * c[n - 2]);
    for k in (0..n - 1).rev() {
        c[k] = z * (c[k + 1] - c[k]);
    }
}

/// Maps a label map on a resized grid (`small`, from `resize_cubic`'s
/// coordinates) back onto the original grid `dims` by nearest neighbour:
/// original voxel `i` takes small voxel `round((i + ½)·m/n − ½)`, the
/// exact inverse of the resize's geometry.
pub fn unresize_nearest(labels: &[u8], small: [usize; 3], dims: [usize; 3]) -> Vec<u8> {
    let index = |axis: usize| -> Vec<usize> {
        let (n, m) = (dims[axis] as f64, small[axis] as f64);
        (0..dims[axis])
            .map(|i| {
                let o = ((i as f64 + 0.5) * m / n - 0.5).round_ties_even();
                o.clamp(0.0, m - 1.0) as usize
            })
            .collect()
    };
    let (i0, i1, i2) = (index(0), index(1), index(2));
    let mut out = Vec::with_capacity(dims.iter().product());
    for &a in &i0 {
        for &b in &i1 {
            let row = &labels[(a * small[1] + b) * small[2]..][..small[2]];
            out.extend(i2.iter().map(|&c| row[c]));
        }
    }
    out
}

/// HD-BET's padding: each side up to a multiple of 16 and at least 128
/// (its patch size), the data at the low corner.
pub fn padded_dims(dims: [usize; 3]) -> [usize; 3] {
    dims.map(|n| (n.div_ceil(16) * 16).max(128))
}

/// `data` (`dims`) at the low corner of a zero array of `to`.
pub fn pad(data: &[f32], dims: [usize; 3], to: [usize; 3]) -> Vec<f32> {
    let mut out = vec![0f32; to.iter().product()];
    for a in 0..dims[0] {
        for b in 0..dims[1] {
            let src = &data[(a * dims[1] + b) * dims[2]..][..dims[2]];
            out[(a * to[1] + b) * to[2]..][..dims[2]].copy_from_slice(src);
        }
    }
    out
}

/// The low corner `dims` of `data` (`from`).
pub fn crop<T: Copy>(data: &[T], from: [usize; 3], dims: [usize; 3]) -> Vec<T> {
    let mut out = Vec::with_capacity(dims.iter().product());
    for a in 0..dims[0] {
        for b in 0..dims[1] {
            out.extend_from_slice(&data[(a * from[1] + b) * from[2]..][..dims[2]]);
        }
    }
    out
}

/// `data` reversed along the axes flagged in `axes`, per channel (`data`
/// holds `channels` arrays of `dims` one after another).
pub fn mirror(data: &[f32], channels: usize, dims: [usize; 3], axes: [bool; 3]) -> Vec<f32> {
    if axes == [false; 3] {
        return data.to_vec();
    }
    let plane: usize = dims.iter().product();
    let mut out = Vec::with_capacity(data.len());
    for ch in data.chunks_exact(plane).take(channels) {
        for a in 0..dims[0] {
            let sa = if axes[0] { dims[0] - 1 - a } else { a };
            for b in 0..dims[1] {
                let sb = if axes[1] { dims[1] - 1 - b } else { b };
                let row = &ch[(sa * dims[1] + sb) * dims[2]..][..dims[2]];
                if axes[2] {
                    out.extend(row.iter().rev());
                } else {
                    out.extend_from_slice(row);
                }
            }
        }
    }
    out
}

/// Keeps the largest 26-connected component of the non-zero voxels (as
/// HD-BET's `postprocess_prediction`, `skimage.morphology.label` with full
/// connectivity); everything else becomes 0.
pub fn keep_largest_component(mask: &mut [u8], dims: [usize; 3]) {
    let (label, parts) = crate::measure::components(dims, |i| mask[i] != 0);
    // the first of the largest (components are in order of their first voxel)
    let Some(largest) = (0..parts.len()).max_by_key(|&i| (parts[i].len(), std::cmp::Reverse(i)))
    else {
        return;
    };
    for (m, &l) in mask.iter_mut().zip(&label) {
        if l != largest as u32 + 1 {
            *m = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubic_resize_reproduces_smooth_data_and_keeps_constants() {
        // A constant stays constant; a linear ramp stays linear away from
        // the edges (cubic B-splines reproduce linear functions).
        let dims = [6, 7, 40];
        let ramp: Vec<f32> = (0..dims.iter().product::<usize>())
            .map(|i| (i % 40) as f32)
            .collect();
        let out = resize_cubic(&ramp, dims, [4, 5, 27]);
        assert_eq!(out.len(), 4 * 5 * 27);
        let zoom = 40.0 / 27.0;
        for (o, &v) in out.iter().enumerate().take(20).skip(7) {
            let want = (o as f64 + 0.5) * zoom - 0.5;
            assert!((v as f64 - want).abs() < 1e-4, "{o}: {v} vs {want}");
        }
        let flat = resize_cubic(&vec![3.5; 8 * 8 * 8], [8, 8, 8], [5, 12, 8]);
        assert!(flat.iter().all(|&v| (v - 3.5).abs() < 1e-6));
    }

    #[test]
    fn nearest_unresize_inverts_the_resize_geometry() {
        let small: Vec<u8> = (0..4 * 5 * 6).map(|i| i as u8).collect();
        let back = unresize_nearest(&small, [4, 5, 6], [4, 5, 6]);
        assert_eq!(back, small);
        let up = unresize_nearest(&[1, 2], [1, 1, 2], [1, 1, 6]);
        assert_eq!(up, vec![1, 1, 1, 2, 2, 2]);
    }

    #[test]
    fn padding_mirroring_and_components() {
        assert_eq!(padded_dims([121, 145, 121]), [128, 160, 128]);
        assert_eq!(padded_dims([160, 129, 16]), [160, 144, 128]);
        let data: Vec<f32> = (0..2 * 3 * 4).map(|i| i as f32).collect();
        let p = pad(&data, [2, 3, 4], [3, 4, 5]);
        assert_eq!(crop(&p, [3, 4, 5], [2, 3, 4]), data);
        let m = mirror(&data, 1, [2, 3, 4], [true, false, true]);
        assert_eq!(m[0], data[15]); // from (1, 0, 3)
        assert_eq!(mirror(&m, 1, [2, 3, 4], [true, false, true]), data);

        // two blobs touching only diagonally are one component; a third,
        // separate and smaller, goes
        let dims = [3, 3, 4];
        let mut mask = vec![0u8; 36];
        mask[0] = 1; // (0,0,0)
        mask[(3 + 1) * 4 + 1] = 1; // (1,1,1), a diagonal neighbour
        mask[(2 * 3 + 2) * 4 + 3] = 1; // (2,2,3): not adjacent to (1,1,1)
        keep_largest_component(&mut mask, dims);
        assert_eq!(mask.iter().filter(|&&v| v != 0).count(), 2);
        assert_eq!(mask[(2 * 3 + 2) * 4 + 3], 0);
    }
}
