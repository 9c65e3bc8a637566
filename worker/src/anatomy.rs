//! Label maps of real anatomy for training (`gyri-worker anatomy`): a T1
//! with grey- and white-matter probability maps on its grid in, the
//! generator's label map out (`labels.nii.gz`: 0 background, 1 CSF, 2 GM,
//! 3 WM, 5 non-brain head), with HD-BET's brain mask deciding what is brain.
//! Or from a template: a brain-extracted image (its non-zero voxels are
//! the brain) and a 4D tissue map (volume 0 grey, 1 white matter, SPM's
//! and CAT12's order), on a 1 mm grid over the tissue map's field of view.

use std::path::{Path, PathBuf};

use gyri_analysis::hdbet::Options;
use gyri_analysis::synth::anatomy;
use gyri_imaging::geometry::{resample, Interpolation};
use gyri_imaging::nifti::{self, ReadOptions};
use gyri_imaging::{Affine, Volume, VoxelData};

pub struct Anatomy {
    pub labels: PathBuf,
    /// Millilitres per class (index = class).
    pub volumes_ml: [f64; 6],
}

/// Tissue probabilities of a map in 0–1: maps stored as 0–255 (nilearn's
/// MNI152 ones) are scaled down.
fn probabilities(v: &Volume) -> Vec<f32> {
    let p = v.data.to_f32();
    let max = p.iter().copied().fold(0f32, f32::max);
    if max > 1.0 + 1e-3 {
        p.iter().map(|&x| x / 255.0).collect()
    } else {
        p
    }
}

fn write(labels: Vec<u8>, dims: [usize; 3], affine: Affine, out: &Path) -> Result<Anatomy, String> {
    let ml = affine.spacing().iter().product::<f64>() / 1000.0;
    let volumes_ml = anatomy::class_counts(&labels).map(|n| n as f64 * ml);
    let vol = Volume::new(dims, affine, VoxelData::U8(labels)).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let path = out.join("labels.nii.gz");
    nifti::write_path(&vol, &path).map_err(|e| e.to_string())?;
    Ok(Anatomy {
        labels: path,
        volumes_ml,
    })
}

/// A label map from a template: `brain` (a brain-extracted image) and
/// `tissue` (4D: grey, white matter probabilities), on a 1 mm grid.
pub fn derive_from_template(brain: &Path, tissue: &Path, out: &Path) -> Result<Anatomy, String> {
    let read = |p: &Path, volume: usize| {
        nifti::read_path(
            p,
            ReadOptions {
                volume,
                ..Default::default()
            },
        )
        .map_err(|e| format!("{}: {e}", p.display()))
    };
    let (gm, wm, brain) = (read(tissue, 0)?, read(tissue, 1)?, read(brain, 0)?);
    // 1 mm over the tissue map's extent, its axes kept
    let spacing = gm.spacing();
    let dims: [usize; 3] =
        std::array::from_fn(|a| ((gm.dims[a] - 1) as f64 * spacing[a]).floor() as usize + 1);
    let mut m = gm.affine.0;
    for row in m.iter_mut().take(3) {
        for (a, s) in spacing.iter().enumerate() {
            row[a] /= s;
        }
    }
    let affine = Affine(m);
    let on_grid = |v: &Volume| {
        resample(v, dims, affine, Interpolation::Linear)
            .map(|r| r.data.to_f32())
            .map_err(|e| e.to_string())
    };
    let (p_gm, p_wm, image) = (on_grid(&gm)?, on_grid(&wm)?, on_grid(&brain)?);
    let mask: Vec<u8> = image.iter().map(|&v| u8::from(v > 0.0)).collect();
    let head = vec![false; mask.len()];
    let labels = anatomy::from_probabilities(&mask, &p_gm, &p_wm, &head);
    write(labels, dims, affine, out)
}

pub fn derive(
    t1: &Path,
    gm: &Path,
    wm: &Path,
    out: &Path,
    models: &Path,
) -> Result<Anatomy, String> {
    let read = |p: &Path| {
        nifti::read_path(p, ReadOptions::default()).map_err(|e| format!("{}: {e}", p.display()))
    };
    let (t1v, gmv, wmv) = (read(t1)?, read(gm)?, read(wm)?);
    for (name, v) in [("grey matter", &gmv), ("white matter", &wmv)] {
        if v.dims != t1v.dims || v.affine.max_abs_diff(&t1v.affine) > 1e-3 {
            return Err(format!("the {name} map is not on the T1's grid"));
        }
    }
    let report = crate::brain::brain_extract_volume(
        &t1v,
        out,
        models,
        Options::default(),
        &mut |_, _| {},
        std::time::Instant::now(),
    )?;
    let VoxelData::U8(brain) = &report.mask_volume.data else {
        return Err("the brain mask is not a label map".into());
    };
    let head = anatomy::head_mask(&t1v.data.to_f32(), 0.1);
    let labels =
        anatomy::from_probabilities(brain, &probabilities(&gmv), &probabilities(&wmv), &head);
    write(labels, t1v.dims, t1v.affine, out)
}
