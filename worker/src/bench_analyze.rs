//! `gyri-worker bench-analyze [ROUNDS]`: `analyze` on a 1 mm whole-brain T1
//! and FLAIR, median seconds per stage over the rounds (models loaded once,
//! as a worker keeps them). The T1 is Colin27; no FLAIR of it can be had,
//! so the FLAIR is a stand-in on its own 1 mm grid half a voxel away (the
//! T1 resampled): the work is the same whatever the contrast.

use std::path::Path;
use std::time::Instant;

use gyri_imaging::geometry::{resample, Interpolation};
use gyri_imaging::nifti::{self, ReadOptions};
use gyri_imaging::Affine;
use gyri_worker::analyze::{self, Models, Settings, Timings};
use gyri_worker::brain;

use crate::bench::median;

pub fn run(testdata: &Path, rounds: usize) -> Result<(), String> {
    let rounds = rounds.max(1);
    let t1_path = testdata.join("colin27_t1.nii.gz");
    let started = Instant::now();
    let models = Models::load(&brain::default_models_dir(), &analyze::default_weights())?;
    let load = started.elapsed().as_secs_f64();
    let t1 = nifti::read_path(&t1_path, ReadOptions::default())
        .map_err(|e| format!("{}: {e}", t1_path.display()))?;
    let mut m = t1.affine.0;
    (0..3).for_each(|r| m[r][3] += 0.5);
    let flair =
        resample(&t1, t1.dims, Affine(m), Interpolation::Linear).map_err(|e| e.to_string())?;
    println!(
        "analyze: Colin27 T1 {}×{}×{} at 1 mm + FLAIR stand-in, {} rounds, models loaded in {load:.1} s ({})",
        t1.dims[0],
        t1.dims[1],
        t1.dims[2],
        rounds,
        models.unet.state.version()
    );
    let mut all: Vec<Timings> = vec![];
    for round in 0..rounds {
        let a = analyze::analyze(
            &models,
            &t1,
            Some(&flair),
            &Settings::default(),
            &mut |_| {},
        )?;
        let t = a.metrics.timings_s;
        println!(
            "  round {}: total {:.1} s (brain extraction {:.1}, segmentation {:.1})",
            round + 1,
            t.total,
            t.brain_extraction,
            t.segmentation
        );
        all.push(t);
    }
    let col = |f: fn(&Timings) -> f64| median(all.iter().map(f).collect());
    println!(
        "median seconds: total {:.2} | resample {:.2}, brain extraction {:.2}, normalise {:.2}, segmentation {:.2}, postprocess {:.2}",
        col(|t| t.total),
        col(|t| t.resample),
        col(|t| t.brain_extraction),
        col(|t| t.normalise),
        col(|t| t.segmentation),
        col(|t| t.postprocess)
    );
    if let Some(peak) = brain::peak_rss_bytes() {
        println!("peak memory {:.2} GB", peak as f64 / 1e9);
    }
    Ok(())
}
