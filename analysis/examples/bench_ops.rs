//! A first look at the speed of the 3D ops on this machine (the side-by-side
//! benchmark against PyTorch is to come): sgemm peak through the `gemm`
//! crate, the 16→16 3³ convolution on 1×16×96³ forward and forward+backward,
//! and the attention U-Net forward on 2×2×128³ with base 16. Medians.
//!
//!   cargo run --release -p gyri-analysis --example bench_ops [ROUNDS]

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use gyri_analysis::ops;
use gyri_analysis::unet::{AttentionUNet, UNetConfig};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time(rounds: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    median(
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

#[allow(unsafe_code)]
fn sgemm(n: usize, a: &[f32], b: &[f32], c: &mut [f32], threads: usize) {
    assert!(a.len() == n * n && b.len() == n * n && c.len() == n * n);
    // SAFETY: three n×n row-major buffers, checked above.
    unsafe {
        gemm::gemm(
            n,
            n,
            n,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            n as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(threads),
        )
    }
}

fn main() -> candle_core::Result<()> {
    let rounds = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let threads = rayon::current_num_threads();
    let dev = Device::Cpu;

    let n = 2048;
    let a = vec![1.0f32; n * n];
    let b = vec![0.5f32; n * n];
    let mut c = vec![0f32; n * n];
    let gemm_s = time(rounds, || sgemm(n, &a, &b, &mut c, threads));
    let peak = 2.0 * (n as f64).powi(3) / gemm_s / 1e9;
    println!(
        "threads {threads}; sgemm {n}³: {:.3} s, {peak:.1} GFLOP/s (the peak below)",
        gemm_s
    );

    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (1, 16, 96, 96, 96), &dev)?)?;
    let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (16, 16, 3, 3, 3), &dev)?)?;
    let flops = 2.0 * 16.0 * 16.0 * 27.0 * 96f64.powi(3);
    let fwd = time(rounds, || drop(ops::conv3d(&x, &w, 1, 1).unwrap()));
    println!(
        "conv 16→16 3³ on 1×16×96³ forward: {fwd:.3} s, {:.1} GFLOP/s, {:.0} % of sgemm peak",
        flops / fwd / 1e9,
        100.0 * flops / fwd / 1e9 / peak
    );
    let both = time(rounds, || {
        let y = ops::conv3d(&x, &w, 1, 1).unwrap();
        drop(y.sum_all().unwrap().backward().unwrap());
    });
    println!(
        "conv forward+backward: {both:.3} s, {:.1} GFLOP/s",
        3.0 * flops / both / 1e9
    );

    let vars = VarMap::new();
    let net = AttentionUNet::new(
        VarBuilder::from_varmap(&vars, DType::F32, &dev),
        UNetConfig::default(),
    )?;
    let input = Tensor::randn(0f32, 1.0, (2, 2, 128, 128, 128), &dev)?;
    let unet_flops = net.flops(input.dims());
    let unet = time(rounds.min(3), || drop(net.forward(&input).unwrap()));
    println!(
        "attention U-Net (base 16, 4 levels) forward on 2×2×128³: {unet:.2} s, {:.1} GFLOP ({:.1} GFLOP/s)",
        unet_flops / 1e9,
        unet_flops / unet / 1e9
    );
    Ok(())
}
