//! `gyri-worker synth-sample`: one generator sample of a label map, written
//! as NIfTI for looking at (t1.nii.gz, flair.nii.gz, labels.nii.gz, on the
//! label map's grid when the whole volume is kept).

use std::path::{Path, PathBuf};
use std::time::Instant;

use gyri_analysis::synth::generator::Sampler;
use gyri_analysis::train::Anatomy;
use gyri_imaging::nifti::{self, ReadOptions};
use gyri_imaging::{Affine, Volume, VoxelData};

pub struct Written {
    pub files: Vec<PathBuf>,
    pub dims: [usize; 3],
    pub lesion_ml: f64,
    pub seconds: f64,
}

/// A training label map (uint8, classes 0–5) as the generator takes it
/// (C order: NIfTI data with i fastest is a C-order array of (k, j, i)),
/// with the image it came from (its grid; the data moved out).
pub fn read_label_map(path: &Path) -> Result<(Anatomy, Volume), String> {
    let mut v = nifti::read_path(path, ReadOptions::default())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let VoxelData::U8(labels) = std::mem::replace(&mut v.data, VoxelData::U8(vec![])) else {
        return Err(format!("{} is not a label map (u8)", path.display()));
    };
    if labels.iter().any(|&l| l > 5) {
        return Err(format!("{} has labels above 5", path.display()));
    }
    let dims = [v.dims[2], v.dims[1], v.dims[0]];
    // named by its directory and file (`mni152/labels.nii.gz`): every
    // anatomy's file is called labels.nii.gz
    let name = match (path.parent().and_then(Path::file_name), path.file_name()) {
        (Some(dir), Some(file)) => Path::new(dir).join(file).display().to_string(),
        _ => path.display().to_string(),
    };
    Ok((Anatomy { name, labels, dims }, v))
}

/// Samples `anatomy` (a label map NIfTI) with `seed`; `patch` of `None`
/// keeps the whole volume (and its transform).
pub fn sample(
    anatomy: &Path,
    seed: u64,
    patch: Option<usize>,
    out: &Path,
) -> Result<Written, String> {
    let started = Instant::now();
    let (map, v) = read_label_map(anatomy)?;
    let dims_c = map.dims;
    let sampler = Sampler {
        patch: patch.map_or(dims_c, |p| [p; 3]),
        ..Default::default()
    };
    let s = sampler.sample(&map.labels, dims_c, seed);
    let grid = [s.dims[2], s.dims[1], s.dims[0]];
    let affine = if s.dims == dims_c {
        v.affine
    } else {
        Affine::scaling(v.spacing())
    };
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut files = vec![];
    let lesion_ml =
        s.labels.iter().filter(|&&l| l == 4).count() as f64 * v.voxel_volume_mm3() / 1000.0;
    for (name, data) in [
        ("t1.nii.gz", VoxelData::F32(s.t1)),
        ("flair.nii.gz", VoxelData::F32(s.flair)),
        ("labels.nii.gz", VoxelData::U8(s.labels)),
    ] {
        let path = out.join(name);
        let vol = Volume::new(grid, affine, data).map_err(|e| e.to_string())?;
        nifti::write_path(&vol, &path).map_err(|e| e.to_string())?;
        files.push(path);
    }
    Ok(Written {
        files,
        dims: grid,
        lesion_ml,
        seconds: started.elapsed().as_secs_f64(),
    })
}
