//! Training the attention U-Net on generator samples: AdamW on
//! cross-entropy, a fixed validation set drawn from its own seed, Dice per
//! class on it, checkpoints that a later run resumes from.
//!
//! The loss is cross-entropy (optionally weighted per class) plus soft Dice
//! over the foreground classes present in the patch (Dice keeps the rare
//! lesion class from being drowned by the tissue). A class absent from the
//! patch is left out of the Dice term: scored there, it would push the
//! class's probability to zero with a force hundreds of times what a patch
//! holding a small lesion pulls it up with, and the network would learn
//! never to predict lesions.
//!
//! A checkpoint is one `checkpoint.safetensors`: the weights, and in its
//! metadata (`gyri.state`) the [`State`]: configuration, anatomies, step
//! reached, validation history and the code commit of every run. That file
//! is what Gyri ships (`analysis/weights/`) and what a later run resumes
//! from. AdamW's moments are not kept: a resumed run restarts them.

use std::collections::HashMap;
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
    /// Weight of each class in the cross-entropy (all 1 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_weights: Option<Vec<f32>>,
}

/// One validation: mean Dice per class over the validation set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    pub step: usize,
    /// Background, CSF, grey matter, white matter, lesion (`None` where a
    /// class is absent from both truth and prediction in every sample).
    pub dice: Vec<Option<f64>>,
}

/// One stretch of training: the step it started from and the code it ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub from_step: usize,
    pub commit: String,
    /// AdamW's learning rate in this run (a run may lower the config's:
    /// `gyri-worker train --learning-rate`); absent in runs before it was
    /// recorded, which used the config's 0.001.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub config: TrainConfig,
    /// Names of the anatomies trained on, in the order samples cycle them.
    pub anatomies: Vec<String>,
    pub step: usize,
    pub validations: Vec<Validation>,
    pub runs: Vec<Run>,
}

/// What reports name the network by.
pub const MODEL_NAME: &str = "gyri-attention-unet";

/// The metadata key holding the [`State`] (JSON).
pub const STATE_KEY: &str = "gyri.state";

impl State {
    /// The version reports quote: architecture and step, e.g. `b16l4-s3000`.
    pub fn version(&self) -> String {
        let u = &self.config.unet;
        format!("b{}l{}-s{}", u.base, u.levels, self.step)
    }
}

/// The training state recorded in a checkpoint's metadata.
pub fn read_state(path: &Path) -> Result<State> {
    let bytes = std::fs::read(path)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
    let json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(STATE_KEY))
        .ok_or_else(|| {
            candle_core::Error::Msg(format!("{} has no {STATE_KEY} metadata", path.display()))
        })?;
    serde_json::from_str(json)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {STATE_KEY}: {e}", path.display())))
}

/// Writes the weights with `state` in the metadata (to a temporary file
/// renamed over the old checkpoint: a crash leaves the previous one whole).
fn write_checkpoint(vars: &VarMap, state: &State, path: &Path) -> Result<()> {
    let json = serde_json::to_string(state).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let meta = HashMap::from([(STATE_KEY.to_string(), json)]);
    let data = vars.data().lock().unwrap();
    let tensors: Vec<(&String, &Tensor)> = data.iter().map(|(k, v)| (k, v.as_tensor())).collect();
    let tmp = path.with_extension("safetensors.partial");
    safetensors::serialize_to_file(tensors, Some(meta), &tmp)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))
}

/// What progress reports after each step.
pub struct Progress {
    pub step: usize,
    pub steps: usize,
    pub loss: f32,
    pub seconds_per_step: f64,
    /// The validation run after this step, if one was.
    pub validation: Option<Validation>,
}

/// A label map of real anatomy (C order).
pub struct Anatomy {
    /// What the state records it by (e.g. its file name).
    pub name: String,
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

/// Classes × voxels, 1 where the voxel is of the class.
fn one_hot(y: &Tensor, classes: usize) -> Result<Tensor> {
    let labels = y.to_vec1::<u32>()?;
    let n = labels.len();
    let mut hot = vec![0f32; classes * n];
    for (i, &l) in labels.iter().enumerate() {
        hot[l as usize * n + i] = 1.0;
    }
    Tensor::from_vec(hot, (classes, n), y.device())
}

fn loss(
    net: &AttentionUNet,
    x: &Tensor,
    y: &Tensor,
    class_weights: Option<&[f32]>,
) -> Result<Tensor> {
    let logits = net.forward(x)?.squeeze(0)?.flatten_from(1)?; // K × voxels
    let (classes, dev) = (logits.dim(0)?, logits.device().clone());
    let t = one_hot(y, classes)?;
    let weights = match class_weights {
        Some(w) if w.len() == classes => Tensor::from_slice(w, (classes, 1), &dev)?,
        Some(w) => candle_core::bail!("{} class weights for {classes} classes", w.len()),
        None => Tensor::ones((classes, 1), DType::F32, &dev)?,
    };
    let tw = t.broadcast_mul(&weights)?;
    let logp = candle_nn::ops::log_softmax(&logits, 0)?;
    let ce = ((&logp * &tw)?.sum_all()? / tw.sum_all()?.to_scalar::<f32>()? as f64)?.neg()?;
    // soft Dice of the foreground classes present in the patch (smoothed by
    // one voxel)
    let p = candle_nn::ops::softmax(&logits, 0)?.narrow(0, 1, classes - 1)?;
    let t = t.narrow(0, 1, classes - 1)?;
    let truth = t.sum(1)?;
    let present = truth.gt(0f32)?.to_dtype(DType::F32)?;
    let n_present = present.sum_all()?.to_scalar::<f32>()?;
    if n_present == 0.0 {
        return Ok(ce);
    }
    let inter = (&p * &t)?.sum(1)?;
    let total = (p.sum(1)? + truth)?;
    let dice = ((inter * 2.0)? + 1.0)?.div(&(total + 1.0)?)?;
    let dice_loss = ((dice.affine(-1.0, 1.0)? * present)?.sum_all()? / n_present as f64)?;
    ce.add(&dice_loss)
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

/// Trains (or resumes training in `out`, from its `checkpoint.safetensors`)
/// until `config.steps`; `commit` names the code (recorded per run).
pub fn train(
    config: &TrainConfig,
    anatomies: &[Anatomy],
    out: &Path,
    commit: &str,
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
    let weights = out.join("checkpoint.safetensors");
    let names: Vec<String> = anatomies.iter().map(|a| a.name.clone()).collect();
    let mut state = if weights.exists() {
        let state = read_state(&weights)?;
        if state.config.unet != config.unet {
            candle_core::bail!("the checkpoint in {} is of another network", out.display());
        }
        vars.load(&weights)?;
        State {
            config: config.clone(),
            anatomies: names,
            ..state
        }
    } else {
        State {
            config: config.clone(),
            anatomies: names,
            step: 0,
            validations: vec![],
            runs: vec![],
        }
    };
    if state.step < config.steps {
        state.runs.push(Run {
            from_step: state.step,
            commit: commit.to_string(),
            learning_rate: Some(config.learning_rate),
        });
    }
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
    while state.step < config.steps {
        let started = Instant::now();
        let a = &anatomies[state.step % anatomies.len()];
        let sample = sampler.sample(
            &a.labels,
            a.dims,
            config.seed.wrapping_add(state.step as u64),
        );
        let (x, y) = tensors(&sample, &dev)?;
        let l = loss(&net, &x, &y, config.class_weights.as_deref())?;
        opt.backward_step(&l)?;
        state.step += 1;
        let last = state.step == config.steps;
        let validation = if !validation.is_empty()
            && (state.step.is_multiple_of(config.validate_every.max(1)) || last)
        {
            let v = validate(&net, &validation, classes, state.step)?;
            state.validations.push(v.clone());
            Some(v)
        } else {
            None
        };
        if state.step.is_multiple_of(config.checkpoint_every.max(1)) || last {
            write_checkpoint(&vars, &state, &weights)?;
        }
        progress(&Progress {
            step: state.step,
            steps: config.steps,
            loss: l.to_scalar::<f32>()?,
            seconds_per_step: started.elapsed().as_secs_f64(),
            validation,
        });
    }
    Ok(state)
}
