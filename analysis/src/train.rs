//! Training the attention U-Net on generator samples: AdamW on
//! cross-entropy, a fixed validation set drawn from its own seed, Dice per
//! class on it, checkpoints that a later run resumes from.
//!
//! A checkpoint is `checkpoint.safetensors` (the weights) beside
//! `state.json` (the configuration, the step reached, the validation
//! history). AdamW's moments are not kept: a resumed run restarts them.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::synth::generator::{Sample, Sampler};
use crate::unet::{AttentionUNet, UNetConfig};

/// What a training run does (a JSON file for `gyri-worker train`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub unet: UNetConfig,
    /// Patch side, voxels (a multiple of the U-Net's divisor).
    pub patch: usize,
    pub steps: usize,
    pub learning_rate: f64,
    pub seed: u64,
    pub validation_seed: u64,
    pub validation_samples: usize,
    pub validate_every: usize,
    pub checkpoint_every: usize,
}

/// One validation: mean Dice per class over the validation set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    pub step: usize,
    /// Background, CSF, grey matter, white matter, lesion (`None` where a
    /// class is absent from both truth and prediction in every sample).
    pub dice: Vec<Option<f64>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub config: TrainConfig,
    pub step: usize,
    pub validations: Vec<Validation>,
}

/// What progress reports after each step.
pub struct Progress {
    pub step: usize,
    pub steps: usize,
    pub loss: f32,
    pub seconds_per_step: f64,
}

/// A label map of real anatomy (C order).
pub struct Anatomy {
    pub labels: Vec<u8>,
    pub dims: [usize; 3],
}

fn tensors(s: &Sample, dev: &Device) -> Result<(Tensor, Tensor)> {
    let [d, h, w] = s.dims;
    let mut input = s.t1.clone();
    input.extend_from_slice(&s.flair);
    let x = Tensor::from_vec(input, (1, 2, d, h, w), dev)?;
    let y = Tensor::from_vec(
        s.labels.iter().map(|&l| l as u32).collect::<Vec<_>>(),
        d * h * w,
        dev,
    )?;
    Ok((x, y))
}

fn loss(net: &AttentionUNet, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let logits = net.forward(x)?; // 1 × K × D × H × W
    let flat = logits.squeeze(0)?.flatten_from(1)?.t()?; // voxels × K
    candle_nn::loss::cross_entropy(&flat, y)
}

/// Dice per class of the network's argmax over `set`.
fn validate(
    net: &AttentionUNet,
    set: &[(Tensor, Tensor)],
    classes: usize,
    step: usize,
) -> Result<Validation> {
    let (mut inter, mut total) = (vec![0usize; classes], vec![0usize; classes]);
    for (x, y) in set {
        let pred = net
            .forward(x)?
            .squeeze(0)?
            .argmax(0)?
            .flatten_all()?
            .to_vec1::<u32>()?;
        let truth = y.to_vec1::<u32>()?;
        for (&p, &t) in pred.iter().zip(&truth) {
            total[p as usize] += 1;
            total[t as usize] += 1;
            if p == t {
                inter[p as usize] += 1;
            }
        }
    }
    let dice = (0..classes)
        .map(|c| (total[c] > 0).then(|| 2.0 * inter[c] as f64 / total[c] as f64))
        .collect();
    Ok(Validation { step, dice })
}

/// Trains (or resumes training in `out`) until `config.steps`.
pub fn train(
    config: &TrainConfig,
    anatomies: &[Anatomy],
    out: &Path,
    progress: &mut dyn FnMut(&Progress),
) -> Result<State> {
    let e = |e: std::io::Error| candle_core::Error::Msg(format!("{}: {e}", out.display()));
    if anatomies.is_empty() {
        candle_core::bail!("training needs at least one anatomy");
    }
    if !config.patch.is_multiple_of(config.unet.divisor()) || config.patch == 0 {
        candle_core::bail!(
            "the patch side {} must be a multiple of {}",
            config.patch,
            config.unet.divisor()
        );
    }
    std::fs::create_dir_all(out).map_err(e)?;
    let dev = Device::Cpu;
    let mut vars = VarMap::new();
    // (mutable for loading a checkpoint into the network's variables)
    let net = AttentionUNet::new(
        VarBuilder::from_varmap(&vars, DType::F32, &dev),
        config.unet,
    )?;
    let (weights, state_path) = (out.join("checkpoint.safetensors"), out.join("state.json"));
    let mut state = if state_path.exists() {
        let state: State = serde_json::from_slice(&std::fs::read(&state_path).map_err(e)?)
            .map_err(|err| candle_core::Error::Msg(format!("{}: {err}", state_path.display())))?;
        if state.config.unet != config.unet {
            candle_core::bail!("the checkpoint in {} is of another network", out.display());
        }
        vars.load(&weights)?;
        State {
            config: config.clone(),
            ..state
        }
    } else {
        State {
            config: config.clone(),
            step: 0,
            validations: vec![],
        }
    };
    let sampler = Sampler {
        patch: [config.patch; 3],
        ..Default::default()
    };
    let validation: Vec<(Tensor, Tensor)> = (0..config.validation_samples)
        .map(|i| {
            let a = &anatomies[i % anatomies.len()];
            tensors(
                &sampler.sample(
                    &a.labels,
                    a.dims,
                    config.validation_seed.wrapping_add(i as u64),
                ),
                &dev,
            )
        })
        .collect::<Result<_>>()?;
    let mut opt = AdamW::new(
        vars.all_vars(),
        ParamsAdamW {
            lr: config.learning_rate,
            ..Default::default()
        },
    )?;
    let classes = config.unet.classes;
    let save = |state: &State| -> Result<()> {
        vars.save(&weights)?;
        let json = serde_json::to_vec_pretty(state)
            .map_err(|err| candle_core::Error::Msg(err.to_string()))?;
        std::fs::write(&state_path, json).map_err(e)
    };
    while state.step < config.steps {
        let started = Instant::now();
        let a = &anatomies[state.step % anatomies.len()];
        let sample = sampler.sample(
            &a.labels,
            a.dims,
            config.seed.wrapping_add(state.step as u64),
        );
        let (x, y) = tensors(&sample, &dev)?;
        let l = loss(&net, &x, &y)?;
        opt.backward_step(&l)?;
        state.step += 1;
        progress(&Progress {
            step: state.step,
            steps: config.steps,
            loss: l.to_scalar::<f32>()?,
            seconds_per_step: started.elapsed().as_secs_f64(),
        });
        let last = state.step == config.steps;
        if !validation.is_empty()
            && (state.step.is_multiple_of(config.validate_every.max(1)) || last)
        {
            state
                .validations
                .push(validate(&net, &validation, classes, state.step)?);
        }
        if state.step.is_multiple_of(config.checkpoint_every.max(1)) || last {
            save(&state)?;
        }
    }
    Ok(state)
}
