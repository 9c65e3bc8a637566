//! Geometry the pipeline needs: reorientation to RAS canonical, resampling
//! onto a target grid, cropping/padding, and physical volumes of labels.

use crate::affine::Affine;
use crate::error::{ImagingError, Result};
use crate::volume::{Volume, VoxelData};

/// For each world axis (R, A, S): which voxel axis runs along it, and
/// whether it runs backwards.
fn orientation(affine: &Affine) -> Result<[(usize, bool); 3]> {
    let spacing = affine.spacing();
    let mut weight = [[0.0f64; 3]; 3]; // [world][voxel]
    for (w, row) in weight.iter_mut().enumerate() {
        for (v, x) in row.iter_mut().enumerate() {
            *x = affine.0[w][v] / spacing[v];
        }
    }
    let mut out = [(usize::MAX, false); 3];
    let mut used_w = [false; 3];
    let mut used_v = [false; 3];
    for _ in 0..3 {
        let mut best = (0, 0, -1.0);
        for w in (0..3).filter(|&w| !used_w[w]) {
            for v in (0..3).filter(|&v| !used_v[v]) {
                if weight[w][v].abs() > best.2 {
                    best = (w, v, weight[w][v].abs());
                }
            }
        }
        let (w, v, size) = best;
        if size <= 0.0 {
            return Err(ImagingError::Geometry("an axis has no direction".into()));
        }
        used_w[w] = true;
        used_v[v] = true;
        out[w] = (v, weight[w][v] < 0.0);
    }
    Ok(out)
}

/// The same image with voxel axes permuted and flipped so that they run
/// closest to R, A, S (like nibabel's `as_closest_canonical`). Voxel values
/// are moved, never interpolated.
pub fn reorient_to_ras(volume: &Volume) -> Result<Volume> {
    let ornt = orientation(&volume.affine)?;
    if ornt
        .iter()
        .enumerate()
        .all(|(w, &(v, flip))| v == w && !flip)
    {
        return Ok(volume.clone());
    }
    let new_dims = ornt.map(|(v, _)| volume.dims[v]);
    let mut t = [[0.0; 4]; 4];
    for (w, &(v, flip)) in ornt.iter().enumerate() {
        t[v][w] = if flip { -1.0 } else { 1.0 };
        if flip {
            t[v][3] = (new_dims[w] - 1) as f64;
        }
    }
    t[3][3] = 1.0;
    let affine = volume.affine.matmul(&Affine(t));
    let old = volume.dims;
    let source_index = |n: [usize; 3]| {
        let mut o = [0usize; 3];
        for (w, &(v, flip)) in ornt.iter().enumerate() {
            o[v] = if flip { new_dims[w] - 1 - n[w] } else { n[w] };
        }
        o[0] + old[0] * (o[1] + old[1] * o[2])
    };
    macro_rules! permute {
        ($src:expr) => {{
            let mut out = Vec::with_capacity($src.len());
            for k in 0..new_dims[2] {
                for j in 0..new_dims[1] {
                    for i in 0..new_dims[0] {
                        out.push($src[source_index([i, j, k])]);
                    }
                }
            }
            out
        }};
    }
    let data = match &volume.data {
        VoxelData::F32(v) => VoxelData::F32(permute!(v)),
        VoxelData::U8(v) => VoxelData::U8(permute!(v)),
        VoxelData::U16(v) => VoxelData::U16(permute!(v)),
    };
    let mut out = Volume::new(new_dims, affine, data)?;
    out.meta = volume.meta.clone();
    Ok(out)
}

/// How voxel values are taken from between grid points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolation {
    /// Trilinear, for intensity images (result is f32).
    Linear,
    /// Nearest neighbour, for label maps (keeps the data type).
    Nearest,
}

/// Resamples `volume` onto the grid (`dims`, `affine`). Points outside the
/// source are 0.
pub fn resample(
    volume: &Volume,
    dims: [usize; 3],
    affine: Affine,
    how: Interpolation,
) -> Result<Volume> {
    let to_source = volume
        .affine
        .inverse()
        .ok_or_else(|| ImagingError::Geometry("the source transform is degenerate".into()))?
        .matmul(&affine);
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| ImagingError::TooLarge("the target grid is too large".into()))?;
    let m = to_source.0;
    let src = volume.dims;
    let at = |i: usize, j: usize, k: usize| -> [f64; 3] {
        let (i, j, k) = (i as f64, j as f64, k as f64);
        [0, 1, 2].map(|r| m[r][0] * i + m[r][1] * j + m[r][2] * k + m[r][3])
    };
    let nearest_index = |p: [f64; 3]| -> Option<usize> {
        let q = p.map(|x| x.round());
        if (0..3).all(|d| q[d] >= 0.0 && q[d] < src[d] as f64) {
            Some(q[0] as usize + src[0] * (q[1] as usize + src[1] * q[2] as usize))
        } else {
            None
        }
    };
    let data = match how {
        Interpolation::Nearest => {
            macro_rules! nearest {
                ($v:expr, $zero:expr) => {{
                    let mut out = Vec::with_capacity(n);
                    for k in 0..dims[2] {
                        for j in 0..dims[1] {
                            for i in 0..dims[0] {
                                out.push(nearest_index(at(i, j, k)).map_or($zero, |x| $v[x]));
                            }
                        }
                    }
                    out
                }};
            }
            match &volume.data {
                VoxelData::F32(v) => VoxelData::F32(nearest!(v, 0.0)),
                VoxelData::U8(v) => VoxelData::U8(nearest!(v, 0)),
                VoxelData::U16(v) => VoxelData::U16(nearest!(v, 0)),
            }
        }
        Interpolation::Linear => {
            let mut out = Vec::with_capacity(n);
            for k in 0..dims[2] {
                for j in 0..dims[1] {
                    for i in 0..dims[0] {
                        out.push(trilinear(volume, at(i, j, k)));
                    }
                }
            }
            VoxelData::F32(out)
        }
    };
    let mut out = Volume::new(dims, affine, data)?;
    out.meta = volume.meta.clone();
    Ok(out)
}

fn trilinear(volume: &Volume, p: [f64; 3]) -> f32 {
    let d = volume.dims;
    if (0..3).any(|a| p[a] < -0.5 || p[a] > d[a] as f64 - 0.5) {
        return 0.0;
    }
    let base = p.map(|x| x.floor());
    let frac = [p[0] - base[0], p[1] - base[1], p[2] - base[2]];
    let mut sum = 0.0f64;
    for corner in 0..8 {
        let off = [corner & 1, (corner >> 1) & 1, (corner >> 2) & 1];
        let mut w = 1.0;
        let mut idx = [0usize; 3];
        let mut inside = true;
        for a in 0..3 {
            let c = base[a] as i64 + off[a] as i64;
            w *= if off[a] == 1 { frac[a] } else { 1.0 - frac[a] };
            // Clamp at the edges (half a voxel beyond the last centre).
            let c = c.clamp(0, d[a] as i64 - 1);
            inside &= c >= 0;
            idx[a] = c as usize;
        }
        if inside && w > 0.0 {
            sum += w * volume.data.get_f32(volume.index(idx[0], idx[1], idx[2])) as f64;
        }
    }
    sum as f32
}

/// The sub-grid starting at voxel `start` (may be negative: padding) with
/// `dims` voxels; voxels outside the source are 0. The world position of
/// every voxel is kept.
pub fn crop_or_pad(volume: &Volume, start: [i64; 3], dims: [usize; 3]) -> Result<Volume> {
    let mut shift = Affine::IDENTITY;
    for (a, s) in start.iter().enumerate() {
        shift.0[a][3] = *s as f64;
    }
    resample(
        volume,
        dims,
        volume.affine.matmul(&shift),
        Interpolation::Nearest,
    )
}

/// The smallest box holding every voxel above `threshold`: (start, dims).
pub fn bounding_box(volume: &Volume, threshold: f32) -> Option<([i64; 3], [usize; 3])> {
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    let d = volume.dims;
    for k in 0..d[2] {
        for j in 0..d[1] {
            for i in 0..d[0] {
                if volume.data.get_f32(volume.index(i, j, k)) > threshold {
                    for (a, v) in [i, j, k].into_iter().enumerate() {
                        lo[a] = lo[a].min(v);
                        hi[a] = hi[a].max(v);
                    }
                }
            }
        }
    }
    (lo[0] != usize::MAX).then(|| (lo.map(|v| v as i64), [0, 1, 2].map(|a| hi[a] - lo[a] + 1)))
}

/// The physical volume of voxels labelled `label`, in millilitres.
pub fn label_volume_ml(volume: &Volume, label: u16) -> f64 {
    let count = match &volume.data {
        VoxelData::U8(v) => v.iter().filter(|&&x| x as u16 == label).count(),
        VoxelData::U16(v) => v.iter().filter(|&&x| x == label).count(),
        VoxelData::F32(v) => v.iter().filter(|&&x| x == label as f32).count(),
    };
    count as f64 * volume.voxel_volume_mm3() / 1000.0
}
