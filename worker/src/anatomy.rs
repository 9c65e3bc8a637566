//! Label maps of real anatomy for training (`gyri-worker anatomy`): a T1
//! with grey- and white-matter probability maps on its grid in, the
//! generator's label map out (`labels.nii.gz`: 0 background, 1 CSF, 2 GM,
//! 3 WM, 5 non-brain head), with HD-BET's brain mask deciding what is brain.

use std::path::{Path, PathBuf};

use gyri_analysis::hdbet::Options;
use gyri_analysis::synth::anatomy;
use gyri_imaging::nifti::{self, ReadOptions};
use gyri_imaging::{Volume, VoxelData};

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
    let counts = anatomy::class_counts(&labels);
    let ml = t1v.voxel_volume_mm3() / 1000.0;
    let volumes_ml = counts.map(|n| n as f64 * ml);
    let vol =
        Volume::new(t1v.dims, t1v.affine, VoxelData::U8(labels)).map_err(|e| e.to_string())?;
    let path = out.join("labels.nii.gz");
    nifti::write_path(&vol, &path).map_err(|e| e.to_string())?;
    Ok(Anatomy {
        labels: path,
        volumes_ml,
    })
}
