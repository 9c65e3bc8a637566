//! The attention-gate 3D U-Net (Oktay et al., 2018, "Attention U-Net:
//! Learning Where to Look for the Pancreas", MIDL), for brain MRI: input
//! channels T1 and FLAIR, output classes background, CSF, grey matter,
//! white matter, white-matter lesion.
//!
//! Encoder: `levels` blocks, channels `base · 2^i`, 2³ max pooling between.
//! Decoder, from the bottom up: the coarser features `g` gate the skip
//! features of the level (`AttentionGate`), are upsampled by a 2³ stride-2
//! transposed convolution, concatenated with the gated skip and refined by a
//! block. A 1×1×1 convolution gives the class logits.
//!
//! Weight names: `enc.{i}.*`, `gate.{i}.*`, `up.{i}.*`, `dec.{i}.*`,
//! `head.*` (level `i`, 0 the finest).

mod block;
mod gate;

pub use block::ConvBlock;
pub use gate::AttentionGate;

use candle_core::{bail, Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::layers::{Conv3d, ConvTranspose3d};
use crate::ops;

/// The shape of the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UNetConfig {
    /// Input channels (T1, FLAIR).
    pub in_channels: usize,
    /// Output classes.
    pub classes: usize,
    /// Channels of the finest level; doubled at each coarser one.
    pub base: usize,
    /// Resolution levels (the bottom included).
    pub levels: usize,
}

impl Default for UNetConfig {
    fn default() -> Self {
        Self {
            in_channels: 2,
            classes: 5,
            base: 16,
            levels: 4,
        }
    }
}

impl UNetConfig {
    fn channels(&self, level: usize) -> usize {
        self.base << level
    }

    /// Patch sides must halve `levels − 1` times.
    pub fn divisor(&self) -> usize {
        1 << (self.levels - 1)
    }
}

#[derive(Clone, Debug)]
pub struct AttentionUNet {
    cfg: UNetConfig,
    enc: Vec<ConvBlock>,
    gates: Vec<AttentionGate>,
    ups: Vec<ConvTranspose3d>,
    dec: Vec<ConvBlock>,
    head: Conv3d,
}

impl AttentionUNet {
    pub fn new(vb: VarBuilder, cfg: UNetConfig) -> Result<Self> {
        if cfg.levels < 2 || cfg.base == 0 || cfg.in_channels == 0 || cfg.classes == 0 {
            bail!("U-Net: unusable configuration {cfg:?}");
        }
        let mut enc = Vec::new();
        let (mut gates, mut ups, mut dec) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..cfg.levels {
            let c_in = if i == 0 {
                cfg.in_channels
            } else {
                cfg.channels(i - 1)
            };
            enc.push(ConvBlock::new(
                vb.pp(format!("enc.{i}")),
                c_in,
                cfg.channels(i),
            )?);
        }
        for i in 0..cfg.levels - 1 {
            let (c, below) = (cfg.channels(i), cfg.channels(i + 1));
            gates.push(AttentionGate::new(
                vb.pp(format!("gate.{i}")),
                c,
                below,
                c.max(1),
            )?);
            ups.push(ConvTranspose3d::new(vb.pp(format!("up.{i}")), below, c)?);
            dec.push(ConvBlock::new(vb.pp(format!("dec.{i}")), 2 * c, c)?);
        }
        let head = Conv3d::new(vb.pp("head"), cfg.channels(0), cfg.classes, 1, 1, 0, true)?;
        Ok(Self {
            cfg,
            enc,
            gates,
            ups,
            dec,
            head,
        })
    }

    pub fn config(&self) -> UNetConfig {
        self.cfg
    }

    /// Class logits and, per level, the attention coefficients.
    pub fn forward_with_attention(&self, x: &Tensor) -> Result<(Tensor, Vec<Tensor>)> {
        let dims = x.dims();
        let k = self.cfg.divisor();
        if dims.len() != 5
            || dims[1] != self.cfg.in_channels
            || dims[2..].iter().any(|d| d % k != 0 || *d == 0)
        {
            bail!(
                "U-Net: input {dims:?} must be N×{}×D×H×W with sides divisible by {k}",
                self.cfg.in_channels
            );
        }
        let mut skips = Vec::with_capacity(self.cfg.levels);
        let mut h = x.clone();
        for (i, block) in self.enc.iter().enumerate() {
            if i > 0 {
                h = ops::max_pool3d_2(&h)?;
            }
            h = block.forward(&h)?;
            skips.push(h.clone());
        }
        let mut alphas = Vec::new();
        for i in (0..self.cfg.levels - 1).rev() {
            let (gated, alpha) = self.gates[i].forward(&skips[i], &h)?;
            let up = self.ups[i].forward(&h)?;
            h = self.dec[i].forward(&ops::cat_channels(&gated, &up)?)?;
            alphas.push(alpha);
        }
        alphas.reverse();
        Ok((self.head.forward(&h)?, alphas))
    }

    /// Floating-point operations of the convolutions of one forward pass.
    pub fn flops(&self, input: &[usize]) -> f64 {
        let mut shape = input.to_vec();
        let mut total = 0.0;
        let mut shapes = Vec::new();
        for (i, block) in self.enc.iter().enumerate() {
            if i > 0 {
                shape[2..].iter_mut().for_each(|d| *d /= 2);
            }
            total += block.flops(&shape);
            shape[1] = self.cfg.channels(i);
            shapes.push(shape.clone());
        }
        for i in (0..self.cfg.levels - 1).rev() {
            let (x, g) = (&shapes[i], &shapes[i + 1]);
            total += self.gates[i].flops(x, g);
            // the transposed convolution: 2·C_in·C_out·8 per coarse voxel
            let coarse: usize = g[2..].iter().product();
            total += 2.0 * (g[0] * coarse * g[1] * x[1] * 8) as f64;
            let mut cat = x.clone();
            cat[1] *= 2;
            total += self.dec[i].flops(&cat);
        }
        let mut last = shapes[0].clone();
        last[1] = self.cfg.channels(0);
        total + 2.0 * (last.iter().product::<usize>() * self.cfg.classes) as f64
    }
}

impl Module for AttentionUNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_with_attention(x)?.0)
    }
}
