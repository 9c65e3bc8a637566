//! The 3D layers as candle modules, holding their weights under PyTorch's
//! names (`weight`, `bias`) so that weights move between the two as they
//! are.

use candle_core::{Module, Result, Tensor};
use candle_nn::{init, VarBuilder};

use crate::ops;

/// `Conv3d` with a `k`³ kernel (bias optional).
#[derive(Clone, Debug)]
pub struct Conv3d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
}

impl Conv3d {
    /// Weights at `vb`: `weight` (`C_out × C_in × k³`), `bias` (`C_out`).
    pub fn new(
        vb: VarBuilder,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    ) -> Result<Self> {
        let weight = vb.get_with_hints(
            (c_out, c_in, kernel, kernel, kernel),
            "weight",
            init::DEFAULT_KAIMING_NORMAL,
        )?;
        let bias = if bias {
            let bound = 1.0 / ((c_in * kernel.pow(3)) as f64).sqrt();
            Some(vb.get_with_hints(
                c_out,
                "bias",
                init::Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
            )?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            stride,
            padding,
        })
    }

    pub fn in_channels(&self) -> usize {
        self.weight.dims()[1]
    }

    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Floating-point operations of one forward pass on `x`'s shape.
    pub fn flops(&self, input: &[usize]) -> f64 {
        let w = self.weight.dims();
        let out: f64 = input[2..]
            .iter()
            .map(|&i| ((i + 2 * self.padding - w[2]) / self.stride + 1) as f64)
            .product();
        2.0 * input[0] as f64 * out * (w[0] * w[1] * w[2] * w[3] * w[4]) as f64
    }
}

impl Module for Conv3d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.bias {
            Some(b) => ops::conv3d_bias(x, &self.weight, b, self.stride, self.padding),
            None => ops::conv3d(x, &self.weight, self.stride, self.padding),
        }
    }
}

/// `ConvTranspose3d` with a 2³ kernel and stride 2, with bias.
#[derive(Clone, Debug)]
pub struct ConvTranspose3d {
    weight: Tensor,
    bias: Tensor,
}

impl ConvTranspose3d {
    /// Weights at `vb`: `weight` (`C_in × C_out × 2³`), `bias` (`C_out`).
    pub fn new(vb: VarBuilder, c_in: usize, c_out: usize) -> Result<Self> {
        let bound = 1.0 / ((c_out * 8) as f64).sqrt();
        let u = init::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        Ok(Self {
            weight: vb.get_with_hints((c_in, c_out, 2, 2, 2), "weight", u)?,
            bias: vb.get_with_hints(c_out, "bias", u)?,
        })
    }
}

impl Module for ConvTranspose3d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::conv_transpose3d_2_bias(x, &self.weight, &self.bias)
    }
}

/// `InstanceNorm3d(affine=True)`, ε = 1e-5.
#[derive(Clone, Debug)]
pub struct InstanceNorm3d {
    weight: Tensor,
    bias: Tensor,
}

impl InstanceNorm3d {
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(channels, "weight", init::Init::Const(1.0))?,
            bias: vb.get_with_hints(channels, "bias", init::ZERO)?,
        })
    }
}

impl InstanceNorm3d {
    /// The norm followed by leaky ReLU of `slope`, in one pass.
    pub fn forward_leaky(&self, x: &Tensor, slope: f64) -> Result<Tensor> {
        ops::instance_norm_act(x, &self.weight, &self.bias, 1e-5, Some(slope))
    }
}

impl Module for InstanceNorm3d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::instance_norm_act(x, &self.weight, &self.bias, 1e-5, None)
    }
}
