//! The `convert` command's logic: a DICOM folder (or a NIfTI file) to one
//! NIfTI per series plus `series.json`, which lists every series with its
//! class, geometry and warnings, and everything refused with its reason.

use serde::Serialize;
use std::path::{Path, PathBuf};

use crate::dicom::{convert_files, Conversion};
use crate::error::{ImagingError, Result};
use crate::limits::Limits;
use crate::nifti::{self, ReadOptions};
use crate::volume::{SequenceClass, Volume};

#[derive(Debug, Serialize)]
pub struct SeriesEntry {
    pub number: Option<i64>,
    pub uid: Option<String>,
    pub description: String,
    pub class: SequenceClass,
    pub class_reason: String,
    /// Files the series was built from (1 for a NIfTI upload).
    pub files: usize,
    pub file: String,
    pub dims: [usize; 3],
    pub spacing_mm: [f64; 3],
    pub affine: [[f64; 4]; 4],
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Refusal {
    pub number: Option<i64>,
    pub uid: String,
    pub description: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct SkippedFile {
    pub file: String,
    pub reason: String,
}

/// What `series.json` holds.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub series: Vec<SeriesEntry>,
    pub refused: Vec<Refusal>,
    pub skipped: Vec<SkippedFile>,
}

fn class_name(c: SequenceClass) -> &'static str {
    match c {
        SequenceClass::T1 => "t1",
        SequenceClass::Flair => "flair",
        SequenceClass::Other => "other",
    }
}

/// Every regular file under `dir`, sorted.
pub fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| ImagingError::io(&d, e))? {
            let entry = entry.map_err(|e| ImagingError::io(&d, e))?;
            let kind = entry
                .file_type()
                .map_err(|e| ImagingError::io(&entry.path(), e))?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// What is known of a series besides its volume.
struct Described {
    number: Option<i64>,
    uid: Option<String>,
    description: String,
    class: SequenceClass,
    class_reason: String,
    files: usize,
    warnings: Vec<String>,
}

/// `<series-number>_<class>.nii.gz`, with `_2`, `_3`… added when another
/// series of this conversion already has the name (scanners reuse series
/// numbers across studies): no series overwrites another.
fn file_name(d: &Described, taken: &[SeriesEntry]) -> String {
    let number = d.number.map_or("x".to_string(), |n| n.to_string());
    let stem = format!("{number}_{}", class_name(d.class));
    (1..)
        .map(|i| match i {
            1 => format!("{stem}.nii.gz"),
            i => format!("{stem}_{i}.nii.gz"),
        })
        .find(|name| taken.iter().all(|e| &e.file != name))
        .expect("some suffix is free")
}

/// Writes the series' NIfTI and returns its entry in the report.
fn entry(d: Described, volume: &Volume, out: &Path, taken: &[SeriesEntry]) -> Result<SeriesEntry> {
    let name = file_name(&d, taken);
    nifti::write_path(volume, &out.join(&name))?;
    Ok(SeriesEntry {
        number: d.number,
        uid: d.uid,
        description: d.description,
        class: d.class,
        class_reason: d.class_reason,
        files: d.files,
        file: name,
        dims: volume.dims,
        spacing_mm: volume.spacing(),
        affine: volume.affine.0,
        warnings: d.warnings,
    })
}

/// Converts every series found under `dir` into `out`.
pub fn convert_dicom_dir(dir: &Path, out: &Path, limits: &Limits) -> Result<Report> {
    let files = files_under(dir)?;
    let Conversion {
        series,
        refused,
        skipped,
    } = convert_files(&files, limits);
    std::fs::create_dir_all(out).map_err(|e| ImagingError::io(out, e))?;
    let mut report = Report::default();
    for s in series {
        let described = Described {
            number: s.number,
            uid: Some(s.uid),
            description: s.description,
            class: s.class,
            class_reason: s.class_reason,
            files: s.files,
            warnings: s.warnings,
        };
        report
            .series
            .push(entry(described, &s.volume, out, &report.series)?);
    }
    report.refused = refused
        .into_iter()
        .map(|r| Refusal {
            number: r.number,
            uid: r.uid,
            description: r.description,
            reason: r.reason.to_string(),
        })
        .collect();
    report.skipped = skipped
        .into_iter()
        .map(|(f, reason)| SkippedFile {
            file: f.display().to_string(),
            reason,
        })
        .collect();
    write_report(&report, out)?;
    Ok(report)
}

/// Converts a NIfTI upload, whose class the user states.
pub fn convert_nifti(
    file: &Path,
    class: SequenceClass,
    out: &Path,
    limits: &Limits,
) -> Result<Report> {
    let mut volume = nifti::read_path(
        file,
        ReadOptions {
            volume: 0,
            limits: *limits,
        },
    )?;
    volume.meta.sequence = class;
    std::fs::create_dir_all(out).map_err(|e| ImagingError::io(out, e))?;
    let description = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut report = Report::default();
    let described = Described {
        number: Some(1),
        uid: None,
        description,
        class,
        class_reason: "stated by the user".into(),
        files: 1,
        warnings: Vec::new(),
    };
    report
        .series
        .push(entry(described, &volume, out, &report.series)?);
    write_report(&report, out)?;
    Ok(report)
}

fn write_report(report: &Report, out: &Path) -> Result<()> {
    let path = out.join("series.json");
    let json = serde_json::to_string_pretty(report).expect("the report serialises");
    std::fs::write(&path, json).map_err(|e| ImagingError::io(&path, e))
}
