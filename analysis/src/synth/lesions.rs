//! White-matter lesions painted into a label map for the generator:
//! ellipsoids of random size and orientation with an irregular (randomly
//! modulated) surface, centred in white matter — some next to CSF
//! (periventricular), some next to grey matter (juxtacortical), the rest
//! anywhere in it — and only ever replacing white matter. Overlapping
//! blobs make confluent lesions. Deterministic by seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::anatomy::class;
use crate::index3::{coords, offset};

/// How many lesions a sample gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    None,
    Mild,
    Moderate,
    Heavy,
}

impl Load {
    fn count(self, rng: &mut StdRng) -> usize {
        match self {
            Load::None => 0,
            Load::Mild => rng.gen_range(1..=5),
            Load::Moderate => rng.gen_range(5..=15),
            Load::Heavy => rng.gen_range(15..=40),
        }
    }

    /// A random load, lesion-free a quarter of the time.
    pub fn draw(rng: &mut StdRng) -> Load {
        match rng.gen_range(0..4) {
            0 => Load::None,
            1 => Load::Mild,
            2 => Load::Moderate,
            _ => Load::Heavy,
        }
    }
}

fn neighbours_class(labels: &[u8], dims: [usize; 3], i: usize, c: u8, reach: usize) -> bool {
    let p = coords(i, dims);
    let r = reach as isize;
    (-r..=r).any(|da| {
        (-r..=r).any(|db| {
            (-r..=r).any(|dd| offset(dims, p, [da, db, dd]).is_some_and(|j| labels[j] == c))
        })
    })
}

/// Paints lesions into `labels` (C order, `dims`, voxels of ~1 mm) in place;
/// returns how many blobs were placed.
pub fn add_lesions(labels: &mut [u8], dims: [usize; 3], seed: u64, load: Load) -> usize {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = load.count(&mut rng);
    let wm: Vec<usize> = (0..labels.len())
        .filter(|&i| labels[i] == class::WHITE_MATTER)
        .collect();
    if wm.is_empty() || n == 0 {
        return 0;
    }
    let original = labels.to_vec();
    let mut placed = 0;
    for _ in 0..n {
        // where: periventricular, juxtacortical or anywhere (a few tries)
        let kind = rng.gen_range(0..3);
        let mut centre = wm[rng.gen_range(0..wm.len())];
        for _ in 0..50 {
            let c = wm[rng.gen_range(0..wm.len())];
            let ok = match kind {
                0 => neighbours_class(&original, dims, c, class::CSF, 3),
                1 => neighbours_class(&original, dims, c, class::GREY_MATTER, 2),
                _ => true,
            };
            if ok {
                centre = c;
                break;
            }
        }
        let radii = [0, 1, 2].map(|_| rng.gen_range(1.0f64..6.0));
        let (t, p) = (
            rng.gen_range(0.0..std::f64::consts::PI),
            rng.gen_range(0.0..std::f64::consts::TAU),
        );
        // an orthonormal frame from the random direction (t, p)
        let u = [t.sin() * p.cos(), t.sin() * p.sin(), t.cos()];
        let helper = if u[0].abs() < 0.9 {
            [1.0, 0.0, 0.0]
        } else {
            [0.0, 1.0, 0.0]
        };
        let cross = |a: [f64; 3], b: [f64; 3]| {
            [
                a[1] * b[2] - a[2] * b[1],
                a[2] * b[0] - a[0] * b[2],
                a[0] * b[1] - a[1] * b[0],
            ]
        };
        let norm = |a: [f64; 3]| {
            let l = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
            a.map(|x| x / l)
        };
        let v = norm(cross(u, helper));
        let w = cross(u, v);
        // surface irregularity: a few random low-frequency ripples
        let ripples: Vec<([f64; 3], f64, f64)> = (0..3)
            .map(|_| {
                let d = norm([
                    rng.gen_range(-1.0..1.0),
                    rng.gen_range(-1.0..1.0),
                    rng.gen_range(-1.0..1.0),
                ]);
                (
                    d,
                    rng.gen_range(0.05..0.3),
                    rng.gen_range(0.0..std::f64::consts::TAU),
                )
            })
            .collect();
        let centre_at = coords(centre, dims);
        let reach = radii.iter().cloned().fold(0.0, f64::max).ceil() as isize + 2;
        let mut painted = false;
        for da in -reach..=reach {
            for db in -reach..=reach {
                for dc in -reach..=reach {
                    let Some(i) = offset(dims, centre_at, [da, db, dc]) else {
                        continue;
                    };
                    let d = [da as f64, db as f64, dc as f64];
                    let dot = |a: [f64; 3]| a[0] * d[0] + a[1] * d[1] + a[2] * d[2];
                    let e = (dot(u) / radii[0]).powi(2)
                        + (dot(v) / radii[1]).powi(2)
                        + (dot(w) / radii[2]).powi(2);
                    let len = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt().max(1e-9);
                    let wobble: f64 = ripples
                        .iter()
                        .map(|(dir, amp, phase)| {
                            amp * (3.0 * (dir[0] * d[0] + dir[1] * d[1] + dir[2] * d[2]) / len
                                + phase)
                                .cos()
                        })
                        .sum();
                    if e.sqrt() <= 1.0 + wobble && original[i] == class::WHITE_MATTER {
                        labels[i] = class::LESION;
                        painted = true;
                    }
                }
            }
        }
        placed += usize::from(painted);
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A white-matter block inside grey matter inside CSF.
    fn brain() -> (Vec<u8>, [usize; 3]) {
        let dims = [40, 40, 40];
        let mut l = vec![class::CSF; 64000];
        for a in 0..40 {
            for b in 0..40 {
                for c in 0..40 {
                    let d = [a, b, c].iter().map(|&i| i.min(39 - i)).min().unwrap();
                    l[(a * 40 + b) * 40 + c] = match d {
                        0..=3 => class::CSF,
                        4..=7 => class::GREY_MATTER,
                        _ => class::WHITE_MATTER,
                    };
                }
            }
        }
        (l, dims)
    }

    #[test]
    fn lesions_replace_only_white_matter_reproducibly_and_grow_with_the_load() {
        let (l, dims) = brain();
        let mut none = l.clone();
        assert_eq!(add_lesions(&mut none, dims, 1, Load::None), 0);
        assert_eq!(none, l);
        let (mut mild_total, mut heavy_total) = (0, 0);
        for seed in 0..8 {
            let mut a = l.clone();
            let placed = add_lesions(&mut a, dims, seed, Load::Heavy);
            let mut b = l.clone();
            add_lesions(&mut b, dims, seed, Load::Heavy);
            assert_eq!(a, b, "seed {seed} reproducible");
            assert!(placed >= 15);
            for (before, after) in l.iter().zip(&a) {
                assert!(
                    before == after || (*before == class::WHITE_MATTER && *after == class::LESION)
                );
            }
            heavy_total += a.iter().filter(|&&v| v == class::LESION).count();
            let mut m = l.clone();
            add_lesions(&mut m, dims, seed, Load::Mild);
            mild_total += m.iter().filter(|&&v| v == class::LESION).count();
        }
        assert!(
            mild_total > 0 && heavy_total > 3 * mild_total,
            "{mild_total} vs {heavy_total}"
        );
    }
}
