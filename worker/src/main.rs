//! `gyri-worker`: Gyri's background worker, and command-line tools for
//! researchers and for checking.
//!
//!   gyri-worker convert --dicom DIR --out OUT_DIR
//!   gyri-worker convert --nifti FILE [--class t1|flair|other] --out OUT_DIR
//!   gyri-worker brain-extract --t1 T1.nii.gz --out DIR [--models DIR] [--folds N] [--mirroring]
//!   gyri-worker anatomy --t1 T1.nii.gz --gm GM.nii.gz --wm WM.nii.gz --out DIR [--models DIR]
//!   gyri-worker synth-sample --anatomy LABELS.nii.gz --seed N [--patch P] --out DIR
//!   gyri-worker train --config CONFIG.json --anatomy LABELS.nii.gz [--anatomy …] --out DIR
//!   gyri-worker bench-imaging [ROUNDS]
//!   gyri-worker bench-analysis [ROUNDS]

mod bench;
mod bench_analysis;

use gyri_worker::brain;

use gyri_imaging::convert::{convert_dicom_dir, convert_nifti};
use gyri_imaging::{Limits, SequenceClass};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage:
  gyri-worker convert --dicom DIR --out OUT_DIR
  gyri-worker convert --nifti FILE [--class t1|flair|other] --out OUT_DIR
  gyri-worker brain-extract --t1 T1.nii.gz --out DIR [--models DIR] [--folds N] [--mirroring]
  gyri-worker anatomy --t1 T1.nii.gz --gm GM.nii.gz --wm WM.nii.gz --out DIR [--models DIR]
  gyri-worker synth-sample --anatomy LABELS.nii.gz --seed N [--patch P] --out DIR
  gyri-worker train --config CONFIG.json --anatomy LABELS.nii.gz [--anatomy …] --out DIR
  gyri-worker bench-imaging [ROUNDS]
  gyri-worker bench-analysis [ROUNDS]";

fn main() -> ExitCode {
    gyri_analysis::alloc::keep_freed_activations();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("convert") => convert(&args[1..]),
        Some("brain-extract") => brain_extract(&args[1..]),
        Some("anatomy") => anatomy(&args[1..]),
        Some("synth-sample") => synth_sample(&args[1..]),
        Some("train") => train(&args[1..]),
        Some("bench-imaging") => {
            let rounds = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(11);
            match bench::run(&brain::testdata_dir(), rounds) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("bench-analysis") => {
            let rounds = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(5);
            match bench_analysis::run(&brain::testdata_dir(), rounds) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn convert(args: &[String]) -> ExitCode {
    let mut dicom = None;
    let mut nifti = None;
    let mut out = None;
    let mut class = SequenceClass::Other;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().cloned();
        match (flag.as_str(), value) {
            ("--dicom", Some(v)) => dicom = Some(PathBuf::from(v)),
            ("--nifti", Some(v)) => nifti = Some(PathBuf::from(v)),
            ("--out", Some(v)) => out = Some(PathBuf::from(v)),
            ("--class", Some(v)) => {
                class = match v.as_str() {
                    "t1" => SequenceClass::T1,
                    "flair" => SequenceClass::Flair,
                    "other" => SequenceClass::Other,
                    _ => return usage(&format!("unknown class {v:?}")),
                }
            }
            (f, _) => return usage(&format!("unexpected {f:?}")),
        }
    }
    let Some(out) = out else {
        return usage("--out is needed");
    };
    let limits = Limits::default();
    let report = match (dicom, nifti) {
        (Some(dir), None) => convert_dicom_dir(&dir, &out, &limits),
        (None, Some(file)) => convert_nifti(&file, class, &out, &limits),
        _ => return usage("give either --dicom DIR or --nifti FILE"),
    };
    match report {
        Ok(r) => {
            for s in &r.series {
                println!(
                    "{}  {:?}  {}×{}×{}  {}",
                    s.file, s.class, s.dims[0], s.dims[1], s.dims[2], s.description
                );
                for w in &s.warnings {
                    println!("    warning: {w}");
                }
            }
            for s in &r.refused {
                println!(
                    "refused series {} ({}): {}",
                    s.number.unwrap_or(0),
                    s.description,
                    s.reason
                );
            }
            if !r.skipped.is_empty() {
                println!("{} files skipped (see series.json)", r.skipped.len());
            }
            println!("wrote {}", out.join("series.json").display());
            if r.series.is_empty() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// HD-BET's brain mask of a T1 image. Defaults to HD-BET's fast mode
/// (fold 0, no mirroring) with the largest-component clean-up; `--folds 5
/// --mirroring` is its accurate mode (40 network passes).
fn brain_extract(args: &[String]) -> ExitCode {
    let (mut t1, mut out, mut models) = (None, None, brain::default_models_dir());
    let mut options = gyri_analysis::hdbet::Options::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--mirroring" {
            options.mirroring = true;
            continue;
        }
        let value = it.next().cloned();
        match (flag.as_str(), value) {
            ("--t1", Some(v)) => t1 = Some(PathBuf::from(v)),
            ("--out", Some(v)) => out = Some(PathBuf::from(v)),
            ("--models", Some(v)) => models = PathBuf::from(v),
            ("--folds", Some(v)) => match v.parse() {
                Ok(n) if (1..=gyri_analysis::hdbet::FOLDS).contains(&n) => options.folds = n,
                _ => return usage(&format!("--folds takes 1 to 5, not {v:?}")),
            },
            (f, _) => return usage(&format!("unexpected {f:?}")),
        }
    }
    let (Some(t1), Some(out)) = (t1, out) else {
        return usage("--t1 and --out are needed");
    };
    let mut progress = |done: usize, total: usize| eprintln!("network pass {done}/{total}");
    match brain::brain_extract(&t1, &out, &models, options, &mut progress) {
        Ok(r) => {
            println!(
                "wrote {}: brain {:.1} ml ({} network passes on a {}×{}×{} 1.5 mm grid, {:.1} s, peak memory {:.2} GB)",
                r.mask.display(),
                r.brain_ml,
                r.passes,
                r.model_dims[0],
                r.model_dims[1],
                r.model_dims[2],
                r.seconds,
                brain::peak_rss_bytes().unwrap_or(0) as f64 / 1e9
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A training label map from a T1 and its tissue probability maps.
fn anatomy(args: &[String]) -> ExitCode {
    let (mut t1, mut gm, mut wm, mut out) = (None, None, None, None);
    let mut models = brain::default_models_dir();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next().cloned()) {
            ("--t1", Some(v)) => t1 = Some(PathBuf::from(v)),
            ("--gm", Some(v)) => gm = Some(PathBuf::from(v)),
            ("--wm", Some(v)) => wm = Some(PathBuf::from(v)),
            ("--out", Some(v)) => out = Some(PathBuf::from(v)),
            ("--models", Some(v)) => models = PathBuf::from(v),
            (f, _) => return usage(&format!("unexpected {f:?}")),
        }
    }
    let (Some(t1), Some(gm), Some(wm), Some(out)) = (t1, gm, wm, out) else {
        return usage("--t1, --gm, --wm and --out are needed");
    };
    match gyri_worker::anatomy::derive(&t1, &gm, &wm, &out, &models) {
        Ok(a) => {
            let v = a.volumes_ml;
            println!(
                "wrote {}: CSF {:.0} ml, grey matter {:.0} ml, white matter {:.0} ml, head {:.0} ml",
                a.labels.display(),
                v[1],
                v[2],
                v[3],
                v[5]
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One generator sample of a label map, as NIfTI files.
fn synth_sample(args: &[String]) -> ExitCode {
    let (mut anatomy, mut out, mut seed, mut patch) = (None, None, 0u64, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next().cloned()) {
            ("--anatomy", Some(v)) => anatomy = Some(PathBuf::from(v)),
            ("--out", Some(v)) => out = Some(PathBuf::from(v)),
            ("--seed", Some(v)) => match v.parse() {
                Ok(s) => seed = s,
                Err(_) => return usage(&format!("--seed takes a number, not {v:?}")),
            },
            ("--patch", Some(v)) => match v.parse::<usize>() {
                Ok(p) if p > 0 => patch = Some(p),
                _ => return usage(&format!("--patch takes a positive number, not {v:?}")),
            },
            (f, _) => return usage(&format!("unexpected {f:?}")),
        }
    }
    let (Some(anatomy), Some(out)) = (anatomy, out) else {
        return usage("--anatomy and --out are needed");
    };
    match gyri_worker::synth::sample(&anatomy, seed, patch, &out) {
        Ok(w) => {
            for f in &w.files {
                println!("wrote {}", f.display());
            }
            println!(
                "{}×{}×{}, lesions {:.1} ml, {:.1} s",
                w.dims[0], w.dims[1], w.dims[2], w.lesion_ml, w.seconds
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Trains the attention U-Net on generator samples of the label maps, or
/// resumes the run in `--out`.
fn train(args: &[String]) -> ExitCode {
    use gyri_analysis::train::{self, TrainConfig};
    let (mut config, mut out, mut anatomies) = (None, None, vec![]);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next().cloned()) {
            ("--config", Some(v)) => config = Some(PathBuf::from(v)),
            ("--out", Some(v)) => out = Some(PathBuf::from(v)),
            ("--anatomy", Some(v)) => anatomies.push(PathBuf::from(v)),
            (f, _) => return usage(&format!("unexpected {f:?}")),
        }
    }
    let (Some(config), Some(out)) = (config, out) else {
        return usage("--config, --anatomy and --out are needed");
    };
    let fail = |e: String| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    };
    let config: TrainConfig = match std::fs::read(&config)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => return fail(format!("{}: {e}", config.display())),
    };
    let mut maps = vec![];
    for path in &anatomies {
        match gyri_worker::synth::read_label_map(path) {
            Ok((map, _)) => maps.push(map),
            Err(e) => return fail(e),
        }
    }
    let started = std::time::Instant::now();
    let mut first = None;
    let mut report = |p: &train::Progress| {
        let first = *first.get_or_insert(p.step - 1);
        let per = started.elapsed().as_secs_f64() / (p.step - first) as f64;
        let eta = per * (p.steps - p.step) as f64;
        eprintln!(
            "step {}/{}  loss {:.4}  {:.2} s/step  ETA {:.0} min",
            p.step,
            p.steps,
            p.loss,
            per,
            eta / 60.0
        );
    };
    match train::train(&config, &maps, &out, &mut report) {
        Ok(state) => {
            if let Some(v) = state.validations.last() {
                let fmt = |d: &Option<f64>| d.map_or("-".into(), |d| format!("{d:.3}"));
                println!(
                    "step {}: validation Dice background {}, CSF {}, GM {}, WM {}, lesion {}",
                    v.step,
                    fmt(&v.dice[0]),
                    fmt(&v.dice[1]),
                    fmt(&v.dice[2]),
                    fmt(&v.dice[3]),
                    fmt(v.dice.get(4).unwrap_or(&None))
                );
            }
            println!("wrote {}", out.join("checkpoint.safetensors").display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.to_string()),
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("{problem}\n{USAGE}");
    ExitCode::from(2)
}
