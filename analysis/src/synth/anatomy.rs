//! Label maps of real anatomy for the generator: background, CSF, grey
//! matter, white matter, and non-brain head tissue (a class the generator
//! paints but the network never predicts: it is merged into background).

/// The classes of a label map. The network's classes are 0–4; `HEAD` is
/// generation-only.
pub mod class {
    pub const BACKGROUND: u8 = 0;
    pub const CSF: u8 = 1;
    pub const GREY_MATTER: u8 = 2;
    pub const WHITE_MATTER: u8 = 3;
    pub const LESION: u8 = 4;
    pub const HEAD: u8 = 5;
}

/// A label map from tissue probabilities on one grid: inside the brain —
/// the brain mask, and wherever grey and white matter together are at
/// least as likely as not (an average template's maps reach past a
/// brain-extraction mask of its own image: on MNI152 2009a HD-BET's mask
/// leaves out 208 ml of grey-matter probability) — the most probable of
/// CSF, grey and white matter, CSF taking what the two tissues leave
/// (`1 − p_gm − p_wm`); outside it, head tissue where `head` is set, else
/// background. Probabilities are in 0–1.
pub fn from_probabilities(brain: &[u8], p_gm: &[f32], p_wm: &[f32], head: &[bool]) -> Vec<u8> {
    assert!(brain.len() == p_gm.len() && p_gm.len() == p_wm.len() && p_wm.len() == head.len());
    brain
        .iter()
        .zip(p_gm.iter().zip(p_wm))
        .zip(head)
        .map(|((&b, (&gm, &wm)), &h)| {
            if b == 0 && gm + wm < 0.5 {
                return if h { class::HEAD } else { class::BACKGROUND };
            }
            let csf = (1.0 - gm - wm).max(0.0);
            if wm >= gm && wm >= csf {
                class::WHITE_MATTER
            } else if gm >= csf {
                class::GREY_MATTER
            } else {
                class::CSF
            }
        })
        .collect()
}

/// The head in a T1 image: voxels brighter than `fraction` of the image's
/// 99th percentile (air and background are dark on T1).
pub fn head_mask(t1: &[f32], fraction: f32) -> Vec<bool> {
    let mut sorted: Vec<f32> = t1.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return vec![false; t1.len()];
    }
    let at = ((sorted.len() - 1) as f64 * 0.99) as usize;
    let (_, p99, _) = sorted.select_nth_unstable_by(at, f32::total_cmp);
    let threshold = *p99 * fraction;
    t1.iter().map(|&v| v > threshold).collect()
}

/// Voxels of each class (index = class).
pub fn class_counts(labels: &[u8]) -> [usize; 6] {
    let mut n = [0usize; 6];
    for &l in labels {
        if let Some(c) = n.get_mut(l as usize) {
            *c += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_probable_tissue_wins_inside_the_brain_and_head_tissue_outside() {
        let brain = [1, 1, 1, 1, 0, 0, 0];
        let gm = [0.6, 0.2, 0.1, 0.45, 0.2, 0.0, 0.6];
        let wm = [0.3, 0.7, 0.1, 0.45, 0.1, 0.0, 0.1];
        let head = [false, false, false, false, true, false, true];
        assert_eq!(
            from_probabilities(&brain, &gm, &wm, &head),
            vec![
                class::GREY_MATTER,
                class::WHITE_MATTER,
                class::CSF,
                class::WHITE_MATTER, // a tie goes to white matter
                class::HEAD,
                class::BACKGROUND,
                class::GREY_MATTER // outside the mask but more likely brain than not
            ]
        );
        let mut t1 = vec![0.0f32; 100];
        t1[90..].iter_mut().for_each(|v| *v = 100.0);
        let h = head_mask(&t1, 0.1);
        assert_eq!(h.iter().filter(|&&x| x).count(), 10);
        assert_eq!(class_counts(&[0, 1, 1, 5, 9]), [1, 2, 0, 0, 0, 1]);
    }
}
