//! 3D operations built from candle's own differentiable tensor operations
//! (so their backward comes from candle's autograd): 2³ stride-2 transposed
//! convolution, 1×1×1 convolution, ×2 upsampling (nearest and trilinear),
//! instance and batch normalisation.

use candle_core::{bail, Result, Tensor, D};

use super::conv3d::dims5;

/// `ConvTranspose3d` with a 2³ kernel and stride 2 (each input voxel paints
/// its own 2³ block): `x`: `N × C_in × D × H × W`, `w`: `C_in × C_out × 2 ×
/// 2 × 2` (PyTorch's layout); returns `N × C_out × 2D × 2H × 2W`.
pub fn conv_transpose3d_2(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let [n, c_in, d, h, wd] = dims5(x, "conv_transpose3d input")?;
    let [wc_in, c_out, 2, 2, 2] = dims5(w, "conv_transpose3d weight")? else {
        bail!("conv_transpose3d: weight {:?} is not 2×2×2", w.dims());
    };
    if wc_in != c_in {
        bail!(
            "conv_transpose3d: weight {:?} does not fit input {:?}",
            w.dims(),
            x.dims()
        );
    }
    let cols = x.reshape((n, c_in, d * h * wd))?.transpose(1, 2)?; // N × S × C_in
    let y = cols.broadcast_matmul(&w.reshape((c_in, c_out * 8))?)?; // N × S × C_out·8
    y.reshape(vec![n, d, h, wd, c_out, 2, 2, 2])?
        .permute(vec![0, 4, 1, 5, 2, 6, 3, 7])?
        .reshape((n, c_out, 2 * d, 2 * h, 2 * wd))
}

/// 1×1×1 convolution: `w`: `C_out × C_in × 1 × 1 × 1` (or `C_out × C_in`).
pub fn conv1x1x1(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let [n, c_in, d, h, wd] = dims5(x, "conv1x1x1 input")?;
    let c_out = w.dims()[0];
    if w.elem_count() != c_out * c_in {
        bail!(
            "conv1x1x1: weight {:?} does not fit input {:?}",
            w.dims(),
            x.dims()
        );
    }
    let w = w.reshape((c_out, c_in))?;
    w.broadcast_matmul(&x.reshape((n, c_in, d * h * wd))?)?
        .reshape((n, c_out, d, h, wd))
}

/// Adds a per-channel bias (`C`) to `N × C × …`.
pub fn add_channel_bias(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let c = bias.elem_count();
    x.broadcast_add(&bias.reshape((1, c, 1, 1, 1))?)
}

/// Nearest-neighbour upsampling by 2 on every spatial axis.
pub fn upsample_nearest_2(x: &Tensor) -> Result<Tensor> {
    let [n, c, d, h, w] = dims5(x, "upsample input")?;
    x.reshape(vec![n, c, d, 1, h, 1, w, 1])?
        .broadcast_as(vec![n, c, d, 2, h, 2, w, 2])?
        .reshape((n, c, 2 * d, 2 * h, 2 * w))
}

/// Linear upsampling by 2 along one axis, as PyTorch's `interpolate` with
/// `align_corners=False`: output `2j` is `¾x[j] + ¼x[j−1]`, output `2j+1`
/// is `¾x[j] + ¼x[j+1]`, the edges clamped.
fn linear_2(x: &Tensor, axis: usize) -> Result<Tensor> {
    let n = x.dim(axis)?;
    let (prev, next) = if n == 1 {
        (x.clone(), x.clone())
    } else {
        (
            Tensor::cat(&[x.narrow(axis, 0, 1)?, x.narrow(axis, 0, n - 1)?], axis)?,
            Tensor::cat(
                &[x.narrow(axis, 1, n - 1)?, x.narrow(axis, n - 1, 1)?],
                axis,
            )?,
        )
    };
    let even = ((x * 0.75)? + (prev * 0.25)?)?;
    let odd = ((x * 0.75)? + (next * 0.25)?)?;
    let mut dims = x.dims().to_vec();
    dims[axis] *= 2;
    Tensor::stack(&[even, odd], axis + 1)?.reshape(dims)
}

/// Trilinear upsampling by 2 (`align_corners=False`), written as three
/// separable linear interpolations.
pub fn upsample_trilinear_2(x: &Tensor) -> Result<Tensor> {
    dims5(x, "upsample input")?;
    linear_2(&linear_2(&linear_2(x, 2)?, 3)?, 4)
}

/// Instance normalisation: each channel of each item to zero mean and unit
/// (biased) variance over its voxels, then `γ·x + β` when given.
pub fn instance_norm3d(x: &Tensor, affine: Option<(&Tensor, &Tensor)>, eps: f64) -> Result<Tensor> {
    let [n, c, d, h, w] = dims5(x, "instance_norm input")?;
    let xr = x.reshape((n, c, d * h * w))?;
    let mean = xr.mean_keepdim(D::Minus1)?;
    let centred = xr.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    let y = centred.broadcast_div(&(var + eps)?.sqrt()?)?;
    let y = match affine {
        Some((gamma, beta)) => y
            .broadcast_mul(&gamma.reshape((1, c, 1))?)?
            .broadcast_add(&beta.reshape((1, c, 1))?)?,
        None => y,
    };
    y.reshape((n, c, d, h, w))
}

/// Batch normalisation over `N` and the voxels with the given statistics
/// (`C` each): the running ones at inference, the batch's own in training
/// (see `batch_stats`).
pub fn batch_norm3d(
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let c = x.dim(1)?;
    let shape = (1, c, 1, 1, 1);
    let scale = (gamma.reshape(shape)? / (var.reshape(shape)? + eps)?.sqrt()?)?;
    x.broadcast_sub(&mean.reshape(shape)?)?
        .broadcast_mul(&scale)?
        .broadcast_add(&beta.reshape(shape)?)
}

/// Mean and biased variance per channel over the batch and the voxels.
pub fn batch_stats(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let [n, c, d, h, w] = dims5(x, "batch_norm input")?;
    let xr = x.transpose(0, 1)?.reshape((c, n * d * h * w))?;
    let mean = xr.mean_keepdim(1)?;
    let var = xr.broadcast_sub(&mean)?.sqr()?.mean_keepdim(1)?;
    Ok((mean.flatten_all()?, var.flatten_all()?))
}
