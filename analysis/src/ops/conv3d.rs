//! 3D convolution on candle tensors (candle 0.11 has none): a custom op
//! over the im2col + gemm kernels of `kernels`, with a hand-written
//! backward (dX: the same kernel on dY with flipped, transposed weights;
//! dW: tiled `dY · colᵀ`).

use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Storage, Tensor};

use super::kernels::{self, Geometry};

/// `N × C × D × H × W`, checked.
pub(crate) fn dims5(t: &Tensor, what: &str) -> Result<[usize; 5]> {
    match t.dims() {
        &[n, c, d, h, w] => Ok([n, c, d, h, w]),
        other => bail!("{what}: expected N×C×D×H×W, got {other:?}"),
    }
}

/// The contiguous f32 data of a CPU storage.
pub(crate) fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("{what}: only f32 is supported");
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("{what}: expected a contiguous tensor"),
    }
}

/// Runs `f` on the data of `t` (an f32 CPU tensor), in place when `t` is
/// contiguous: a backward pass need not copy whole activations.
pub(crate) fn with_f32<R>(t: &Tensor, what: &str, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        bail!("{what}: only CPU tensors are supported");
    };
    Ok(f(f32_slice(cpu, layout, what)?))
}

struct Conv3dOp {
    geometry: Geometry,
}

impl CustomOp2 for Conv3dOp {
    fn name(&self) -> &'static str {
        "conv3d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.forward(xs, xl, ws, wl, None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = self.grads(x, w, dy)?;
        Ok((Some(dx), Some(dw)))
    }
}

impl Conv3dOp {
    /// The forward of both ops (with and without bias).
    fn forward(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bias: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(xs, xl, "conv3d input")?;
        let w = f32_slice(ws, wl, "conv3d weight")?;
        let (n, c_in) = (xl.dims()[0], xl.dims()[1]);
        let c_out = wl.dims()[0];
        if let Some(b) = bias.filter(|b| b.len() != c_out) {
            bail!("conv3d: {} biases for {c_out} output channels", b.len());
        }
        let g = &self.geometry;
        let y = kernels::forward(x, n, c_in, w, c_out, bias, g);
        let [d, h, w] = g.out;
        Ok((CpuStorage::F32(y), Shape::from((n, c_out, d, h, w))))
    }

    /// dX and dW (the bias's gradient is `kernels::bias_grad`).
    fn grads(&self, x: &Tensor, w: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
        let [n, c_in, ..] = dims5(x, "conv3d input")?;
        let c_out = w.dims()[0];
        let g = self.geometry;
        let (dx, dw) = with_f32(dy, "conv3d gradient", |dy| {
            let dx = with_f32(w, "conv3d weight", |w| {
                kernels::input_grad(dy, n, c_out, w, c_in, &g)
            })?;
            let dw = with_f32(x, "conv3d input", |x| {
                kernels::weight_grad(x, n, c_in, dy, c_out, &g)
            })?;
            Ok::<_, candle_core::Error>((dx, dw))
        })??;
        Ok((
            Tensor::from_vec(dx, x.shape(), x.device())?,
            Tensor::from_vec(dw, w.shape(), w.device())?,
        ))
    }
}

impl CustomOp3 for Conv3dOp {
    fn name(&self) -> &'static str {
        "conv3d_bias"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let b = f32_slice(bs, bl, "conv3d bias")?;
        self.forward(xs, xl, ws, wl, Some(b))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = self.grads(x, w, dy)?;
        let [n, c_out, d, h, wd] = dims5(dy, "conv3d gradient")?;
        let db = with_f32(dy, "conv3d gradient", |dy| {
            kernels::bias_grad(dy, n, c_out, d * h * wd)
        })?;
        Ok((
            Some(dx),
            Some(dw),
            Some(Tensor::from_vec(db, b.shape(), b.device())?),
        ))
    }
}

/// `y = x ⊛ w` (cross-correlation, as PyTorch's `conv3d`) with a `k`³ kernel,
/// the same stride and zero padding on every axis, no bias.
/// `x`: `N × C_in × D × H × W`, `w`: `C_out × C_in × k × k × k`.
pub fn conv3d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let op = conv3d_op(x, w, stride, padding)?;
    x.contiguous()?.apply_op2(&w.contiguous()?, op)
}

/// `conv3d` plus a per-channel bias (`C_out`), added inside the kernel.
pub fn conv3d_bias(
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let op = conv3d_op(x, w, stride, padding)?;
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &bias.contiguous()?, op)
}

fn conv3d_op(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Conv3dOp> {
    let [_, c_in, d, h, wd] = dims5(x, "conv3d input")?;
    let [_, wc_in, k, k1, k2] = dims5(w, "conv3d weight")?;
    if wc_in != c_in || k != k1 || k != k2 || k == 0 || stride == 0 {
        bail!(
            "conv3d: weight {:?} does not fit input {:?} (stride {stride})",
            w.dims(),
            x.dims()
        );
    }
    let Some(geometry) = Geometry::new([d, h, wd], k, stride, padding) else {
        bail!(
            "conv3d: input {:?} is smaller than the kernel {k}",
            x.dims()
        );
    };
    Ok(Conv3dOp { geometry })
}
