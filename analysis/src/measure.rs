//! Measurements on label maps: Dice, 26-connected lesions, lesion-wise
//! detection, class volumes. Label maps are C-order arrays of the network's
//! classes (0 background, 1 CSF, 2 GM, 3 WM, 4 lesion).

use crate::index3::{coords, offset};
use crate::synth::anatomy::class;

/// The 26-connected components of the voxels where `inside` holds: a label
/// per voxel (0 outside, components from 1) and each component's voxels
/// (`voxels[k]` for label `k + 1`), in order of their first voxel.
pub fn components(dims: [usize; 3], inside: impl Fn(usize) -> bool) -> (Vec<u32>, Vec<Vec<usize>>) {
    let n: usize = dims.iter().product();
    let mut label = vec![0u32; n];
    let mut parts: Vec<Vec<usize>> = vec![];
    let mut queue = Vec::new();
    for start in 0..n {
        if label[start] != 0 || !inside(start) {
            continue;
        }
        let id = parts.len() as u32 + 1;
        let mut voxels = vec![];
        label[start] = id;
        queue.push(start);
        while let Some(p) = queue.pop() {
            voxels.push(p);
            let at = coords(p, dims);
            for da in -1..=1 {
                for db in -1..=1 {
                    for dc in -1..=1 {
                        let Some(q) = offset(dims, at, [da, db, dc]) else {
                            continue;
                        };
                        if label[q] == 0 && inside(q) {
                            label[q] = id;
                            queue.push(q);
                        }
                    }
                }
            }
        }
        voxels.sort_unstable();
        parts.push(voxels);
    }
    (label, parts)
}

/// Dice of `class` between two label maps (`None` where neither has it).
pub fn dice(pred: &[u8], truth: &[u8], class: u8) -> Option<f64> {
    let (mut inter, mut total) = (0usize, 0usize);
    for (&p, &t) in pred.iter().zip(truth) {
        total += usize::from(p == class) + usize::from(t == class);
        inter += usize::from(p == class && t == class);
    }
    (total > 0).then(|| 2.0 * inter as f64 / total as f64)
}

/// The smallest lesion counted, mm³.
pub const MIN_LESION_MM3: f64 = 10.0;

/// One lesion: a 26-connected component of lesion voxels of at least
/// [`MIN_LESION_MM3`].
#[derive(Clone, Debug, PartialEq)]
pub struct Lesion {
    pub voxels: Vec<usize>,
    pub volume_mm3: f64,
    /// Mean voxel position (C-order axes), voxels.
    pub centroid: [f64; 3],
}

/// The lesions of a label map, largest first.
pub fn lesions(labels: &[u8], dims: [usize; 3], voxel_mm3: f64) -> Vec<Lesion> {
    let (_, parts) = components(dims, |i| labels[i] == class::LESION);
    let mut out: Vec<Lesion> = parts
        .into_iter()
        .filter(|v| v.len() as f64 * voxel_mm3 >= MIN_LESION_MM3 - 1e-9)
        .map(|voxels| {
            let mut c = [0f64; 3];
            for &i in &voxels {
                let p = coords(i, dims);
                (0..3).for_each(|a| c[a] += p[a] as f64);
            }
            let n = voxels.len() as f64;
            Lesion {
                volume_mm3: n * voxel_mm3,
                centroid: c.map(|x| x / n),
                voxels,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.voxels
            .len()
            .cmp(&a.voxels.len())
            .then(a.voxels[0].cmp(&b.voxels[0]))
    });
    out
}

/// Relabels lesion voxels outside counted lesions (too small) as white
/// matter; returns the lesions kept.
pub fn drop_small_lesions(labels: &mut [u8], dims: [usize; 3], voxel_mm3: f64) -> Vec<Lesion> {
    let kept = lesions(labels, dims, voxel_mm3);
    let mut keep = vec![false; labels.len()];
    for l in &kept {
        l.voxels.iter().for_each(|&i| keep[i] = true);
    }
    for (l, k) in labels.iter_mut().zip(keep) {
        if *l == class::LESION && !k {
            *l = class::WHITE_MATTER;
        }
    }
    kept
}

/// Lesion-wise detection: a true lesion is detected when any predicted
/// lesion voxel overlaps it; a predicted lesion is correct when it overlaps
/// any true lesion voxel. Counts only lesions of at least
/// [`MIN_LESION_MM3`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Detection {
    pub true_lesions: usize,
    pub detected: usize,
    pub predicted_lesions: usize,
    pub correct: usize,
}

impl Detection {
    pub fn of(pred: &[u8], truth: &[u8], dims: [usize; 3], voxel_mm3: f64) -> Detection {
        let t = lesions(truth, dims, voxel_mm3);
        let p = lesions(pred, dims, voxel_mm3);
        let hits = |ls: &[Lesion], other: &[u8]| {
            ls.iter()
                .filter(|l| l.voxels.iter().any(|&i| other[i] == class::LESION))
                .count()
        };
        Detection {
            true_lesions: t.len(),
            detected: hits(&t, pred),
            predicted_lesions: p.len(),
            correct: hits(&p, truth),
        }
    }

    /// Sums counts (pooling lesions over a set of images).
    pub fn pooled(self, o: Detection) -> Detection {
        Detection {
            true_lesions: self.true_lesions + o.true_lesions,
            detected: self.detected + o.detected,
            predicted_lesions: self.predicted_lesions + o.predicted_lesions,
            correct: self.correct + o.correct,
        }
    }

    /// `None` when nothing was predicted.
    pub fn precision(&self) -> Option<f64> {
        (self.predicted_lesions > 0).then(|| self.correct as f64 / self.predicted_lesions as f64)
    }

    /// `None` when there was nothing to find.
    pub fn recall(&self) -> Option<f64> {
        (self.true_lesions > 0).then(|| self.detected as f64 / self.true_lesions as f64)
    }

    pub fn f1(&self) -> Option<f64> {
        match (self.precision(), self.recall()) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        }
    }
}

/// Millilitres of each class 0–4.
pub fn volumes_ml(labels: &[u8], voxel_mm3: f64) -> [f64; 5] {
    let mut n = [0usize; 5];
    for &l in labels {
        if let Some(c) = n.get_mut(l as usize) {
            *c += 1;
        }
    }
    n.map(|c| c as f64 * voxel_mm3 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIMS: [usize; 3] = [10, 10, 10];

    fn at(a: usize, b: usize, c: usize) -> usize {
        (a * 10 + b) * 10 + c
    }

    /// White matter with three lesions: a 3×3×3 cube (27 voxels), a
    /// diagonal pair touching only at a corner (2 voxels, one component by
    /// 26-connectivity) and a single voxel.
    fn lesion_map() -> Vec<u8> {
        let mut l = vec![class::WHITE_MATTER; 1000];
        for a in 1..4 {
            for b in 1..4 {
                for c in 1..4 {
                    l[at(a, b, c)] = class::LESION;
                }
            }
        }
        l[at(7, 7, 7)] = class::LESION;
        l[at(8, 8, 8)] = class::LESION;
        l[at(5, 0, 9)] = class::LESION;
        l
    }

    #[test]
    fn components_connect_through_corners_and_lesions_have_a_minimum_size() {
        let l = lesion_map();
        let (label, parts) = components(DIMS, |i| l[i] == class::LESION);
        assert_eq!(parts.len(), 3);
        assert_eq!(label[at(7, 7, 7)], label[at(8, 8, 8)]);
        // 1 mm³ voxels: only the cube reaches 10 mm³
        let ls = lesions(&l, DIMS, 1.0);
        assert_eq!(ls.len(), 1);
        assert_eq!(ls[0].volume_mm3, 27.0);
        assert_eq!(ls[0].centroid, [2.0, 2.0, 2.0]);
        // 5 mm³ voxels: the pair (10 mm³) counts too, the single voxel not
        let ls = lesions(&l, DIMS, 5.0);
        assert_eq!(ls.len(), 2);
        assert_eq!(ls[1].volume_mm3, 10.0);
        assert_eq!(ls[1].centroid, [7.5, 7.5, 7.5]);
        let mut m = l.clone();
        let kept = drop_small_lesions(&mut m, DIMS, 1.0);
        assert_eq!(kept.len(), 1);
        assert_eq!(m.iter().filter(|&&x| x == class::LESION).count(), 27);
        assert_eq!(m[at(7, 7, 7)], class::WHITE_MATTER);
    }

    #[test]
    fn dice_detection_and_volumes_have_their_known_values() {
        let truth = lesion_map();
        // prediction: half the cube (a, b in 1..4, c in 1..2 → 9 voxels... and
        // a 12-voxel false lesion elsewhere
        let mut pred = vec![class::WHITE_MATTER; 1000];
        for a in 1..4 {
            for b in 1..4 {
                pred[at(a, b, 1)] = class::LESION;
                pred[at(a, b, 2)] = class::LESION;
            }
        }
        for c in 0..6 {
            pred[at(6, 2, c)] = class::LESION;
            pred[at(6, 3, c)] = class::LESION;
        }
        // 18 shared voxels of 30 (truth) + 30 (pred)
        assert!((dice(&pred, &truth, class::LESION).unwrap() - 36.0 / 60.0).abs() < 1e-12);
        assert_eq!(dice(&pred, &truth, class::CSF), None);
        let d = Detection::of(&pred, &truth, DIMS, 1.0);
        assert_eq!(
            d,
            Detection {
                true_lesions: 1,
                detected: 1,
                predicted_lesions: 2,
                correct: 1
            }
        );
        assert_eq!(d.precision(), Some(0.5));
        assert_eq!(d.recall(), Some(1.0));
        assert!((d.f1().unwrap() - 2.0 / 3.0).abs() < 1e-12);
        let none = Detection::of(&vec![class::WHITE_MATTER; 1000], &truth, DIMS, 1.0);
        assert_eq!(
            (none.precision(), none.recall(), none.f1()),
            (None, Some(0.0), None)
        );
        let v = volumes_ml(&truth, 2.0);
        assert_eq!(v[class::LESION as usize], 30.0 * 2.0 / 1000.0);
        assert_eq!(v[class::WHITE_MATTER as usize], 970.0 * 2.0 / 1000.0);
    }
}
