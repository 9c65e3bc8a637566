//! Tissue and lesion segmentation with the trained attention U-Net: the
//! shipped checkpoint loaded with its training state, intensities
//! normalised the way the generator presents them, sliding-window
//! inference, argmax.

use std::path::Path;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::inference::{sliding_window, SlidingWindow};
use crate::synth::anatomy::class;
use crate::train::{read_state, State};
use crate::unet::AttentionUNet;

pub struct Segmenter {
    net: AttentionUNet,
    pub state: State,
}

/// Scales an image to 0–1 inside `mask` (by its 99.5th percentile there,
/// clipped; the generator scales each sample by its maximum, where the
/// brightest class sits), 0 outside. An empty mask gives zeros.
pub fn normalise(image: &[f32], mask: &[u8]) -> Vec<f32> {
    let mut inside: Vec<f32> = image
        .iter()
        .zip(mask)
        .filter(|(v, &m)| m != 0 && v.is_finite())
        .map(|(&v, _)| v)
        .collect();
    if inside.is_empty() {
        return vec![0.0; image.len()];
    }
    let at = ((inside.len() - 1) as f64 * 0.995) as usize;
    let (_, &mut top, _) = inside.select_nth_unstable_by(at, f32::total_cmp);
    let scale = if top > 0.0 { 1.0 / top } else { 0.0 };
    image
        .iter()
        .zip(mask)
        .map(|(&v, &m)| {
            if m != 0 && v.is_finite() {
                (v * scale).clamp(0.0, 1.0)
            } else {
                0.0
            }
        })
        .collect()
}

impl Segmenter {
    /// Loads a checkpoint written by training (weights + `gyri.state`).
    pub fn load(path: &Path) -> Result<Segmenter> {
        let state = read_state(path)?;
        let dev = Device::Cpu;
        let tensors = candle_core::safetensors::load(path, &dev)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
        let net = AttentionUNet::new(vb, state.config.unet)?;
        Ok(Segmenter { net, state })
    }

    /// Labels (0–4) of a normalised T1 and, if there is one, FLAIR (C
    /// order, `dims`). Without FLAIR no voxel is called lesion (what would
    /// be is white matter). `progress(done, total)` counts patches.
    pub fn segment(
        &self,
        t1: &[f32],
        flair: Option<&[f32]>,
        dims: [usize; 3],
        window: &SlidingWindow,
        progress: impl FnMut(usize, usize),
    ) -> Result<Vec<u8>> {
        let n: usize = dims.iter().product();
        if t1.len() != n || flair.is_some_and(|f| f.len() != n) {
            candle_core::bail!("segment: images do not match the grid {dims:?}");
        }
        let mut input = Vec::with_capacity(2 * n);
        input.extend_from_slice(t1);
        match flair {
            Some(f) => input.extend_from_slice(f),
            None => input.resize(2 * n, 0.0),
        }
        let x = Tensor::from_vec(input, (2, dims[0], dims[1], dims[2]), &Device::Cpu)?;
        let div = self.state.config.unet.divisor();
        let mut window = *window;
        window.patch = window.patch.map(|p| p.div_ceil(div) * div);
        let probs = sliding_window(
            &x,
            &window,
            |patch| candle_nn::ops::softmax(&self.net.forward(patch)?, 1),
            progress,
        )?;
        let mut labels: Vec<u8> = probs
            .argmax(0)?
            .flatten_all()?
            .to_vec1::<u32>()?
            .into_iter()
            .map(|c| c as u8)
            .collect();
        if flair.is_none() {
            labels
                .iter_mut()
                .filter(|l| **l == class::LESION)
                .for_each(|l| *l = class::WHITE_MATTER);
        }
        Ok(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_scales_by_the_masks_bright_end_and_clears_the_outside() {
        let image: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let mut mask = vec![1u8; 1000];
        mask[..10].iter_mut().for_each(|m| *m = 0);
        let n = normalise(&image, &mask);
        assert!(n[..10].iter().all(|&v| v == 0.0));
        // 990 voxels 10..999: the 99.5th percentile is index 984 of them, 994
        assert!((n[500] - 500.0 / 994.0).abs() < 1e-6);
        assert_eq!(n[999], 1.0);
        assert!(normalise(&image, &[0u8; 1000]).iter().all(|&v| v == 0.0));
    }
}
