//! `gyri-worker`: Gyri's background worker, and command-line tools for
//! researchers and for checking.
//!
//!   gyri-worker work        (the job worker: see `jobs::run_from_env`)
//!   gyri-worker convert --dicom DIR --out OUT_DIR
//!   gyri-worker convert --nifti FILE [--class t1|flair|other] --out OUT_DIR
//!   gyri-worker brain-extract --t1 T1.nii.gz --out DIR [--models DIR] [--folds N] [--mirroring]
//!   gyri-worker anatomy --t1 T1.nii.gz --gm GM.nii.gz --wm WM.nii.gz --out DIR [--models DIR]
//!   gyri-worker anatomy --brain BRAIN.nii.gz --tissue TISSUE_4D.nii.gz --out DIR
//!   gyri-worker analyze (--t1 T1.nii.gz [--flair FLAIR.nii.gz] | --dicom DIR) --out DIR [--models DIR] [--weights FILE]
//!   gyri-worker evaluate --anatomy LABELS.nii.gz [--anatomy …] [--samples N] [--patch P] [--tuning] [--window N] [--overlap F] [--weights FILE] [--models DIR] [--json FILE]
//!   gyri-worker synth-sample --anatomy LABELS.nii.gz --seed N [--patch P] --out DIR
//!   gyri-worker train --config CONFIG.json --anatomy LABELS.nii.gz [--anatomy …] --out DIR [--steps N] [--learning-rate LR]
//!   gyri-worker bench-imaging [ROUNDS]
//!   gyri-worker bench-analysis [ROUNDS]
//!   gyri-worker bench-analyze [ROUNDS]

mod bench;
mod bench_analysis;
mod bench_analyze;

use gyri_worker::brain;

use gyri_imaging::convert::{convert_dicom_dir, convert_nifti};
use gyri_imaging::{Limits, SequenceClass};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage:
  gyri-worker work   (the job worker; DATABASE_URL, S3_ENDPOINT, S3_BUCKET, GYRI_WORKER_CONCURRENCY)
  gyri-worker convert --dicom DIR --out OUT_DIR
  gyri-worker convert --nifti FILE [--class t1|flair|other] --out OUT_DIR
  gyri-worker brain-extract --t1 T1.nii.gz --out DIR [--models DIR] [--folds N] [--mirroring]
  gyri-worker anatomy --t1 T1.nii.gz --gm GM.nii.gz --wm WM.nii.gz --out DIR [--models DIR]
  gyri-worker anatomy --brain BRAIN.nii.gz --tissue TISSUE_4D.nii.gz --out DIR
  gyri-worker analyze (--t1 T1.nii.gz [--flair FLAIR.nii.gz] | --dicom DIR) --out DIR [--models DIR] [--weights FILE]
  gyri-worker evaluate --anatomy LABELS.nii.gz [--anatomy …] [--samples N] [--patch P] [--tuning] [--window N] [--overlap F] [--weights FILE] [--models DIR] [--json FILE]
  gyri-worker synth-sample --anatomy LABELS.nii.gz --seed N [--patch P] --out DIR
  gyri-worker train --config CONFIG.json --anatomy LABELS.nii.gz [--anatomy …] --out DIR [--steps N] [--learning-rate LR]
  gyri-worker bench-imaging [ROUNDS]
  gyri-worker bench-analysis [ROUNDS]
  gyri-worker bench-analyze [ROUNDS]";

fn main() -> ExitCode {
    gyri_worker::prepare_compute();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("work") => work(),
        Some("convert") => convert(&args[1..]),
        Some("brain-extract") => brain_extract(&args[1..]),
        Some("analyze") => analyze(&args[1..]),
        Some("anatomy") => anatomy(&args[1..]),
        Some("evaluate") => evaluate(&args[1..]),
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
        Some("bench-analyze") => {
            let rounds = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(5);
            match bench_analyze::run(&brain::testdata_dir(), rounds) {
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

fn work() -> ExitCode {
    gyri_worker::init_logging("info,sqlx=warn,aws=warn");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(gyri_worker::jobs::run_from_env()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
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

/// The code's commit (`+dirty` with uncommitted changes), as git reports
/// it for the working directory; `unknown` outside a checkout.
fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(head) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(changes) if !changes.is_empty() => format!("{head}+dirty"),
            _ => head,
        },
        None => "unknown".into(),
    }
}

/// One study measured: labels, brain mask and metrics.json.
fn analyze(args: &[String]) -> ExitCode {
    use gyri_imaging::nifti::{self, ReadOptions};
    use gyri_worker::analyze::{self, Models, Settings};
    let started = std::time::Instant::now();
    let (mut t1, mut flair, mut dicom, mut out) = (None, None, None, None);
    let mut models = brain::default_models_dir();
    let mut weights = analyze::default_weights();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next().cloned()) {
            ("--t1", Some(v)) => t1 = Some(PathBuf::from(v)),
            ("--flair", Some(v)) => flair = Some(PathBuf::from(v)),
            ("--dicom", Some(v)) => dicom = Some(PathBuf::from(v)),
            ("--out", Some(v)) => out = Some(PathBuf::from(v)),
            ("--models", Some(v)) => models = PathBuf::from(v),
            ("--weights", Some(v)) => weights = PathBuf::from(v),
            (f, _) => return usage(&format!("unexpected {f:?}")),
        }
    }
    let Some(out) = out else {
        return usage("--out is needed");
    };
    let fail = |e: String| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    };
    let read_started = std::time::Instant::now();
    let (t1, flair) = match (t1, flair, dicom) {
        (Some(t1), flair, None) => (t1, flair),
        (None, None, Some(dir)) => {
            let series = out.join("series");
            let report = match convert_dicom_dir(&dir, &series, &Limits::default()) {
                Ok(r) => r,
                Err(e) => return fail(format!("{}: {e}", dir.display())),
            };
            let pick = |class: SequenceClass| {
                report
                    .series
                    .iter()
                    .find(|s| s.class == class)
                    .map(|s| series.join(&s.file))
            };
            let Some(t1) = pick(SequenceClass::T1) else {
                let found: Vec<String> = report
                    .series
                    .iter()
                    .map(|s| format!("{} ({})", s.description, s.class_reason))
                    .collect();
                return fail(format!(
                    "{} has no 3D T1 series; found: {}",
                    dir.display(),
                    if found.is_empty() {
                        "none".into()
                    } else {
                        found.join("; ")
                    }
                ));
            };
            (t1, pick(SequenceClass::Flair))
        }
        _ => return usage("give --t1 [--flair], or --dicom"),
    };
    let read = |p: &PathBuf| {
        nifti::read_path(p, ReadOptions::default()).map_err(|e| format!("{}: {e}", p.display()))
    };
    let t1v = match read(&t1) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let flair_v = match flair.as_ref().map(read).transpose() {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let read_s = read_started.elapsed().as_secs_f64();
    let load_started = std::time::Instant::now();
    let loaded = match Models::load(&models, &weights) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let load_s = load_started.elapsed().as_secs_f64();
    let mut report = |stage: &str| eprintln!("{stage}…");
    let mut a = match analyze::analyze(
        &loaded,
        &t1v,
        flair_v.as_ref(),
        &Settings::default(),
        &mut report,
    ) {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    a.metrics.timings_s.read = read_s;
    a.metrics.timings_s.load_models = load_s;
    match analyze::write(&mut a, &out, started) {
        Ok(files) => {
            let m = &a.metrics;
            let v = &m.volumes_ml;
            println!(
                "intracranial {:.1} mL, brain {:.1} mL (GM {:.1}, WM {:.1}), CSF {:.1} mL, lesions {}",
                v.intracranial,
                v.brain,
                v.grey_matter,
                v.white_matter,
                v.csf,
                match (m.lesions.count, v.lesion) {
                    (Some(n), Some(ml)) => format!("{n} ({ml:.2} mL)"),
                    _ => "not measured (no FLAIR)".into(),
                }
            );
            let t = &m.timings_s;
            println!(
                "seconds: total {:.1} (models {:.1}, read {:.1}, resample {:.1}, brain extraction {:.1}, normalise {:.1}, segmentation {:.1}, postprocess {:.1}, write {:.1})",
                t.total, t.load_models, t.read, t.resample, t.brain_extraction, t.normalise, t.segmentation, t.postprocess, t.write
            );
            for w in &m.qc.warnings {
                println!("QC: {w}");
            }
            for f in files {
                println!("wrote {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// The shipped network on held-out synthetic samples and real brains.
fn evaluate(args: &[String]) -> ExitCode {
    use gyri_worker::analyze::{self, Models, Settings};
    use gyri_worker::evaluate as eval;
    let (mut anatomies, mut samples, mut patch, mut json) = (vec![], 16usize, 128usize, None);
    let (mut seed, mut window, mut overlap) = (eval::HELD_OUT_SEED, None::<usize>, None::<f64>);
    let mut models = brain::default_models_dir();
    let mut weights = analyze::default_weights();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--tuning" {
            seed = eval::TUNING_SEED;
            continue;
        }
        match (flag.as_str(), it.next().cloned()) {
            ("--anatomy", Some(v)) => anatomies.push(PathBuf::from(v)),
            ("--samples", Some(v)) => match v.parse() {
                Ok(n) => samples = n,
                Err(_) => return usage(&format!("--samples takes a number, not {v:?}")),
            },
            ("--patch", Some(v)) => match v.parse::<usize>() {
                Ok(p) if p >= 16 => patch = p,
                _ => return usage(&format!("--patch takes a number ≥ 16, not {v:?}")),
            },
            ("--window", Some(v)) => match v.parse::<usize>() {
                Ok(p) if p >= 16 => window = Some(p),
                _ => return usage(&format!("--window takes a number ≥ 16, not {v:?}")),
            },
            ("--overlap", Some(v)) => match v.parse::<f64>() {
                Ok(o) if (0.0..0.95).contains(&o) => overlap = Some(o),
                _ => {
                    return usage(&format!(
                        "--overlap takes a fraction in [0, 0.95), not {v:?}"
                    ))
                }
            },
            ("--json", Some(v)) => json = Some(PathBuf::from(v)),
            ("--models", Some(v)) => models = PathBuf::from(v),
            ("--weights", Some(v)) => weights = PathBuf::from(v),
            (f, _) => return usage(&format!("unexpected {f:?}")),
        }
    }
    let fail = |e: String| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    };
    let mut maps = vec![];
    for path in &anatomies {
        match gyri_worker::synth::read_label_map(path) {
            Ok((map, _)) => maps.push(map),
            Err(e) => return fail(e),
        }
    }
    let loaded = match Models::load(&models, &weights) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let state = &loaded.unet.state;
    println!(
        "model {} {} ({} steps on {})",
        gyri_analysis::train::MODEL_NAME,
        state.version(),
        state.step,
        state.anatomies.join(", ")
    );
    let f = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.3}"));
    let pct = |x: Option<f64>| x.map_or("-".into(), |x| format!("{:+.1} %", 100.0 * x));
    let mut w = Settings::default().window(&loaded);
    w.patch = window.map_or(w.patch, |p| [p; 3]);
    w.overlap = overlap.unwrap_or(w.overlap);
    println!("sliding window {}³, overlap {}", w.patch[0], w.overlap);
    let settings = Settings { window: Some(w) };
    let synthetic = if maps.is_empty() {
        None
    } else {
        let s = match eval::synthetic(&loaded, &maps, seed, samples, patch, &w, &mut |i| {
            eprintln!("synthetic sample {i}/{samples}")
        }) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        let d = &s.dice;
        let l = &s.lesion_detection;
        println!(
            "{} synthetic set: {} samples of {}³ (seed {}), {:.0} s",
            if s.seed == eval::HELD_OUT_SEED {
                "held-out"
            } else {
                "tuning"
            },
            s.samples,
            s.patch,
            s.seed,
            s.seconds
        );
        println!(
            "  Dice: CSF {}, GM {}, WM {}, lesion {} (background {})",
            f(d[1]),
            f(d[2]),
            f(d[3]),
            f(d[4]),
            f(d[0])
        );
        println!(
            "  lesions: {} true, {} detected; {} predicted, {} correct: precision {}, recall {}, F1 {}",
            l.true_lesions,
            l.detected,
            l.predicted_lesions,
            l.correct,
            f(l.precision),
            f(l.recall),
            f(l.f1)
        );
        println!(
            "  lesion volume error: {} mL absolute, {} relative (mean over samples with lesions)",
            f(s.lesion_volume_abs_error_ml),
            f(s.lesion_volume_rel_error)
        );
        let [c, g, w] = s.tissue_volume_rel_error;
        println!(
            "  tissue volume error (mean): CSF {}, GM {}, WM {}",
            pct(c),
            pct(g),
            pct(w)
        );
        println!(
            "  false-positive lesion volume on {} lesion-free samples: {} mL (mean)",
            s.lesion_free_samples,
            f(s.false_positive_lesion_ml)
        );
        Some(s)
    };
    let testdata = brain::testdata_dir();
    let mut real = vec![];
    for (name, r) in [
        ("Colin27", eval::colin27(&loaded, &testdata, &settings)),
        ("MNI152", eval::mni152(&loaded, &testdata, &settings)),
    ] {
        let r = match r {
            Ok(r) => r,
            Err(e) => return fail(format!("{name}: {e}")),
        };
        let v = &r.metrics.volumes_ml;
        println!(
            "{}: intracranial {:.1} mL, brain {:.1} mL, GM {:.1} mL, WM {:.1} mL, CSF {:.1} mL ({:.1} s)",
            r.name,
            v.intracranial,
            v.brain,
            v.grey_matter,
            v.white_matter,
            v.csf,
            r.metrics.timings_s.total
        );
        if let Some(d) = r.mask_dice_vs_reference {
            println!(
                "  brain mask Dice vs ch2bet {d:.4} (ch2bet {:.1} mL); intracranial vs {} mL: {}",
                r.reference_brain_ml.unwrap_or(f64::NAN),
                eval::COLIN27_ICV_ML,
                pct(r.intracranial_rel_error)
            );
        }
        if r.grey_matter_rel_error.is_some() {
            println!(
                "  GM vs {} mL: {}, WM vs {} mL: {}",
                eval::MNI152_GM_ML,
                pct(r.grey_matter_rel_error),
                eval::MNI152_WM_ML,
                pct(r.white_matter_rel_error)
            );
        }
        real.push(r);
    }
    if let Some(path) = json {
        let doc = serde_json::json!({
            "model": { "name": gyri_analysis::train::MODEL_NAME, "version": state.version() },
            "synthetic": synthetic,
            "real": real,
        });
        if let Err(e) = std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap_or_default()) {
            return fail(format!("{}: {e}", path.display()));
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}

/// A training label map from a T1 and its tissue probability maps.
fn anatomy(args: &[String]) -> ExitCode {
    let (mut t1, mut gm, mut wm, mut out) = (None, None, None, None);
    let (mut brain_image, mut tissue) = (None, None);
    let mut models = brain::default_models_dir();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next().cloned()) {
            ("--t1", Some(v)) => t1 = Some(PathBuf::from(v)),
            ("--gm", Some(v)) => gm = Some(PathBuf::from(v)),
            ("--wm", Some(v)) => wm = Some(PathBuf::from(v)),
            ("--brain", Some(v)) => brain_image = Some(PathBuf::from(v)),
            ("--tissue", Some(v)) => tissue = Some(PathBuf::from(v)),
            ("--out", Some(v)) => out = Some(PathBuf::from(v)),
            ("--models", Some(v)) => models = PathBuf::from(v),
            (f, _) => return usage(&format!("unexpected {f:?}")),
        }
    }
    let derived = match (t1, gm, wm, brain_image, tissue, out) {
        (Some(t1), Some(gm), Some(wm), None, None, Some(out)) => {
            gyri_worker::anatomy::derive(&t1, &gm, &wm, &out, &models)
        }
        (None, None, None, Some(b), Some(t), Some(out)) => {
            gyri_worker::anatomy::derive_from_template(&b, &t, &out)
        }
        _ => return usage("--t1, --gm, --wm (or --brain, --tissue) and --out are needed"),
    };
    match derived {
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
    let (mut config, mut out, mut anatomies, mut steps) = (None, None, vec![], None);
    let mut learning_rate = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next().cloned()) {
            ("--config", Some(v)) => config = Some(PathBuf::from(v)),
            ("--out", Some(v)) => out = Some(PathBuf::from(v)),
            ("--anatomy", Some(v)) => anatomies.push(PathBuf::from(v)),
            ("--steps", Some(v)) => match v.parse::<usize>() {
                Ok(n) => steps = Some(n),
                Err(_) => return usage(&format!("--steps takes a number, not {v:?}")),
            },
            ("--learning-rate", Some(v)) => match v.parse::<f64>() {
                Ok(lr) if lr > 0.0 && lr.is_finite() => learning_rate = Some(lr),
                _ => {
                    return usage(&format!(
                        "--learning-rate takes a positive number, not {v:?}"
                    ))
                }
            },
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
    let mut config: TrainConfig = match std::fs::read(&config)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => return fail(format!("{}: {e}", config.display())),
    };
    if let Some(n) = steps {
        config.steps = n;
    }
    if let Some(lr) = learning_rate {
        config.learning_rate = lr;
    }
    let mut maps = vec![];
    for path in &anatomies {
        match gyri_worker::synth::read_label_map(path) {
            Ok((map, _)) => maps.push(map),
            Err(e) => return fail(e),
        }
    }
    let started = std::time::Instant::now();
    let mut first = None;
    let dice = |v: &train::Validation| {
        let fmt =
            |d: Option<&Option<f64>>| d.and_then(|d| *d).map_or("-".into(), |d| format!("{d:.3}"));
        format!(
            "step {}: validation Dice background {}, CSF {}, GM {}, WM {}, lesion {}",
            v.step,
            fmt(v.dice.first()),
            fmt(v.dice.get(1)),
            fmt(v.dice.get(2)),
            fmt(v.dice.get(3)),
            fmt(v.dice.get(4))
        )
    };
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
        if let Some(v) = &p.validation {
            eprintln!("{}", dice(v));
        }
    };
    match train::train(&config, &maps, &out, &commit(), &mut report) {
        Ok(state) => {
            if let Some(v) = state.validations.last() {
                println!("{}", dice(v));
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
