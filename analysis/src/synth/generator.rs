//! Images synthesised from a label map (the contrast part of SynthSeg's
//! generator; deformation, resolution and lesions come next): per sample,
//! every class draws its own mean and spread for each contrast, the image
//! is blurred, multiplied by a smooth random bias field, given Rician-like
//! noise and scaled to 0–1. Four T1-like images in five keep T1's order of
//! intensities (CSF < GM < WM; lesions between CSF and WM), the fifth is
//! free (SynthSeg's full randomisation: shape, not intensity); FLAIR-like
//! always keeps FLAIR's (CSF dark, GM at or above WM, lesions brightest):
//! the network is only ever given those two weightings. Deterministic by
//! seed.
//!
//! Two facts of how Gyri runs the network are drawn too: half the samples
//! look skull-stripped (head tissue painted as background, as the brain
//! mask leaves a real image), and a fifth have no FLAIR (an all-zero
//! channel; their lesions are labelled white matter, which is what a
//! T1-only analysis reports).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::anatomy::class;
use super::coarse;

/// How strongly each corruption may act (upper bounds; each sample draws
/// its own amount up to them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Corruption {
    /// Gaussian blur σ, voxels.
    pub blur_sigma: f32,
    /// Bias field: the log-intensity varies by up to ± this much.
    pub bias: f32,
    /// Noise σ relative to the brightest class mean.
    pub noise: f32,
    /// Thickest slices, voxels: along one random axis the image is
    /// averaged over slabs of 1 to this many voxels (thick-slice
    /// acquisitions, 2D FLAIR), each slab one value.
    pub slice_voxels: usize,
}

impl Default for Corruption {
    fn default() -> Self {
        Corruption {
            blur_sigma: 1.0,
            bias: 0.3,
            noise: 0.05,
            slice_voxels: 5,
        }
    }
}

impl Corruption {
    /// None at all: each class at its drawn intensities, with texture.
    pub const NONE: Corruption = Corruption {
        blur_sigma: 0.0,
        bias: 0.0,
        noise: 0.0,
        slice_voxels: 1,
    };
}

/// One training pair.
pub struct Sample {
    pub dims: [usize; 3],
    pub t1: Vec<f32>,
    pub flair: Vec<f32>,
    /// The network's classes (head tissue merged into background).
    pub labels: Vec<u8>,
}

const CLASSES: usize = 6;

fn gaussian(rng: &mut StdRng) -> f32 {
    // Box–Muller
    let (u, v): (f32, f32) = (rng.gen_range(1e-7..1.0), rng.gen_range(0.0..1.0));
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

/// What a contrast's class intensities obey.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Contrast {
    /// Any order (SynthSeg's full randomisation: shape, not intensity).
    Free,
    /// T1-weighted: CSF darker than grey matter, grey darker than white;
    /// lesions between CSF and white matter (from "black holes" to
    /// isointense).
    T1,
    /// FLAIR: CSF dark, grey matter at or above white matter, lesions
    /// brighter than either tissue.
    Flair,
}

/// Per-class (mean, spread) for one contrast; head tissue as background
/// when `stripped`.
fn draw_classes(rng: &mut StdRng, kind: Contrast, stripped: bool) -> [(f32, f32); CLASSES] {
    let mut c = [(0f32, 0f32); CLASSES];
    for (i, m) in c.iter_mut().enumerate() {
        *m = (rng.gen_range(0.05..1.0), rng.gen_range(0.0..0.05));
        if i == class::BACKGROUND as usize {
            *m = (rng.gen_range(0.0..0.05), rng.gen_range(0.0..0.01));
        }
    }
    let (csf, gm, wm, lesion) = (
        class::CSF as usize,
        class::GREY_MATTER as usize,
        class::WHITE_MATTER as usize,
        class::LESION as usize,
    );
    match kind {
        Contrast::Free => {}
        Contrast::T1 => {
            c[wm].0 = rng.gen_range(0.4..1.0);
            c[gm].0 = c[wm].0 * rng.gen_range(0.55..0.9);
            c[csf].0 = c[gm].0 * rng.gen_range(0.1..0.6);
            c[lesion].0 = c[csf].0 + (c[wm].0 - c[csf].0) * rng.gen_range(0.3..1.0);
        }
        Contrast::Flair => {
            c[wm].0 = rng.gen_range(0.2..0.6);
            c[gm].0 = c[wm].0 * rng.gen_range(1.0..1.4);
            c[csf].0 = rng.gen_range(0.0..=1.0) * c[wm].0 * 0.5;
            c[lesion].0 = c[gm].0 * rng.gen_range(1.2..2.0);
        }
    }
    if stripped {
        c[class::HEAD as usize] = c[class::BACKGROUND as usize];
    }
    c
}

/// Separable Gaussian blur of a C-order volume, in place.
fn blur(v: &mut [f32], dims: [usize; 3], sigma: f32) {
    if sigma < 0.3 {
        return;
    }
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / sum).collect();
    let strides = [dims[1] * dims[2], dims[2], 1];
    let mut line = Vec::new();
    for axis in 0..3 {
        let n = dims[axis];
        let s = strides[axis];
        let others: Vec<usize> = (0..v.len()).filter(|i| (i / s).is_multiple_of(n)).collect();
        for start in others {
            line.clear();
            line.extend((0..n).map(|j| v[start + j * s]));
            for j in 0..n {
                let mut acc = 0.0;
                for (t, &k) in kernel.iter().enumerate() {
                    let q = (j as isize + t as isize - radius).clamp(0, n as isize - 1) as usize;
                    acc += k * line[q];
                }
                v[start + j * s] = acc;
            }
        }
    }
}

/// Averages `v` over slabs of `thick` voxels along `axis`, each slab taking
/// its mean (what a thick-slice acquisition records).
fn thick_slices(v: &mut [f32], dims: [usize; 3], axis: usize, thick: usize) {
    if thick <= 1 {
        return;
    }
    let strides = [dims[1] * dims[2], dims[2], 1];
    let (n, s) = (dims[axis], strides[axis]);
    for start in (0..v.len()).filter(|i| (i / s).is_multiple_of(n)) {
        for slab in (0..n).step_by(thick) {
            let end = (slab + thick).min(n);
            let mean = (slab..end).map(|j| v[start + j * s]).sum::<f32>() / (end - slab) as f32;
            for j in slab..end {
                v[start + j * s] = mean;
            }
        }
    }
}

/// A smooth multiplicative field: trilinear interpolation of a random 4³
/// grid of log-gains in ± `strength`.
fn bias_field(rng: &mut StdRng, dims: [usize; 3], strength: f32) -> Vec<f32> {
    const G: usize = 4;
    let grid: Vec<f32> = (0..G * G * G)
        .map(|_| rng.gen_range(-1.0..=1.0) * strength)
        .collect();
    let mut out = Vec::with_capacity(dims.iter().product());
    for a in 0..dims[0] {
        let na = coarse::node(a, dims[0], G);
        for b in 0..dims[1] {
            let nb = coarse::node(b, dims[1], G);
            for c in 0..dims[2] {
                let nc = coarse::node(c, dims[2], G);
                let g = |x: usize, y: usize, z: usize| grid[(x * G + y) * G + z] as f64;
                out.push((coarse::trilinear(g, na, nb, nc) as f32).exp());
            }
        }
    }
    out
}

fn contrast(
    rng: &mut StdRng,
    labels: &[u8],
    dims: [usize; 3],
    kind: Contrast,
    stripped: bool,
    c: &Corruption,
) -> Vec<f32> {
    let classes = draw_classes(rng, kind, stripped);
    let mut img: Vec<f32> = labels
        .iter()
        .map(|&l| {
            let (m, s) = classes[(l as usize).min(CLASSES - 1)];
            m + s * gaussian(rng)
        })
        .collect();
    blur(&mut img, dims, rng.gen_range(0.0..=c.blur_sigma.max(0.0)));
    if c.slice_voxels > 1 {
        let thick = rng.gen_range(1..=c.slice_voxels);
        thick_slices(&mut img, dims, rng.gen_range(0..3), thick);
    }
    if c.bias > 0.0 {
        let strength = rng.gen_range(0.0..=c.bias);
        for (v, b) in img.iter_mut().zip(bias_field(rng, dims, strength)) {
            *v *= b;
        }
    }
    if c.noise > 0.0 {
        let top = classes.iter().map(|m| m.0).fold(0f32, f32::max);
        let sigma = rng.gen_range(0.0..=c.noise) * top;
        for v in img.iter_mut() {
            let (n1, n2) = (gaussian(rng) * sigma, gaussian(rng) * sigma);
            *v = ((*v + n1).powi(2) + n2 * n2).sqrt();
        }
    }
    let max = img.iter().copied().fold(f32::MIN_POSITIVE, f32::max);
    img.iter_mut().for_each(|v| *v = (*v / max).max(0.0));
    img
}

/// How a sample is presented to the network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Presentation {
    /// Head tissue painted as background.
    pub stripped: bool,
    /// A FLAIR image (else the channel is zero and lesions are white
    /// matter).
    pub flair: bool,
    /// The T1 keeps T1's order of intensities (else any order).
    pub t1_order: bool,
}

impl Presentation {
    fn draw(rng: &mut StdRng) -> Self {
        Presentation {
            stripped: rng.gen_bool(0.5),
            flair: rng.gen_range(0..5) > 0,
            t1_order: rng.gen_range(0..5) > 0,
        }
    }
}

/// A T1-like and a FLAIR-like image of `labels` (C order, `dims`), drawn
/// from `seed`.
pub fn synthesize(labels: &[u8], dims: [usize; 3], seed: u64, corruption: &Corruption) -> Sample {
    let mut rng = StdRng::seed_from_u64(seed);
    let how = Presentation::draw(&mut rng);
    present(labels, dims, &mut rng, how, corruption)
}

/// [`synthesize`] presented as `how`.
pub fn present(
    labels: &[u8],
    dims: [usize; 3],
    rng: &mut StdRng,
    how: Presentation,
    corruption: &Corruption,
) -> Sample {
    assert_eq!(labels.len(), dims.iter().product::<usize>());
    let t1_kind = if how.t1_order {
        Contrast::T1
    } else {
        Contrast::Free
    };
    let t1 = contrast(rng, labels, dims, t1_kind, how.stripped, corruption);
    let flair = if how.flair {
        contrast(rng, labels, dims, Contrast::Flair, how.stripped, corruption)
    } else {
        vec![0.0; labels.len()]
    };
    let labels = labels
        .iter()
        .map(|&l| match l {
            class::LESION if !how.flair => class::WHITE_MATTER,
            l if l == class::HEAD || l as usize >= CLASSES => class::BACKGROUND,
            l => l,
        })
        .collect();
    Sample {
        dims,
        t1,
        flair,
        labels,
    }
}

/// The whole generator: what one training sample is made of.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampler {
    pub deformation: super::deform::Deformation,
    pub corruption: Corruption,
    /// The lesion load, or `None` to draw one per sample.
    pub load: Option<super::lesions::Load>,
    /// Most voxel layers of ventricle enlargement and of cortical thinning
    /// (each sample draws 0 to these; a third of samples none at all).
    pub atrophy_layers: [usize; 2],
    /// The patch cut from the volume (whole volume where larger).
    pub patch: [usize; 3],
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler {
            deformation: Default::default(),
            corruption: Default::default(),
            load: None,
            atrophy_layers: [3, 1],
            patch: [96, 96, 96],
        }
    }
}

impl Sampler {
    /// One sample of `anatomy` (a label map, C order, `dims`) drawn from
    /// `seed`: atrophied, given lesions, cut at random (half the time
    /// around a lesion, if there is one) and the cut deformed
    /// (the transform acts on the whole volume; only the patch is
    /// computed), imaged in two contrasts.
    pub fn sample(&self, anatomy: &[u8], dims: [usize; 3], seed: u64) -> Sample {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut labels = anatomy.to_vec();
        if rng.gen_range(0..3) > 0 {
            let [v, c] = self.atrophy_layers;
            let (v, c) = (rng.gen_range(0..=v), rng.gen_range(0..=c));
            super::atrophy::atrophy(&mut labels, dims, v, c);
        }
        let load = self
            .load
            .unwrap_or_else(|| super::lesions::Load::draw(&mut rng));
        super::lesions::add_lesions(&mut labels, dims, rng.gen(), load);
        // only the patch is deformed and imaged
        let size: [usize; 3] = std::array::from_fn(|a| self.patch[a].min(dims[a]).max(1));
        // half the patches hold a lesion, where there is one (a rare
        // class is otherwise missing from most patches: nnU-Net's
        // foreground oversampling)
        let lesion_voxels: Vec<usize> = if rng.gen_bool(0.5) {
            (0..labels.len())
                .filter(|&i| labels[i] == class::LESION)
                .collect()
        } else {
            vec![]
        };
        let deform_seed: u64 = rng.gen();
        let start: [usize; 3] = if lesion_voxels.is_empty() {
            std::array::from_fn(|a| rng.gen_range(0..=dims[a] - size[a]))
        } else {
            // where the deformation takes the lesion voxel, somewhere in the
            // patch (not within 2 voxels of its faces)
            let p =
                crate::index3::coords(lesion_voxels[rng.gen_range(0..lesion_voxels.len())], dims);
            let q = super::deform::approximate_image_of(dims, deform_seed, &self.deformation, p);
            std::array::from_fn(|a| {
                let q = q[a].round().clamp(0.0, (dims[a] - 1) as f64) as usize;
                let margin = 2.min(size[a] / 4);
                let last = dims[a] - size[a];
                let lo = (q + 1 + margin).saturating_sub(size[a]).min(last);
                let hi = q.saturating_sub(margin).clamp(lo, last);
                rng.gen_range(lo..=hi)
            })
        };
        let patch = super::deform::deform_window(
            &labels,
            dims,
            deform_seed,
            &self.deformation,
            class::BACKGROUND,
            start,
            size,
        );
        synthesize(&patch, size, rng.gen(), &self.corruption)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sampler_is_reproducible_and_cuts_consistent_patches() {
        let (l, dims) = phantom();
        let sampler = Sampler {
            patch: [16, 16, 16],
            ..Default::default()
        };
        let a = sampler.sample(&l, dims, 3);
        let b = sampler.sample(&l, dims, 3);
        assert_eq!((a.t1.clone(), a.labels.clone()), (b.t1, b.labels));
        assert_eq!(a.dims, [16, 16, 16]);
        assert_eq!(a.t1.len(), 4096);
        assert_eq!(a.flair.len(), 4096);
        assert!(a.labels.iter().all(|&c| c <= class::LESION));
        assert!(a
            .t1
            .iter()
            .chain(&a.flair)
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
        let whole = Sampler {
            patch: [99, 99, 99],
            ..sampler
        }
        .sample(&l, dims, 3);
        assert_eq!(whole.dims, dims);
    }

    #[test]
    fn half_the_patches_hold_a_lesion_when_there_is_one() {
        // white matter inside a CSF shell, 48³; patches of 8³ (0.5 % of it)
        let n = 48;
        let l: Vec<u8> = (0..n * n * n)
            .map(|i| {
                let p = crate::index3::coords(i, [n, n, n]);
                let edge = p.iter().map(|&x| x.min(n - 1 - x)).min().unwrap();
                if edge < 3 {
                    class::CSF
                } else {
                    class::WHITE_MATTER
                }
            })
            .collect();
        let sampler = Sampler {
            patch: [8, 8, 8],
            load: Some(super::super::lesions::Load::Mild),
            ..Default::default()
        };
        let (mut with_flair, mut holding) = (0, 0);
        for seed in 0..60 {
            let s = sampler.sample(&l, [n, n, n], seed);
            if s.flair.iter().any(|&v| v != 0.0) {
                with_flair += 1;
                holding += usize::from(s.labels.contains(&class::LESION));
            }
        }
        assert!(
            holding * 10 >= with_flair * 3,
            "{holding} of {with_flair} patches hold a lesion"
        );
    }

    #[test]
    fn thick_slices_average_slabs_along_one_axis() {
        let dims = [2, 1, 5];
        let mut v = vec![1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0];
        thick_slices(&mut v, dims, 2, 2);
        assert_eq!(
            v,
            vec![1.5, 1.5, 3.5, 3.5, 5.0, 15.0, 15.0, 35.0, 35.0, 50.0]
        );
        let mut w = vec![1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0];
        thick_slices(&mut w, dims, 0, 2);
        assert_eq!(w[0], 5.5);
        assert_eq!(w[5], 5.5);
    }

    /// Nested boxes: head, CSF, grey, white matter and a lesion.
    fn phantom() -> (Vec<u8>, [usize; 3]) {
        let dims = [20, 22, 24];
        let mut l = vec![0u8; dims.iter().product()];
        for a in 0..dims[0] {
            for b in 0..dims[1] {
                for c in 0..dims[2] {
                    let d = [a, b, c]
                        .iter()
                        .zip(&dims)
                        .map(|(&i, &n)| i.min(n - 1 - i))
                        .min()
                        .unwrap();
                    l[(a * dims[1] + b) * dims[2] + c] = match d {
                        0 => class::BACKGROUND,
                        1..=2 => class::HEAD,
                        3 => class::CSF,
                        4..=5 => class::GREY_MATTER,
                        _ if a == 10 && b == 11 => class::LESION,
                        _ => class::WHITE_MATTER,
                    };
                }
            }
        }
        (l, dims)
    }

    fn class_mean(img: &[f32], labels: &[u8], c: u8) -> f32 {
        let v: Vec<f32> = img
            .iter()
            .zip(labels)
            .filter(|(_, &l)| l == c)
            .map(|(&x, _)| x)
            .collect();
        v.iter().sum::<f32>() / v.len() as f32
    }

    /// Mean intensity of CSF, grey matter, white matter and lesion.
    fn tissue_means(img: &[f32], labels: &[u8]) -> (f32, f32, f32, f32) {
        let m = |c| class_mean(img, labels, c);
        (
            m(class::CSF),
            m(class::GREY_MATTER),
            m(class::WHITE_MATTER),
            m(class::LESION),
        )
    }

    #[test]
    fn blur_keeps_constants_and_mass_and_spreads_an_impulse() {
        let dims = [9, 10, 11];
        let mut flat = vec![2.5f32; 990];
        blur(&mut flat, dims, 1.2);
        assert!(flat.iter().all(|v| (v - 2.5).abs() < 1e-5));
        let mut impulse = vec![0f32; 990];
        impulse[(4 * 10 + 5) * 11 + 5] = 1.0;
        blur(&mut impulse, dims, 1.0);
        let sum: f32 = impulse.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "{sum}");
        // σ = 1 in 3D: centre ≈ (2π)^−3/2 ≈ 0.064, a face neighbour e^−½ of it
        let (centre, next) = (
            impulse[(4 * 10 + 5) * 11 + 5],
            impulse[(4 * 10 + 5) * 11 + 6],
        );
        assert!(
            (centre - 0.064).abs() < 0.01 && (next / centre - 0.607).abs() < 0.05,
            "{centre} {next}"
        );
    }

    #[test]
    fn samples_are_reproducible_by_seed_and_differ_between_seeds() {
        let (l, dims) = phantom();
        let a = synthesize(&l, dims, 7, &Corruption::default());
        let b = synthesize(&l, dims, 7, &Corruption::default());
        let c = synthesize(&l, dims, 8, &Corruption::default());
        assert_eq!(a.t1, b.t1);
        assert_eq!(a.flair, b.flair);
        assert_ne!(a.t1, c.t1);
        assert!(a
            .t1
            .iter()
            .chain(&a.flair)
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
    }

    #[test]
    fn images_follow_their_labels_and_flairs_rules() {
        let (l, dims) = phantom();
        let how = Presentation {
            stripped: false,
            flair: true,
            t1_order: true,
        };
        for seed in 0..20 {
            let mut rng = StdRng::seed_from_u64(seed);
            let s = present(&l, dims, &mut rng, how, &Corruption::NONE);
            // head tissue is painted but labelled background
            assert!(!s.labels.contains(&class::HEAD));
            assert_eq!(s.labels.iter().filter(|&&x| x == class::LESION).count(), 12);
            let (csf, gm, wm, lesion) = tissue_means(&s.flair, &l);
            assert!(
                csf < wm && wm <= gm && lesion > gm,
                "FLAIR, seed {seed}: {csf} {gm} {wm} {lesion}"
            );
            let (csf, gm, wm, lesion) = tissue_means(&s.t1, &l);
            assert!(
                csf < gm && gm < wm && csf < lesion && lesion <= wm + 0.02,
                "T1, seed {seed}: {csf} {gm} {wm} {lesion}"
            );
        }
    }

    #[test]
    fn stripped_samples_hide_the_head_and_flairless_ones_report_no_lesions() {
        let (l, dims) = phantom();
        for seed in 0..10 {
            let mut rng = StdRng::seed_from_u64(seed);
            let how = Presentation {
                stripped: true,
                flair: false,
                t1_order: false,
            };
            let s = present(&l, dims, &mut rng, how, &Corruption::NONE);
            assert!(s.flair.iter().all(|&v| v == 0.0));
            assert!(!s.labels.contains(&class::LESION));
            let lesion_voxels = l.iter().filter(|&&x| x == class::LESION).count();
            let wm = |labels: &[u8]| labels.iter().filter(|&&x| x == class::WHITE_MATTER).count();
            assert_eq!(wm(&s.labels), wm(&l) + lesion_voxels);
            // head and background drawn alike: within the texture's spread
            let (head, bg) = (
                class_mean(&s.t1, &l, class::HEAD),
                class_mean(&s.t1, &l, class::BACKGROUND),
            );
            assert!(
                (head - bg).abs() < 0.01,
                "seed {seed}: head {head} background {bg}"
            );
        }
        // and presentations vary across seeds
        let kinds: std::collections::HashSet<_> = (0..40)
            .map(|seed| {
                let s = synthesize(&l, dims, seed, &Corruption::NONE);
                (
                    s.flair.iter().all(|&v| v == 0.0),
                    s.labels.contains(&class::LESION),
                )
            })
            .collect();
        assert_eq!(kinds.len(), 2, "{kinds:?}");
    }
}
