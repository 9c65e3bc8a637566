//! The additive attention gate of Oktay et al. (2018), "Attention U-Net:
//! Learning Where to Look for the Pancreas": the skip features `x` are
//! weighted by coefficients computed from `x` and the coarser gating signal
//! `g`:
//!   q = ReLU(θ(x) + φ(g)),  α = σ(ψ(q)),  out = norm(W(α ↑ · x))
//! θ: 2³ stride-2 convolution of `x` (no bias), φ: 1×1×1 convolution of `g`,
//! ψ: 1×1×1 convolution to one channel, ↑: trilinear ×2, W: 1×1×1.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::layers::{Conv3d, InstanceNorm3d};
use crate::ops;

#[derive(Clone, Debug)]
pub struct AttentionGate {
    theta: Conv3d,
    phi: Conv3d,
    psi: Conv3d,
    out: Conv3d,
    norm: InstanceNorm3d,
}

impl AttentionGate {
    /// `skip`: channels of `x`, `gating`: channels of `g`, `inter`: of θ/φ.
    pub fn new(vb: VarBuilder, skip: usize, gating: usize, inter: usize) -> Result<Self> {
        Ok(Self {
            theta: Conv3d::new(vb.pp("theta"), skip, inter, 2, 2, 0, false)?,
            phi: Conv3d::new(vb.pp("phi"), gating, inter, 1, 1, 0, true)?,
            psi: Conv3d::new(vb.pp("psi"), inter, 1, 1, 1, 0, true)?,
            out: Conv3d::new(vb.pp("out"), skip, skip, 1, 1, 0, true)?,
            norm: InstanceNorm3d::new(vb.pp("norm"), skip)?,
        })
    }

    /// The gated skip features and the attention coefficients (`N × 1 ×
    /// x's size`). `g` is at half `x`'s size.
    pub fn forward(&self, x: &Tensor, g: &Tensor) -> Result<(Tensor, Tensor)> {
        let q = (self.theta.forward(x)? + self.phi.forward(g)?)?.relu()?;
        let alpha = ops::upsample_trilinear_2_with(
            &candle_nn::ops::sigmoid(&self.psi.forward(&q)?)?,
            false,
        )?;
        let gated = ops::scale_by_map(x, &alpha)?;
        Ok((self.norm.forward(&self.out.forward(&gated)?)?, alpha))
    }

    pub fn flops(&self, x: &[usize], g: &[usize]) -> f64 {
        let mut half = x.to_vec();
        half[1] = self.psi.in_channels();
        for d in &mut half[2..] {
            *d /= 2;
        }
        self.theta.flops(x) + self.phi.flops(g) + self.psi.flops(&half) + self.out.flops(x)
    }
}
