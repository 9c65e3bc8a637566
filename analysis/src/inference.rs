//! Sliding-window inference of any network over a whole volume: overlapping
//! patches, each prediction weighted by a Gaussian centred on its patch (the
//! centre of a patch sees the most context), summed and normalised.
//!
//! Memory is bounded by the output accumulators (`classes × volume`), one
//! batch of patches and the network's own activations. Synchronous and
//! CPU-heavy: async callers run it on a blocking thread.

use candle_core::{bail, Device, Result, Tensor};

/// How the volume is tiled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlidingWindow {
    /// Patch size (D, H, W) in voxels.
    pub patch: [usize; 3],
    /// Fraction of a patch shared with its neighbour (0 ≤ overlap < 1).
    pub overlap: f64,
    /// Patches per network call.
    pub batch: usize,
}

impl Default for SlidingWindow {
    fn default() -> Self {
        Self {
            patch: [96, 96, 96],
            overlap: 0.5,
            batch: 1,
        }
    }
}

/// Patch starts along one axis: evenly spread, the first at 0 and the last
/// flush with the end.
fn starts(size: usize, patch: usize, overlap: f64) -> Vec<usize> {
    if size <= patch {
        return vec![0];
    }
    let step = ((patch as f64) * (1.0 - overlap)).max(1.0);
    let n = ((size - patch) as f64 / step).ceil() as usize + 1;
    (0..n)
        .map(|i| ((size - patch) as f64 * i as f64 / (n - 1) as f64).round() as usize)
        .collect()
}

/// Gaussian weights over a patch, σ = side/8, scaled to a maximum of 1 and
/// floored so that patch edges still count.
fn gaussian(patch: [usize; 3]) -> Vec<f32> {
    let axis = |n: usize| -> Vec<f64> {
        let sigma = n as f64 / 8.0;
        let c = (n as f64 - 1.0) / 2.0;
        (0..n)
            .map(|i| (-((i as f64 - c).powi(2)) / (2.0 * sigma * sigma)).exp())
            .collect()
    };
    let (a, b, c) = (axis(patch[0]), axis(patch[1]), axis(patch[2]));
    let mut w = Vec::with_capacity(patch.iter().product());
    for x in &a {
        for y in &b {
            for z in &c {
                w.push((x * y * z).max(1e-3) as f32);
            }
        }
    }
    w
}

/// Runs `net` (`N × C × patch` → `N × K × patch` probabilities, e.g. a
/// softmax) over `volume` (`C × D × H × W`) and returns `K × D × H × W`.
/// Volumes smaller than a patch are zero-padded for the network.
/// `progress(done, total)` is called after each batch of patches.
pub fn sliding_window(
    volume: &Tensor,
    window: &SlidingWindow,
    mut net: impl FnMut(&Tensor) -> Result<Tensor>,
    mut progress: impl FnMut(usize, usize),
) -> Result<Tensor> {
    let &[_, d, h, w] = volume.dims() else {
        bail!("sliding window: expected C×D×H×W, got {:?}", volume.dims());
    };
    if !(0.0..1.0).contains(&window.overlap) || window.batch == 0 || window.patch.contains(&0) {
        bail!("sliding window: unusable settings {window:?}");
    }
    let size = [d, h, w];
    let p = window.patch;
    // Pad to at least one patch on every axis.
    let padded = [d.max(p[0]), h.max(p[1]), w.max(p[2])];
    let mut vol = volume.contiguous()?;
    for axis in 0..3 {
        let extra = padded[axis] - size[axis];
        if extra > 0 {
            vol = vol.pad_with_zeros(axis + 1, 0, extra)?;
        }
    }
    let mut corners = Vec::new();
    for &z in &starts(padded[0], p[0], window.overlap) {
        for &y in &starts(padded[1], p[1], window.overlap) {
            for &x in &starts(padded[2], p[2], window.overlap) {
                corners.push([z, y, x]);
            }
        }
    }
    let weights = gaussian(p);
    let plane = padded[1] * padded[2];
    let voxels = padded[0] * plane;
    let mut acc: Vec<f32> = Vec::new();
    let mut norm = vec![0f32; voxels];
    let mut classes = 0;
    let total = corners.len();
    for (done, chunk) in corners.chunks(window.batch).enumerate() {
        let patches = chunk
            .iter()
            .map(|&[z, y, x]| {
                vol.narrow(1, z, p[0])?
                    .narrow(2, y, p[1])?
                    .narrow(3, x, p[2])
            })
            .collect::<Result<Vec<_>>>()?;
        let input = Tensor::stack(&patches, 0)?;
        let out = net(&input)?;
        let k = match out.dims() {
            &[n, k, a, b, e] if n == chunk.len() && [a, b, e] == p => k,
            other => bail!(
                "sliding window: the network returned {other:?} for {:?}",
                input.dims()
            ),
        };
        if acc.is_empty() {
            classes = k;
            acc = vec![0f32; k * voxels];
        }
        let out = out.flatten_all()?.to_vec1::<f32>()?;
        let patch_len = p[0] * p[1] * p[2];
        for (i, &[z0, y0, x0]) in chunk.iter().enumerate() {
            for (kk, chan) in out[i * k * patch_len..(i + 1) * k * patch_len]
                .chunks(patch_len)
                .enumerate()
            {
                let dst = &mut acc[kk * voxels..(kk + 1) * voxels];
                for z in 0..p[0] {
                    for y in 0..p[1] {
                        let src = (z * p[1] + y) * p[2];
                        let at = (z0 + z) * plane + (y0 + y) * padded[2] + x0;
                        let row = &mut dst[at..at + p[2]];
                        for ((a, v), g) in row
                            .iter_mut()
                            .zip(&chan[src..src + p[2]])
                            .zip(&weights[src..src + p[2]])
                        {
                            *a += v * g;
                        }
                    }
                }
            }
            for z in 0..p[0] {
                for y in 0..p[1] {
                    let src = (z * p[1] + y) * p[2];
                    let at = (z0 + z) * plane + (y0 + y) * padded[2] + x0;
                    for (n, g) in norm[at..at + p[2]]
                        .iter_mut()
                        .zip(&weights[src..src + p[2]])
                    {
                        *n += g;
                    }
                }
            }
        }
        progress((done * window.batch + chunk.len()).min(total), total);
    }
    for chan in acc.chunks_mut(voxels) {
        chan.iter_mut().zip(&norm).for_each(|(a, n)| *a /= n);
    }
    Tensor::from_vec(
        acc,
        (classes, padded[0], padded[1], padded[2]),
        &Device::Cpu,
    )?
    .narrow(1, 0, d)?
    .narrow(2, 0, h)?
    .narrow(3, 0, w)?
    .contiguous()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_starts_cover_the_axis_evenly() {
        assert_eq!(starts(10, 16, 0.5), vec![0]);
        assert_eq!(starts(16, 16, 0.5), vec![0]);
        assert_eq!(starts(32, 16, 0.5), vec![0, 8, 16]);
        let s = starts(181, 96, 0.5);
        assert_eq!((s[0], *s.last().unwrap()), (0, 85));
        assert!(s.windows(2).all(|w| w[1] - w[0] <= 48));
    }
}
