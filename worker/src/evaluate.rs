//! `gyri-worker evaluate`: the shipped network on a held-out synthetic set
//! (a seed training and validation never use) and on real brains.
//!
//! Synthetic: Dice per class pooled over the set, lesion-wise detection
//! (26-connected components of at least 10 mm³, detected on any overlap),
//! lesion-volume errors, tissue-volume errors, false-positive lesion volume
//! on lesion-free samples. Real: Colin27 (brain mask against `ch2bet`,
//! intracranial volume against SAMSEG's 1950 mL) and MNI152 2009a (grey and
//! white matter against the sums of its probability maps, 1008 and 670 mL),
//! both through `analyze` with HD-BET.

use std::path::Path;
use std::time::Instant;

use gyri_analysis::inference::SlidingWindow;
use gyri_analysis::measure::{self, Detection};
use gyri_analysis::synth::anatomy::class;
use gyri_analysis::synth::generator::Sampler;
use gyri_analysis::train::Anatomy;
use gyri_imaging::nifti::{self, ReadOptions};
use serde::Serialize;

use crate::analyze::{self, Models, Settings};

/// The held-out set's seed: training draws from `seed + step`, validation
/// from 1,000,000 up.
pub const HELD_OUT_SEED: u64 = 2_000_000;

/// The tuning set's seed: inference settings (window, overlap) are chosen
/// on samples from here, never on the held-out set.
pub const TUNING_SEED: u64 = 3_000_000;

#[derive(Debug, Default, Serialize)]
pub struct Synthetic {
    pub seed: u64,
    pub samples: usize,
    pub patch: usize,
    /// Background, CSF, GM, WM, lesion; pooled over the set.
    pub dice: Vec<Option<f64>>,
    pub lesion_detection: DetectionSummary,
    /// Over samples with true lesions: mean |predicted − true| lesion
    /// volume, mL, and mean of it relative to the true volume.
    pub lesion_volume_abs_error_ml: Option<f64>,
    pub lesion_volume_rel_error: Option<f64>,
    /// Mean relative volume error per class (CSF, GM, WM): (pred − true)/true.
    pub tissue_volume_rel_error: [Option<f64>; 3],
    /// Lesion-free samples with FLAIR: how many, and the mean lesion volume
    /// predicted in them, mL.
    pub lesion_free_samples: usize,
    pub false_positive_lesion_ml: Option<f64>,
    pub seconds: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct DetectionSummary {
    pub true_lesions: usize,
    pub detected: usize,
    pub predicted_lesions: usize,
    pub correct: usize,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
}

impl From<Detection> for DetectionSummary {
    fn from(d: Detection) -> Self {
        DetectionSummary {
            true_lesions: d.true_lesions,
            detected: d.detected,
            predicted_lesions: d.predicted_lesions,
            correct: d.correct,
            precision: d.precision(),
            recall: d.recall(),
            f1: d.f1(),
        }
    }
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The network on `samples` generator samples (patches of `patch`³ of the
/// anatomies in turn, 1 mm voxels) drawn from `seed` up
/// ([`HELD_OUT_SEED`] for the figures quoted, [`TUNING_SEED`] for choosing
/// settings).
pub fn synthetic(
    models: &Models,
    anatomies: &[Anatomy],
    seed: u64,
    samples: usize,
    patch: usize,
    window: &SlidingWindow,
    progress: &mut dyn FnMut(usize),
) -> Result<Synthetic, String> {
    if anatomies.is_empty() {
        return Err("evaluation needs at least one anatomy".into());
    }
    let started = Instant::now();
    let sampler = Sampler {
        patch: [patch; 3],
        ..Default::default()
    };
    let classes = 5;
    let (mut inter, mut total) = (vec![0usize; classes], vec![0usize; classes]);
    let mut detection = Detection::default();
    let (mut abs_err, mut rel_err, mut fp) = (vec![], vec![], vec![]);
    let mut tissue: [Vec<f64>; 3] = Default::default();
    for i in 0..samples {
        let a = &anatomies[i % anatomies.len()];
        let s = sampler.sample(&a.labels, a.dims, seed + i as u64);
        let has_flair = s.flair.iter().any(|&v| v != 0.0);
        let pred = models
            .unet
            .segment(
                &s.t1,
                has_flair.then_some(&s.flair[..]),
                s.dims,
                window,
                |_, _| {},
            )
            .map_err(|e| e.to_string())?;
        // scored as `analyze` reports: lesions under 10 mm³ are white matter
        let mut pred = pred;
        measure::drop_small_lesions(&mut pred, s.dims, 1.0);
        for (&p, &t) in pred.iter().zip(&s.labels) {
            total[p as usize] += 1;
            total[t as usize] += 1;
            if p == t {
                inter[p as usize] += 1;
            }
        }
        let (vp, vt) = (
            measure::volumes_ml(&pred, 1.0),
            measure::volumes_ml(&s.labels, 1.0),
        );
        for (c, errs) in tissue.iter_mut().enumerate() {
            let k = c + 1;
            if vt[k] > 1.0 {
                errs.push((vp[k] - vt[k]) / vt[k]);
            }
        }
        if has_flair {
            detection = detection.pooled(Detection::of(&pred, &s.labels, s.dims, 1.0));
            let (p, t) = (vp[class::LESION as usize], vt[class::LESION as usize]);
            if t > 0.0 {
                abs_err.push((p - t).abs());
                rel_err.push((p - t).abs() / t);
            } else {
                fp.push(p);
            }
        }
        progress(i + 1);
    }
    Ok(Synthetic {
        seed,
        samples,
        patch,
        dice: (0..classes)
            .map(|c| (total[c] > 0).then(|| 2.0 * inter[c] as f64 / total[c] as f64))
            .collect(),
        lesion_detection: detection.into(),
        lesion_volume_abs_error_ml: mean(&abs_err),
        lesion_volume_rel_error: mean(&rel_err),
        tissue_volume_rel_error: tissue.map(|e| mean(&e)),
        lesion_free_samples: fp.len(),
        false_positive_lesion_ml: mean(&fp),
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[derive(Debug, Serialize)]
pub struct RealBrain {
    pub name: String,
    pub metrics: analyze::Metrics,
    /// Colin27: the brain mask's Dice against `ch2bet`'s non-zero voxels.
    pub mask_dice_vs_reference: Option<f64>,
    pub reference_brain_ml: Option<f64>,
    /// (measured − reference)/reference, where there is a reference figure.
    pub intracranial_rel_error: Option<f64>,
    pub grey_matter_rel_error: Option<f64>,
    pub white_matter_rel_error: Option<f64>,
}

/// SAMSEG's intracranial volume of Colin27, mL.
pub const COLIN27_ICV_ML: f64 = 1950.0;
/// Sums of MNI152 2009a's grey- and white-matter probability maps, mL.
pub const MNI152_GM_ML: f64 = 1008.0;
pub const MNI152_WM_ML: f64 = 670.0;

fn run(models: &Models, t1: &Path, settings: &Settings) -> Result<analyze::Analysis, String> {
    let v = nifti::read_path(t1, ReadOptions::default())
        .map_err(|e| format!("{}: {e}", t1.display()))?;
    analyze::analyze(models, &v, None, settings, &mut |_| {})
}

pub fn colin27(models: &Models, testdata: &Path, settings: &Settings) -> Result<RealBrain, String> {
    let a = run(models, &testdata.join("colin27_t1.nii.gz"), settings)?;
    let reference = nifti::read_path(
        &testdata.join("colin27_brain.nii.gz"),
        ReadOptions::default(),
    )
    .map_err(|e| format!("colin27_brain.nii.gz: {e}"))?;
    if reference.dims != a.brain_mask.dims {
        return Err("ch2bet is not on Colin27's grid".into());
    }
    let r: Vec<u8> = reference
        .data
        .to_f32()
        .iter()
        .map(|&v| u8::from(v > 0.0))
        .collect();
    let m: Vec<u8> = a
        .brain_mask
        .data
        .to_f32()
        .iter()
        .map(|&v| u8::from(v > 0.0))
        .collect();
    let reference_ml =
        r.iter().filter(|&&v| v == 1).count() as f64 * reference.voxel_volume_mm3() / 1000.0;
    let v = &a.metrics.volumes_ml;
    Ok(RealBrain {
        name: "Colin27".into(),
        mask_dice_vs_reference: measure::dice(&m, &r, 1),
        reference_brain_ml: Some(reference_ml),
        intracranial_rel_error: Some((v.intracranial - COLIN27_ICV_ML) / COLIN27_ICV_ML),
        grey_matter_rel_error: None,
        white_matter_rel_error: None,
        metrics: a.metrics,
    })
}

pub fn mni152(models: &Models, testdata: &Path, settings: &Settings) -> Result<RealBrain, String> {
    let a = run(models, &testdata.join("mni152_2009a_t1.nii.gz"), settings)?;
    let v = &a.metrics.volumes_ml;
    Ok(RealBrain {
        name: "MNI152 2009a".into(),
        mask_dice_vs_reference: None,
        reference_brain_ml: None,
        intracranial_rel_error: None,
        grey_matter_rel_error: Some((v.grey_matter - MNI152_GM_ML) / MNI152_GM_ML),
        white_matter_rel_error: Some((v.white_matter - MNI152_WM_ML) / MNI152_WM_ML),
        metrics: a.metrics,
    })
}
