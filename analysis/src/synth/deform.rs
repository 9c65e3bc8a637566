//! Random spatial transforms of label maps for the generator: an affine
//! (rotation, scaling, shift about the volume's centre) composed with a
//! smooth non-linear displacement (a coarse random grid of displacement
//! vectors, trilinearly interpolated), sampled by nearest neighbour so
//! that labels stay labels. Deterministic by seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::coarse;

/// Upper bounds of the random transform (each sample draws within them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Deformation {
    /// Rotation about each axis, degrees (±).
    pub rotation_deg: f64,
    /// Scaling per axis: 1 ± this.
    pub scaling: f64,
    /// Shift per axis, voxels (±).
    pub shift: f64,
    /// Non-linear displacement, voxels (± per grid node).
    pub displacement: f64,
}

impl Default for Deformation {
    fn default() -> Self {
        Deformation {
            rotation_deg: 15.0,
            scaling: 0.15,
            shift: 10.0,
            displacement: 3.0,
        }
    }
}

/// Grid nodes per axis of the displacement field.
const NODES: usize = 5;

fn rotation([ax, ay, az]: [f64; 3]) -> [[f64; 3]; 3] {
    let (sx, cx, sy, cy, sz, cz) = (ax.sin(), ax.cos(), ay.sin(), ay.cos(), az.sin(), az.cos());
    let rx = [[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]];
    let ry = [[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]];
    let rz = [[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]];
    let mul = |a: [[f64; 3]; 3], b: [[f64; 3]; 3]| {
        let mut m = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
            }
        }
        m
    };
    mul(rz, mul(ry, rx))
}

/// `labels` (C order, `dims`) moved by a random transform drawn from
/// `seed`; voxels mapped from outside the volume become `outside`.
pub fn deform(
    labels: &[u8],
    dims: [usize; 3],
    seed: u64,
    bounds: &Deformation,
    outside: u8,
) -> Vec<u8> {
    deform_window(labels, dims, seed, bounds, outside, [0; 3], dims)
}

/// One random transform: output voxel o samples the input at
/// R·S·(o − c) + c + shift + u(o).
struct Transform {
    r: [[f64; 3]; 3],
    scale: [f64; 3],
    shift: [f64; 3],
    field: Vec<[f64; 3]>,
    centre: [f64; 3],
}

impl Transform {
    fn draw(dims: [usize; 3], seed: u64, bounds: &Deformation) -> Transform {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut sym = |b: f64| if b > 0.0 { rng.gen_range(-b..=b) } else { 0.0 };
        let angles = [0, 1, 2].map(|_| sym(bounds.rotation_deg).to_radians());
        let scale = [0, 1, 2].map(|_| 1.0 + sym(bounds.scaling));
        let shift = [0, 1, 2].map(|_| sym(bounds.shift));
        let field: Vec<[f64; 3]> = (0..NODES * NODES * NODES)
            .map(|_| [0, 1, 2].map(|_| sym(bounds.displacement)))
            .collect();
        Transform {
            r: rotation(angles),
            scale,
            shift,
            field,
            centre: dims.map(|n| (n as f64 - 1.0) / 2.0),
        }
    }
}

/// Where `deform` (same `seed`, `bounds`) puts the input voxel `p`, to
/// within the non-linear displacement: (R·S)⁻¹·(p − c − shift) + c.
pub fn approximate_image_of(
    dims: [usize; 3],
    seed: u64,
    bounds: &Deformation,
    p: [usize; 3],
) -> [f64; 3] {
    let t = Transform::draw(dims, seed, bounds);
    let q: [f64; 3] = std::array::from_fn(|i| p[i] as f64 - t.centre[i] - t.shift[i]);
    // R is orthonormal: R⁻¹ = Rᵀ
    std::array::from_fn(|j| {
        (0..3).map(|i| t.r[i][j] * q[i]).sum::<f64>() / t.scale[j] + t.centre[j]
    })
}

/// The part `start .. start + size` of `deform`'s output, computed alone
/// (the same transform for the same seed, whatever the window).
pub fn deform_window(
    labels: &[u8],
    dims: [usize; 3],
    seed: u64,
    bounds: &Deformation,
    outside: u8,
    start: [usize; 3],
    size: [usize; 3],
) -> Vec<u8> {
    assert_eq!(labels.len(), dims.iter().product::<usize>());
    assert!((0..3).all(|a| start[a] + size[a] <= dims[a]));
    let Transform {
        r,
        scale,
        shift,
        field,
        centre,
    } = Transform::draw(dims, seed, bounds);
    // output voxel o samples the input at R·S·(o − c) + c + shift + u(o)
    let node = |i: usize, n: usize| coarse::node(i, n, NODES);
    let mut out = Vec::with_capacity(size.iter().product());
    for a in start[0]..start[0] + size[0] {
        let na = node(a, dims[0]);
        for b in start[1]..start[1] + size[1] {
            let nb = node(b, dims[1]);
            for c in start[2]..start[2] + size[2] {
                let nc = node(c, dims[2]);
                let u = [0, 1, 2].map(|k| {
                    let f = |x: usize, y: usize, z: usize| field[(x * NODES + y) * NODES + z][k];
                    coarse::trilinear(f, na, nb, nc)
                });
                let d = [
                    a as f64 - centre[0],
                    b as f64 - centre[1],
                    c as f64 - centre[2],
                ];
                let mut src = [0usize; 3];
                let mut inside = true;
                for i in 0..3 {
                    let s: f64 = (0..3).map(|j| r[i][j] * scale[j] * d[j]).sum::<f64>()
                        + centre[i]
                        + shift[i]
                        + u[i];
                    let v = s.round();
                    if v < 0.0 || v > (dims[i] - 1) as f64 {
                        inside = false;
                        break;
                    }
                    src[i] = v as usize;
                }
                out.push(if inside {
                    labels[(src[0] * dims[1] + src[1]) * dims[2] + src[2]]
                } else {
                    outside
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ball(dims: [usize; 3], radius: f64) -> Vec<u8> {
        let c = dims.map(|n| (n as f64 - 1.0) / 2.0);
        let mut v = Vec::new();
        for a in 0..dims[0] {
            for b in 0..dims[1] {
                for d in 0..dims[2] {
                    let r2 = (a as f64 - c[0]).powi(2)
                        + (b as f64 - c[1]).powi(2)
                        + (d as f64 - c[2]).powi(2);
                    v.push(u8::from(r2 <= radius * radius) * 3);
                }
            }
        }
        v
    }

    #[test]
    fn no_transform_is_the_identity() {
        let dims = [12, 13, 14];
        let l: Vec<u8> = (0..dims.iter().product::<usize>())
            .map(|i| (i % 7) as u8)
            .collect();
        let none = Deformation {
            rotation_deg: 0.0,
            scaling: 0.0,
            shift: 0.0,
            displacement: 0.0,
        };
        assert_eq!(deform(&l, dims, 1, &none, 0), l);
    }

    #[test]
    fn a_window_is_that_part_of_the_whole_output() {
        let dims = [20, 22, 24];
        let l = ball(dims, 8.0);
        let whole = deform(&l, dims, 9, &Deformation::default(), 0);
        let (start, size) = ([3, 4, 5], [10, 11, 12]);
        let part = deform_window(&l, dims, 9, &Deformation::default(), 0, start, size);
        let mut want = vec![];
        for a in 3..13 {
            for b in 4..15 {
                want.extend_from_slice(&whole[(a * 22 + b) * 24 + 5..][..12]);
            }
        }
        assert_eq!(part, want);
    }

    #[test]
    fn the_image_of_a_voxel_is_where_the_transform_puts_it() {
        let dims = [40, 44, 48];
        let bounds = Deformation {
            displacement: 0.0,
            ..Default::default()
        };
        let mut l = vec![0u8; dims.iter().product()];
        let p = [12, 30, 20];
        l[(p[0] * dims[1] + p[1]) * dims[2] + p[2]] = 4;
        for seed in 0..10 {
            let q = approximate_image_of(dims, seed, &bounds, p);
            let o = q.map(|x| x.round() as usize);
            // a 5³ window around the image holds the voxel (nearest
            // sampling may drop or repeat single voxels under scaling)
            let start = o.map(|x| x.saturating_sub(2));
            let part = deform_window(&l, dims, seed, &bounds, 0, start, [5, 5, 5]);
            assert!(part.contains(&4), "seed {seed}: {q:?}");
        }
    }

    #[test]
    fn random_transforms_are_reproducible_smooth_and_keep_volumes_plausible() {
        let dims = [40, 40, 40];
        let l = ball(dims, 12.0);
        let n0 = l.iter().filter(|&&v| v == 3).count() as f64;
        let bounds = Deformation::default();
        let a = deform(&l, dims, 5, &bounds, 0);
        assert_eq!(a, deform(&l, dims, 5, &bounds, 0));
        assert_ne!(a, deform(&l, dims, 6, &bounds, 0));
        for seed in 0..10 {
            let d = deform(&l, dims, seed, &bounds, 0);
            let n = d.iter().filter(|&&v| v == 3).count() as f64;
            // scaling ≤ 15 % per axis changes a volume by at most ~1.52× / 0.61×
            assert!(n / n0 > 0.55 && n / n0 < 1.65, "seed {seed}: {}", n / n0);
            assert!(d.iter().all(|&v| v == 0 || v == 3), "labels stay labels");
        }
    }
}
