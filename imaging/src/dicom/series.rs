//! From the files of one series to a volume: order the frames along the
//! slice normal, check that they form a regular grid, derive the affine
//! (LPS → RAS), and fill the voxels with rescaled values.

use super::header::FileHeader;
use crate::affine::Affine;
use crate::error::{ImagingError, Result};
use crate::limits::Limits;

/// One frame of the series: which file, which frame in it, where.
#[derive(Clone, Debug)]
pub struct FrameRef {
    pub file: usize,
    pub frame: usize,
    pub position: [f64; 3],
    pub slope: f64,
    pub intercept: f64,
}

/// A checked plan for a series' volume.
#[derive(Clone, Debug)]
pub struct Layout {
    pub dims: [usize; 3],
    pub affine: Affine,
    /// Frames in slice order.
    pub frames: Vec<FrameRef>,
    pub warnings: Vec<String>,
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

/// Plans the volume of the series made of `headers` (all of one series).
pub fn layout(headers: &[FileHeader], limits: &Limits) -> Result<Layout> {
    let first = headers
        .first()
        .ok_or_else(|| ImagingError::Geometry("the series has no images".into()))?;
    if headers.iter().any(|h| h.mosaic) {
        return Err(ImagingError::Unsupported(
            "Siemens mosaic images (several slices tiled in one image): export the series as individual slices".into(),
        ));
    }
    if headers.iter().any(|h| h.samples_per_pixel != 1) {
        return Err(ImagingError::Unsupported(
            "colour images are not MR intensity images".into(),
        ));
    }
    for h in headers {
        if (h.rows, h.columns) != (first.rows, first.columns) {
            return Err(ImagingError::Geometry(format!(
                "inconsistent dimensions: images of {}×{} and {}×{} pixels in one series",
                first.columns, first.rows, h.columns, h.rows
            )));
        }
        if h.orientation
            .iter()
            .zip(&first.orientation)
            .any(|(a, b)| (a - b).abs() > 1e-4)
        {
            return Err(ImagingError::Geometry(
                "mixed orientations: the images of this series are not parallel".into(),
            ));
        }
        if h.pixel_spacing
            .iter()
            .zip(&first.pixel_spacing)
            .any(|(a, b)| (a - b).abs() > 1e-4)
        {
            return Err(ImagingError::Geometry(
                "inconsistent pixel spacing within the series".into(),
            ));
        }
    }
    let o = first.orientation;
    let row = [o[0], o[1], o[2]];
    let col = [o[3], o[4], o[5]];
    let normal = cross(row, col);
    if (norm(row) - 1.0).abs() > 1e-3 || (norm(col) - 1.0).abs() > 1e-3 || norm(normal) < 0.99 {
        return Err(ImagingError::Geometry(
            "ImageOrientationPatient is not two perpendicular unit vectors".into(),
        ));
    }

    let mut frames: Vec<FrameRef> = headers
        .iter()
        .enumerate()
        .flat_map(|(file, h)| {
            h.frames.iter().enumerate().map(move |(frame, g)| FrameRef {
                file,
                frame,
                position: g.position,
                slope: g.slope,
                intercept: g.intercept,
            })
        })
        .collect();
    frames.sort_by(|a, b| dot(a.position, normal).total_cmp(&dot(b.position, normal)));
    let mut warnings = Vec::new();

    let n = frames.len();
    let dims = [first.columns, first.rows, n];
    let voxels = dims[0].checked_mul(dims[1]).and_then(|v| v.checked_mul(n));
    if voxels.is_none_or(|v| v > limits.max_voxels) || n > limits.max_dim {
        return Err(ImagingError::TooLarge(format!(
            "{}×{}×{n} voxels is more than the limit of {}",
            dims[0], dims[1], limits.max_voxels
        )));
    }

    let slice_vector = if n == 1 {
        warnings.push("a single slice: no volume can be measured from it".into());
        let thickness = first.slice_thickness.filter(|t| *t > 0.0).unwrap_or(1.0);
        normal.map(|c| c * thickness)
    } else {
        let distances: Vec<f64> = frames
            .windows(2)
            .map(|w| dot(w[1].position, normal) - dot(w[0].position, normal))
            .collect();
        if let Some(i) = distances.iter().position(|d| d.abs() < 1e-3) {
            return Err(ImagingError::Unsupported(format!(
                "several images at the same position (slice {}): a 4D series (time points, echoes or diffusion directions) cannot be one volume",
                i + 1
            )));
        }
        let mut sorted = distances.clone();
        sorted.sort_by(f64::total_cmp);
        let typical = sorted[sorted.len() / 2];
        // Scanners round positions (GE: to a few hundredths of a millimetre
        // on oblique slices), so small jitter is normal; a gap a quarter
        // off is a missing (or extra) slice.
        let deviation = |d: f64| (d - typical).abs() / typical.abs().max(1e-3);
        if let Some((i, d)) = distances
            .iter()
            .enumerate()
            .find(|(_, d)| deviation(**d) > 0.25)
        {
            return Err(ImagingError::Geometry(format!(
                "missing slices: the gap between slices {} and {} is {d:.3} mm where the others are {typical:.3} mm",
                i + 1,
                i + 2
            )));
        }
        let worst = distances
            .iter()
            .map(|d| (d - typical).abs())
            .fold(0.0, f64::max);
        if worst > 0.01 * typical.abs() {
            warnings.push(format!(
                "uneven slice spacing (up to {worst:.3} mm off {typical:.3} mm): the affine uses the mean spacing"
            ));
        }
        let first_p = frames[0].position;
        let last_p = frames[n - 1].position;
        let v = [0, 1, 2].map(|a| (last_p[a] - first_p[a]) / (n - 1) as f64);
        let along = dot(v, normal) / norm(v);
        if along < 0.9999 || first.gantry_tilt.abs() > 0.01 {
            let angle = along.clamp(-1.0, 1.0).acos().to_degrees();
            warnings.push(format!(
                "gantry tilt or sheared slices ({:.2}°): the affine follows the slice positions",
                if first.gantry_tilt.abs() > 0.01 {
                    first.gantry_tilt.abs()
                } else {
                    angle
                }
            ));
        }
        v
    };

    // Voxel (i = column, j = row, k = slice) → LPS; then LPS → RAS.
    let [dr, dc] = first.pixel_spacing;
    let p0 = frames[0].position;
    let mut lps = [[0.0; 4]; 4];
    for a in 0..3 {
        lps[a] = [row[a] * dc, col[a] * dr, slice_vector[a], p0[a]];
    }
    lps[3][3] = 1.0;
    let mut ras = lps;
    for r in ras.iter_mut().take(2) {
        for v in r.iter_mut() {
            *v = -*v;
        }
    }
    Ok(Layout {
        dims,
        affine: Affine(ras),
        frames,
        warnings,
    })
}
