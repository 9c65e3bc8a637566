//! `gyri-worker analyze`: one study measured. A T1 (and, if there is one, a
//! FLAIR) in; `labels.nii.gz`, `brain_mask.nii.gz` and `metrics.json`
//! (schema `gyri.metrics/1`) out, on the T1's own voxel grid and transform.
//!
//! Stages: the T1 reoriented to RAS and, unless its voxels are 1 mm
//! already, resampled to 1 mm (the network's training resolution); HD-BET
//! brain extraction on that grid; the FLAIR resampled onto it through the
//! two images' world transforms (images of one session share scanner
//! space; nothing is registered); both normalised inside the brain mask;
//! the attention U-Net by sliding window over the mask's bounding box;
//! labels outside the mask cleared; lesions under 10 mm³ relabelled white
//! matter; labels taken back to the T1's grid (nearest neighbour) and
//! measured there, so `metrics.json` adds up from `labels.nii.gz`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use gyri_analysis::hdbet::{HdBet, Options};
use gyri_analysis::inference::SlidingWindow;
use gyri_analysis::measure;
use gyri_analysis::segment::{normalise, Segmenter};
use gyri_analysis::synth::anatomy::class;
use gyri_analysis::train::MODEL_NAME;
use gyri_imaging::geometry::{reorient_to_ras, resample, Interpolation};
use gyri_imaging::nifti;
use gyri_imaging::{Affine, Volume, VoxelData};
use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "gyri.metrics/1";

/// The shipped segmentation weights unless `--weights` or `GYRI_WEIGHTS`
/// say otherwise.
pub fn default_weights() -> PathBuf {
    if let Ok(p) = std::env::var("GYRI_WEIGHTS") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../analysis/weights/unet-b16.safetensors")
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub name: String,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VolumesMl {
    pub intracranial: f64,
    pub brain: f64,
    pub grey_matter: f64,
    pub white_matter: f64,
    pub csf: f64,
    /// `None` without FLAIR.
    pub lesion: Option<f64>,
}

/// Fractions of the intracranial volume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalised {
    pub brain_fraction: f64,
    pub grey_matter_fraction: f64,
    pub white_matter_fraction: f64,
    pub csf_fraction: f64,
    pub lesion_fraction: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LesionItem {
    /// 1 = the largest.
    pub id: usize,
    pub volume_ml: f64,
    pub centroid_ras_mm: [f64; 3],
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lesions {
    /// `None` without FLAIR (lesions are not measured).
    pub count: Option<usize>,
    pub items: Vec<LesionItem>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Qc {
    pub warnings: Vec<String>,
}

/// Seconds per stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub load_models: f64,
    pub read: f64,
    pub resample: f64,
    pub brain_extraction: f64,
    pub normalise: f64,
    pub segmentation: f64,
    pub postprocess: f64,
    pub write: f64,
    pub total: f64,
}

/// What `metrics.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub schema: String,
    pub model: Model,
    pub volumes_ml: VolumesMl,
    pub normalised: Normalised,
    pub lesions: Lesions,
    pub qc: Qc,
    pub timings_s: Timings,
}

/// The two networks, loaded once (a worker keeps them between studies).
pub struct Models {
    pub hdbet: HdBet,
    pub unet: Segmenter,
}

impl Models {
    pub fn load(hdbet_dir: &Path, weights: &Path) -> Result<Models, String> {
        if !gyri_analysis::hdbet::checkpoint_path(hdbet_dir, 0).exists() {
            return Err(format!(
                "HD-BET's weights are not in {} (scripts/fetch-test-data.sh puts them there; or give --models DIR)",
                hdbet_dir.display()
            ));
        }
        let hdbet = HdBet::load(hdbet_dir, 1).map_err(|e| format!("HD-BET: {e}"))?;
        let unet = Segmenter::load(weights).map_err(|e| format!("segmentation weights: {e}"))?;
        Ok(Models { hdbet, unet })
    }
}

/// What `analyze` produced.
pub struct Analysis {
    pub labels: Volume,
    pub brain_mask: Volume,
    pub metrics: Metrics,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Settings {
    /// `None`: windows of the network's training patch (instance
    /// normalisation then sees regions of the size it was trained on),
    /// overlapping by a quarter. Chosen on the tuning set (4 samples of
    /// 160³, step 6000): against half overlap, Dice GM 0.928 vs 0.932, WM
    /// 0.916 vs 0.922, lesion 0.775 vs 0.783, lesion F1 0.900 vs 0.895, in
    /// 45 % of the time; 96³ windows doubled false-positive lesion volume.
    pub window: Option<SlidingWindow>,
}

impl Settings {
    pub fn window(&self, models: &Models) -> SlidingWindow {
        self.window.unwrap_or(SlidingWindow {
            patch: [models.unet.state.config.patch; 3],
            overlap: 0.25,
            batch: 1,
        })
    }
}

/// The grid the network sees: the RAS image's, at 1 mm unless its voxels
/// are within 2 % of that already.
fn work_grid(ras: &Volume) -> ([usize; 3], Affine, bool) {
    let s = ras.spacing();
    if s.iter().all(|&x| (x - 1.0).abs() <= 0.02) {
        return (ras.dims, ras.affine, false);
    }
    let dims: [usize; 3] =
        std::array::from_fn(|a| ((ras.dims[a] - 1) as f64 * s[a]).floor() as usize + 1);
    let mut m = ras.affine.0;
    for row in m.iter_mut().take(3) {
        for (a, sa) in s.iter().enumerate() {
            row[a] /= sa;
        }
    }
    (dims, Affine(m), true)
}

/// The bounding box (C order: start, size) of the non-zero voxels, grown
/// by `margin`; `None` if there are none.
fn bounding_box(mask: &[u8], dims: [usize; 3], margin: usize) -> Option<([usize; 3], [usize; 3])> {
    let (mut lo, mut hi) = ([usize::MAX; 3], [0usize; 3]);
    for (i, _) in mask.iter().enumerate().filter(|(_, &m)| m != 0) {
        let p = [
            i / (dims[1] * dims[2]),
            (i / dims[2]) % dims[1],
            i % dims[2],
        ];
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    if lo[0] == usize::MAX {
        return None;
    }
    let start: [usize; 3] = std::array::from_fn(|a| lo[a].saturating_sub(margin));
    let end: [usize; 3] = std::array::from_fn(|a| (hi[a] + margin + 1).min(dims[a]));
    Some((start, std::array::from_fn(|a| end[a] - start[a])))
}

fn crop<T: Copy>(v: &[T], dims: [usize; 3], start: [usize; 3], size: [usize; 3]) -> Vec<T> {
    let mut out = Vec::with_capacity(size.iter().product());
    for a in start[0]..start[0] + size[0] {
        for b in start[1]..start[1] + size[1] {
            let row = (a * dims[1] + b) * dims[2] + start[2];
            out.extend_from_slice(&v[row..row + size[2]]);
        }
    }
    out
}

fn uncrop(v: &[u8], dims: [usize; 3], start: [usize; 3], size: [usize; 3]) -> Vec<u8> {
    let mut out = vec![0u8; dims.iter().product()];
    for a in 0..size[0] {
        for b in 0..size[1] {
            let src = (a * size[1] + b) * size[2];
            let dst = ((a + start[0]) * dims[1] + b + start[1]) * dims[2] + start[2];
            out[dst..dst + size[2]].copy_from_slice(&v[src..src + size[2]]);
        }
    }
    out
}

fn u8_data(v: &Volume) -> Result<&[u8], String> {
    match &v.data {
        VoxelData::U8(d) => Ok(d),
        _ => Err("a label map lost its type".into()),
    }
}

/// Measures one study. `t1` and `flair` as read; `read_s` is what reading
/// them took (for the timings).
pub fn analyze(
    models: &Models,
    t1: &Volume,
    flair: Option<&Volume>,
    settings: &Settings,
    progress: &mut dyn FnMut(&str),
) -> Result<Analysis, String> {
    let started = Instant::now();
    let mut timings = Timings::default();
    let mut warnings = vec![];
    let mut stage = Instant::now();
    let mut lap = |t: &mut f64| {
        *t = stage.elapsed().as_secs_f64();
        stage = Instant::now();
    };

    let (lo, hi) = t1
        .data
        .to_f32()
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if hi <= lo {
        return Err("the T1 image is blank (one value throughout): no brain to measure".into());
    }
    progress("resampling");
    let ras = reorient_to_ras(t1).map_err(|e| format!("T1: {e}"))?;
    let (dims, affine, resampled) = work_grid(&ras);
    let s = ras.spacing();
    if s.iter().any(|&x| x > 1.5) {
        warnings.push(format!(
            "The T1's voxels are {:.2} × {:.2} × {:.2} mm: volumes from voxels thicker than 1.5 mm are less precise.",
            s[0], s[1], s[2]
        ));
    }
    let work = if resampled {
        resample(&ras, dims, affine, Interpolation::Linear).map_err(|e| format!("T1: {e}"))?
    } else {
        ras
    };
    let flair_work = match flair {
        Some(f) => Some(
            resample(f, dims, affine, Interpolation::Linear).map_err(|e| format!("FLAIR: {e}"))?,
        ),
        None => None,
    };
    lap(&mut timings.resample);

    progress("brain extraction");
    let masked =
        crate::brain::extract_ras(&models.hdbet, &work, Options::default(), &mut |_, _| {})?;
    let mask = u8_data(&masked.mask)?.to_vec();
    lap(&mut timings.brain_extraction);
    // C order (k, j, i) of the NIfTI-ordered (i fastest) data
    let cdims = [dims[2], dims[1], dims[0]];
    let mask_ml =
        mask.iter().filter(|&&m| m != 0).count() as f64 * masked.mask.voxel_volume_mm3() / 1000.0;
    let Some((start, size)) = bounding_box(&mask, cdims, 4).filter(|_| mask_ml >= 100.0) else {
        return Err(format!(
            "brain extraction found no brain in the T1 ({mask_ml:.0} mL): is it a head MRI?"
        ));
    };

    progress("normalising");
    let crop_mask = crop(&mask, cdims, start, size);
    let t1n = normalise(&crop(&work.data.to_f32(), cdims, start, size), &crop_mask);
    let flair_n = match &flair_work {
        Some(f) => {
            let data = f.data.to_f32();
            // the FLAIR must cover the brain (resampling leaves 0 outside it)
            let inside = mask.iter().filter(|&&m| m != 0).count();
            let covered = mask
                .iter()
                .zip(&data)
                .filter(|(&m, &v)| m != 0 && v != 0.0)
                .count();
            if (covered as f64) < 0.9 * inside as f64 {
                warnings.push(format!(
                    "The FLAIR covers {:.0} % of the brain: lesions outside it are not seen.",
                    100.0 * covered as f64 / inside.max(1) as f64
                ));
            }
            Some(normalise(&crop(&data, cdims, start, size), &crop_mask))
        }
        None => {
            warnings.push(
                "No FLAIR image: white-matter lesions are not measured (lesion count and volume are null)."
                    .into(),
            );
            None
        }
    };
    lap(&mut timings.normalise);

    progress("segmentation");
    let mut labels = models
        .unet
        .segment(
            &t1n,
            flair_n.as_deref(),
            size,
            &settings.window(models),
            |_, _| {},
        )
        .map_err(|e| format!("segmentation: {e}"))?;
    lap(&mut timings.segmentation);

    progress("measuring");
    for (l, &m) in labels.iter_mut().zip(&crop_mask) {
        if m == 0 {
            *l = class::BACKGROUND;
        }
    }
    let labels = uncrop(&labels, cdims, start, size);
    // back onto the T1's grid
    let back = |data: Vec<u8>| -> Result<Volume, String> {
        let v = Volume::new(dims, affine, VoxelData::U8(data)).map_err(|e| e.to_string())?;
        if v.dims == t1.dims && v.affine.max_abs_diff(&t1.affine) < 1e-9 {
            return Ok(v);
        }
        resample(&v, t1.dims, t1.affine, Interpolation::Nearest).map_err(|e| e.to_string())
    };
    let mut labels = back(labels)?;
    let brain_mask = back(mask)?;
    let voxel_mm3 = t1.voxel_volume_mm3();
    let tdims = [t1.dims[2], t1.dims[1], t1.dims[0]];
    let VoxelData::U8(l) = &mut labels.data else {
        return Err("the labels lost their type".into());
    };
    let found = measure::drop_small_lesions(l, tdims, voxel_mm3);
    let v = measure::volumes_ml(l, voxel_mm3);
    let (csf, gm, wm) = (v[1], v[2], v[3]);
    let lesion = flair.map(|_| v[4]);
    let brain = gm + wm + v[4];
    let intracranial = brain + csf;
    let fraction = |x: f64| {
        if intracranial > 0.0 {
            x / intracranial
        } else {
            0.0
        }
    };
    if !(800.0..=2300.0).contains(&intracranial) {
        warnings.push(format!(
            "The intracranial volume ({intracranial:.0} mL) is outside the adult range: check the image and the brain mask."
        ));
    }
    let items = found
        .iter()
        .enumerate()
        .map(|(i, les)| {
            let [k, j, ii] = les.centroid;
            let p = t1.affine.apply([ii, j, k]);
            LesionItem {
                id: i + 1,
                volume_ml: les.volume_mm3 / 1000.0,
                centroid_ras_mm: p.map(|x| (x * 10.0).round() / 10.0),
            }
        })
        .collect();
    lap(&mut timings.postprocess);
    let state = &models.unet.state;
    timings.total = started.elapsed().as_secs_f64();
    let metrics = Metrics {
        schema: SCHEMA.into(),
        model: Model {
            name: MODEL_NAME.into(),
            version: state.version(),
        },
        volumes_ml: VolumesMl {
            intracranial,
            brain,
            grey_matter: gm,
            white_matter: wm,
            csf,
            lesion,
        },
        normalised: Normalised {
            brain_fraction: fraction(brain),
            grey_matter_fraction: fraction(gm),
            white_matter_fraction: fraction(wm),
            csf_fraction: fraction(csf),
            lesion_fraction: lesion.map(fraction),
        },
        lesions: Lesions {
            count: flair.map(|_| found.len()),
            items,
        },
        qc: Qc { warnings },
        timings_s: timings,
    };
    Ok(Analysis {
        labels,
        brain_mask,
        metrics,
    })
}

/// Writes the three outputs into `out`; `metrics.timings_s.write` and
/// `total` include the writing.
pub fn write(a: &mut Analysis, out: &Path, started: Instant) -> Result<Vec<PathBuf>, String> {
    let t = Instant::now();
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let labels = out.join("labels.nii.gz");
    let mask = out.join("brain_mask.nii.gz");
    nifti::write_path(&a.labels, &labels).map_err(|e| e.to_string())?;
    nifti::write_path(&a.brain_mask, &mask).map_err(|e| e.to_string())?;
    a.metrics.timings_s.write = t.elapsed().as_secs_f64();
    a.metrics.timings_s.total = started.elapsed().as_secs_f64();
    let metrics = out.join("metrics.json");
    let json = serde_json::to_vec_pretty(&a.metrics).map_err(|e| e.to_string())?;
    std::fs::write(&metrics, json).map_err(|e| format!("{}: {e}", metrics.display()))?;
    Ok(vec![labels, mask, metrics])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_crop_and_uncrop_round_trip() {
        let dims = [4, 5, 6];
        let mut m = vec![0u8; 120];
        m[(5 + 2) * 6 + 3] = 1; // (1, 2, 3)
        m[(2 * 5 + 3) * 6 + 4] = 1;
        let (start, size) = bounding_box(&m, dims, 1).unwrap();
        assert_eq!((start, size), ([0, 1, 2], [4, 4, 4]));
        let c = crop(&m, dims, start, size);
        assert_eq!(uncrop(&c, dims, start, size), m);
        assert!(bounding_box(&[0u8; 120], dims, 1).is_none());
    }
}
