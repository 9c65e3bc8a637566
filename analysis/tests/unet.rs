//! The attention U-Net's shapes, its attention coefficients, that it learns
//! (a few optimiser steps on a fixed problem lower the loss), that its
//! weights round-trip through safetensors, and sliding-window stitching.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Optimizer, VarBuilder, VarMap};
use gyri_analysis::inference::{sliding_window, SlidingWindow};
use gyri_analysis::unet::{AttentionUNet, UNetConfig};

const TINY: UNetConfig = UNetConfig {
    in_channels: 2,
    classes: 5,
    base: 4,
    levels: 3,
};

fn model(cfg: UNetConfig) -> (VarMap, AttentionUNet) {
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
    let net = AttentionUNet::new(vb, cfg).unwrap();
    (vars, net)
}

#[test]
fn the_unet_gives_class_logits_and_attention_in_zero_one() {
    let (_, net) = model(TINY);
    let x = Tensor::randn(0f32, 1.0, (2, 2, 16, 8, 12), &Device::Cpu).unwrap();
    let (logits, alphas) = net.forward_with_attention(&x).unwrap();
    assert_eq!(logits.dims(), &[2, 5, 16, 8, 12]);
    assert_eq!(alphas.len(), 2);
    assert_eq!(alphas[0].dims(), &[2, 1, 16, 8, 12]);
    assert_eq!(alphas[1].dims(), &[2, 1, 8, 4, 6]);
    for a in &alphas {
        let v = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|&a| a > 0.0 && a < 1.0));
    }
    // Sides that do not halve twice are refused with the reason.
    let bad = Tensor::zeros((1, 2, 10, 8, 8), DType::F32, &Device::Cpu).unwrap();
    assert!(net
        .forward(&bad)
        .unwrap_err()
        .to_string()
        .contains("divisible by 4"));
}

#[test]
fn a_few_optimiser_steps_lower_the_loss_and_weights_round_trip() {
    let (vars, net) = model(TINY);
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (1, 2, 8, 8, 8), &dev).unwrap();
    // Target: the class is set by the sign pattern of the two channels.
    let c0 = x
        .narrow(1, 0, 1)
        .unwrap()
        .gt(0f32)
        .unwrap()
        .to_dtype(DType::U32)
        .unwrap();
    let c1 = x
        .narrow(1, 1, 1)
        .unwrap()
        .gt(0f32)
        .unwrap()
        .to_dtype(DType::U32)
        .unwrap();
    let target = ((c0 * 2.0).unwrap() + c1)
        .unwrap()
        .squeeze(1)
        .unwrap()
        .flatten_all()
        .unwrap();
    let loss_of = |net: &AttentionUNet| {
        let logits = net.forward(&x).unwrap(); // 1 × 5 × 8³
        let flat = logits
            .squeeze(0)
            .unwrap()
            .flatten_from(1)
            .unwrap()
            .t()
            .unwrap();
        candle_nn::loss::cross_entropy(&flat, &target).unwrap()
    };
    let mut opt = candle_nn::AdamW::new_lr(vars.all_vars(), 1e-2).unwrap();
    let first = loss_of(&net).to_scalar::<f32>().unwrap();
    for _ in 0..25 {
        opt.backward_step(&loss_of(&net)).unwrap();
    }
    let last = loss_of(&net).to_scalar::<f32>().unwrap();
    assert!(last < 0.6 * first, "loss {first} → {last}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unet.safetensors");
    vars.save(&path).unwrap();
    let tensors = candle_core::safetensors::load(&path, &dev).unwrap();
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
    let loaded = AttentionUNet::new(vb, TINY).unwrap();
    let diff = (net.forward(&x).unwrap() - loaded.forward(&x).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(diff, 0.0);
}

#[test]
fn sliding_window_stitches_a_pointwise_network_exactly() {
    // A pointwise "network" gives the same answer whatever the tiling, so
    // the stitched result must equal it everywhere, borders and padding too.
    let dev = Device::Cpu;
    let pointwise = |x: &Tensor| -> candle_core::Result<Tensor> {
        let s = candle_nn::ops::sigmoid(&x.sum_keepdim(1)?)?;
        Tensor::cat(&[s.clone(), (1.0 - s)?], 1)
    };
    for (dims, patch, overlap) in [
        ([2, 37, 20, 25], [16, 16, 16], 0.5),
        ([2, 9, 12, 7], [16, 16, 16], 0.5),
        ([1, 33, 33, 33], [16, 8, 32], 0.25),
    ] {
        let v = Tensor::randn(0f32, 2.0, dims.to_vec(), &dev).unwrap();
        let mut calls = Vec::new();
        let window = SlidingWindow {
            patch,
            overlap,
            batch: 3,
        };
        let out = sliding_window(&v, &window, pointwise, |done, total| {
            calls.push((done, total))
        })
        .unwrap();
        let want = pointwise(&v.unsqueeze(0).unwrap())
            .unwrap()
            .squeeze(0)
            .unwrap();
        assert_eq!(out.dims(), want.dims());
        let diff = (out - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "{dims:?}: off by {diff}");
        let &(done, total) = calls.last().unwrap();
        assert_eq!(done, total);
        assert!(calls.windows(2).all(|w| w[0].0 < w[1].0));
    }
    // The probabilities of a real network still sum to one.
    let (_, net) = model(TINY);
    let v = Tensor::randn(0f32, 1.0, (2, 20, 12, 12), &dev).unwrap();
    let window = SlidingWindow {
        patch: [8, 8, 8],
        overlap: 0.5,
        batch: 2,
    };
    let probs = sliding_window(
        &v,
        &window,
        |x| candle_nn::ops::softmax(&net.forward(x)?, 1),
        |_, _| {},
    )
    .unwrap();
    let sums = probs
        .sum(0)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-4));
}
