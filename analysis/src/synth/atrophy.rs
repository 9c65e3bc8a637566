//! Atrophy painted into a label map for the generator: ventricles enlarged
//! (CSF grows into the white matter it borders, layer by layer) and the
//! cortex thinned (grey matter bordering CSF becomes CSF, layer by layer),
//! so that the network sees old and diseased brains as well as the
//! templates' young ones.

use super::anatomy::class;
use crate::index3::{coords, offset};

/// Face neighbours of voxel `i` (C order, `dims`).
fn neighbours(i: usize, dims: [usize; 3]) -> impl Iterator<Item = usize> {
    let p = coords(i, dims);
    [
        [-1, 0, 0],
        [1, 0, 0],
        [0, -1, 0],
        [0, 1, 0],
        [0, 0, -1],
        [0, 0, 1],
    ]
    .into_iter()
    .filter_map(move |d| offset(dims, p, d))
}

/// One layer: every `from` voxel with a face neighbour of class `next_to`
/// becomes `to`.
fn grow(labels: &mut [u8], dims: [usize; 3], from: u8, next_to: u8, to: u8) -> usize {
    let change: Vec<usize> = (0..labels.len())
        .filter(|&i| labels[i] == from && neighbours(i, dims).any(|j| labels[j] == next_to))
        .collect();
    for &i in &change {
        labels[i] = to;
    }
    change.len()
}

/// Enlarges the ventricles by `ventricle_layers` and thins the cortex by
/// `cortex_layers` voxel layers, in place. Returns the voxels changed.
pub fn atrophy(
    labels: &mut [u8],
    dims: [usize; 3],
    ventricle_layers: usize,
    cortex_layers: usize,
) -> usize {
    assert_eq!(labels.len(), dims.iter().product::<usize>());
    let mut changed = 0;
    for _ in 0..ventricle_layers {
        changed += grow(labels, dims, class::WHITE_MATTER, class::CSF, class::CSF);
    }
    for _ in 0..cortex_layers {
        changed += grow(labels, dims, class::GREY_MATTER, class::CSF, class::CSF);
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::anatomy::class_counts;

    /// CSF shell, grey-matter shell, white matter with a CSF "ventricle" at
    /// the centre.
    fn brain() -> (Vec<u8>, [usize; 3]) {
        let dims = [30, 30, 30];
        let mut l = vec![0u8; 27000];
        for a in 0..30 {
            for b in 0..30 {
                for c in 0..30 {
                    let d = [a, b, c].iter().map(|&i| i.min(29 - i)).min().unwrap();
                    let centre = [a, b, c].iter().all(|&i| (13..=16).contains(&i));
                    l[(a * 30 + b) * 30 + c] = match d {
                        0..=2 => class::CSF,
                        3..=6 => class::GREY_MATTER,
                        _ if centre => class::CSF,
                        _ => class::WHITE_MATTER,
                    };
                }
            }
        }
        (l, dims)
    }

    #[test]
    fn ventricles_grow_into_white_matter_and_the_cortex_thins_layer_by_layer() {
        let (l, dims) = brain();
        let before = class_counts(&l);
        let mut v = l.clone();
        atrophy(&mut v, dims, 2, 0);
        let after = class_counts(&v);
        // a 4³ ventricle grown by two face-connected layers: 4³ + 6·4²·2 + …
        assert!(after[class::CSF as usize] > before[class::CSF as usize] + 150);
        assert_eq!(
            after[class::GREY_MATTER as usize],
            before[class::GREY_MATTER as usize]
        );
        assert!(after[class::WHITE_MATTER as usize] < before[class::WHITE_MATTER as usize]);
        let mut c = l.clone();
        let changed = atrophy(&mut c, dims, 0, 1);
        let thin = class_counts(&c);
        // one layer of the grey shell's outer face: 24² · 6 − edges
        assert_eq!(
            before[class::GREY_MATTER as usize] - thin[class::GREY_MATTER as usize],
            changed
        );
        assert!(changed > 2500 && changed < 24 * 24 * 6);
        assert_eq!(
            thin[class::WHITE_MATTER as usize],
            before[class::WHITE_MATTER as usize]
        );
        let mut none = l.clone();
        assert_eq!(atrophy(&mut none, dims, 0, 0), 0);
        assert_eq!(none, l);
    }
}
