//! The U-Net's convolution block: two × (3³ convolution, instance norm,
//! LeakyReLU 0.01).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::layers::{Conv3d, InstanceNorm3d};

#[derive(Clone, Debug)]
pub struct ConvBlock {
    conv1: Conv3d,
    norm1: InstanceNorm3d,
    conv2: Conv3d,
    norm2: InstanceNorm3d,
}

impl ConvBlock {
    pub fn new(vb: VarBuilder, c_in: usize, c_out: usize) -> Result<Self> {
        Ok(Self {
            conv1: Conv3d::new(vb.pp("conv1"), c_in, c_out, 3, 1, 1, true)?,
            norm1: InstanceNorm3d::new(vb.pp("norm1"), c_out)?,
            conv2: Conv3d::new(vb.pp("conv2"), c_out, c_out, 3, 1, 1, true)?,
            norm2: InstanceNorm3d::new(vb.pp("norm2"), c_out)?,
        })
    }

    pub fn flops(&self, input: &[usize]) -> f64 {
        let mut mid = input.to_vec();
        mid[1] = self.conv1.out_channels();
        self.conv1.flops(input) + self.conv2.flops(&mid)
    }
}

impl Module for ConvBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.norm1.forward_leaky(&self.conv1.forward(x)?, 0.01)?;
        self.norm2.forward_leaky(&self.conv2.forward(&x)?, 0.01)
    }
}
