//! Ingest's file work, without the database or S3: unpack what was uploaded
//! (zip archives checked against traversal, links and bombs), convert DICOM
//! series and NIfTI files to de-identified NIfTI volumes, read who the
//! images are of (for PostgreSQL only), and choose the analysis's T1 and
//! FLAIR.
//!
//! The volumes written are NIfTI with only voxels and geometry: nothing of
//! the DICOM headers (names, IDs, dates) goes into them.

use gyri_imaging::convert::{convert_dicom_dir, convert_nifti, Report};
use gyri_imaging::dicom::deid::{Deidentifier, Identity};
use gyri_imaging::{Limits, SequenceClass};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What a zip may hold (documented in the README).
#[derive(Clone, Copy, Debug)]
pub struct ZipLimits {
    pub max_entries: usize,
    pub max_total_bytes: u64,
    /// Uncompressed over compressed size, per entry and for the archive.
    pub max_ratio: u64,
}

impl Default for ZipLimits {
    fn default() -> Self {
        ZipLimits {
            max_entries: 10_000,
            max_total_bytes: 8 * 1024 * 1024 * 1024,
            max_ratio: 200,
        }
    }
}

/// Bad input: the study gets this message, the job is not retried.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// One uploaded file, downloaded to `path`.
#[derive(Clone, Debug)]
pub struct Uploaded {
    pub filename: String,
    pub path: PathBuf,
    /// The sequence the uploader stated (NIfTI).
    pub sequence: Option<SequenceClass>,
    pub sha256: Vec<u8>,
}

/// A converted series and where its volume is.
#[derive(Clone, Debug)]
pub struct FoundSeries {
    pub number: i32,
    pub description: String,
    pub class: SequenceClass,
    pub class_reason: String,
    pub used_as: Option<SequenceClass>,
    pub files: i32,
    pub dims: [usize; 3],
    pub voxel_mm: [f64; 3],
    pub warnings: Vec<String>,
    pub volume: PathBuf,
}

/// What the upload turned out to be.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// From DICOM; None for NIfTI uploads (the uploader gives the patient).
    pub identity: Option<Identity>,
    /// `dicom:<StudyInstanceUID>` or `nifti:<digest of the files' digests>`.
    pub study_key: String,
    pub series: Vec<FoundSeries>,
    /// Set when there is no usable 3D T1: what was found instead.
    pub needs_attention: Option<String>,
}

fn is_zip(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"PK\x03\x04"
}

fn is_nifti(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".nii") || lower.ends_with(".nii.gz")
}

/// Unpacks `zip` into `dest`, refusing traversal, absolute names, links,
/// too many entries, too many bytes and bomb-like compression. Sizes are
/// counted as bytes are written, not taken from the archive's word.
pub fn unzip(zip: &Path, dest: &Path, limits: &ZipLimits, name: &str) -> Result<usize, Refused> {
    let refuse = |why: String| Refused(format!("{name}: {why}"));
    let file = std::fs::File::open(zip).map_err(|e| refuse(format!("cannot read it: {e}")))?;
    let compressed_total = file.metadata().map(|m| m.len()).unwrap_or(0).max(1);
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| refuse(format!("not a readable zip archive ({e})")))?;
    if archive.len() > limits.max_entries {
        return Err(refuse(format!(
            "the archive has {} entries; at most {} are accepted",
            archive.len(),
            limits.max_entries
        )));
    }
    let mut total = 0u64;
    let mut files = 0;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| refuse(format!("entry {i} cannot be read ({e})")))?;
        let raw_name = entry
            .name()
            .map(|n| n.into_owned())
            .map_err(|e| refuse(format!("entry {i} has an unreadable name ({e})")))?;
        if raw_name.starts_with('/') || raw_name.starts_with('\\') || raw_name.contains(":\\") {
            return Err(refuse(format!(
                "the entry {raw_name:?} has an absolute path"
            )));
        }
        let Some(relative) = entry.enclosed_name() else {
            return Err(refuse(format!(
                "the entry {raw_name:?} points outside the archive"
            )));
        };
        if entry.is_symlink() {
            return Err(refuse(format!("the entry {raw_name:?} is a symbolic link")));
        }
        if entry.is_dir() {
            continue;
        }
        let out_path = dest.join(&relative);
        if let Some(parent) = out_path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| refuse(format!("cannot unpack: {e}")))?;
        }
        let compressed = entry.compressed_size().max(1);
        let mut out =
            std::fs::File::create(&out_path).map_err(|e| refuse(format!("cannot unpack: {e}")))?;
        let mut written = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| refuse(format!("the entry {raw_name:?} is damaged ({e})")))?;
            if n == 0 {
                break;
            }
            written += n as u64;
            total += n as u64;
            if total > limits.max_total_bytes {
                return Err(refuse(format!(
                    "it unpacks to more than {} bytes",
                    limits.max_total_bytes
                )));
            }
            if written > 1024 * 1024 && written / compressed > limits.max_ratio {
                return Err(refuse(format!(
                    "the entry {raw_name:?} expands more than {}-fold (a zip bomb?)",
                    limits.max_ratio
                )));
            }
            out.write_all(&buf[..n])
                .map_err(|e| refuse(format!("cannot unpack: {e}")))?;
        }
        files += 1;
    }
    if total > 16 * 1024 * 1024 && total / compressed_total > limits.max_ratio {
        return Err(refuse(format!(
            "it expands more than {}-fold (a zip bomb?)",
            limits.max_ratio
        )));
    }
    Ok(files)
}

/// A name safe as a file name: the uploader's name is not trusted as a path.
fn safe_name(i: usize, name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    format!("{i:05}_{}", cleaned.trim_start_matches('.'))
}

fn class_name(c: SequenceClass) -> &'static str {
    match c {
        SequenceClass::T1 => "T1",
        SequenceClass::Flair => "FLAIR",
        SequenceClass::Other => "other",
    }
}

/// Unpacks and converts everything uploaded, under `work`.
pub fn prepare(files: &[Uploaded], work: &Path, limits: &Limits) -> Result<Prepared, Refused> {
    let io = |e: std::io::Error| Refused(format!("cannot prepare the files: {e}"));
    let dicom_dir = work.join("dicom");
    let volumes_dir = work.join("volumes");
    std::fs::create_dir_all(&dicom_dir).map_err(io)?;
    std::fs::create_dir_all(&volumes_dir).map_err(io)?;
    let mut niftis = Vec::new();
    let mut dicom_files = 0usize;
    for (i, f) in files.iter().enumerate() {
        if is_zip(&f.path) {
            let dest = dicom_dir.join(format!("zip{i:05}"));
            std::fs::create_dir_all(&dest).map_err(io)?;
            dicom_files += unzip(&f.path, &dest, &ZipLimits::default(), &f.filename)?;
        } else if is_nifti(&f.filename) {
            niftis.push(f);
        } else {
            std::fs::rename(&f.path, dicom_dir.join(safe_name(i, &f.filename))).map_err(io)?;
            dicom_files += 1;
        }
    }

    let mut series = Vec::new();
    let mut refused_notes = Vec::new();
    let mut identity = None;
    let mut study_uid = None;
    if dicom_files > 0 {
        let out = volumes_dir.join("dicom");
        let report = convert_dicom_dir(&dicom_dir, &out, limits)
            .map_err(|e| Refused(format!("the DICOM files cannot be read: {e}")))?;
        (identity, study_uid) = dicom_identity(&dicom_dir, limits);
        add_series(&report, &out, &mut series);
        for r in &report.refused {
            refused_notes.push(format!("{} (not used: {})", r.description, r.reason));
        }
        if report.series.is_empty() && report.refused.is_empty() {
            let why = report
                .skipped
                .first()
                .map(|s| s.reason.clone())
                .unwrap_or_else(|| "no images".into());
            refused_notes.push(format!(
                "{} file(s) that are not DICOM images (for example: {why})",
                report.skipped.len()
            ));
        }
    }
    for (i, f) in niftis.iter().enumerate() {
        let class = f.sequence.unwrap_or(SequenceClass::Other);
        let out = volumes_dir.join(format!("nifti{i:03}"));
        match convert_nifti(&f.path, class, &out, limits) {
            Ok(report) => {
                let before = series.len();
                add_series(&report, &out, &mut series);
                for s in &mut series[before..] {
                    s.description = f.filename.clone();
                    if f.sequence.is_none() {
                        s.warnings
                            .push("no sequence given with the upload (t1, flair)".into());
                    }
                }
            }
            Err(e) => refused_notes.push(format!("{} (not used: {e})", f.filename)),
        }
    }
    // Series numbers must be unique within the study.
    for (i, s) in series.iter_mut().enumerate() {
        s.number = i as i32 + 1;
    }

    // The analysis takes the T1 with the finest voxels (then the most
    // slices), and the first FLAIR.
    let t1 = series
        .iter()
        .enumerate()
        .filter(|(_, s)| s.class == SequenceClass::T1)
        .min_by(|(_, a), (_, b)| {
            let va: f64 = a.voxel_mm.iter().product();
            let vb: f64 = b.voxel_mm.iter().product();
            va.total_cmp(&vb).then(
                b.dims
                    .iter()
                    .product::<usize>()
                    .cmp(&a.dims.iter().product()),
            )
        })
        .map(|(i, _)| i);
    if let Some(i) = t1 {
        series[i].used_as = Some(SequenceClass::T1);
        if let Some(f) = series.iter_mut().find(|s| s.class == SequenceClass::Flair) {
            f.used_as = Some(SequenceClass::Flair);
        }
    }
    let needs_attention = t1.is_none().then(|| {
        let mut found: Vec<String> = series
            .iter()
            .map(|s| {
                format!(
                    "{} ({}: {})",
                    s.description,
                    class_name(s.class),
                    s.class_reason
                )
            })
            .collect();
        found.extend(refused_notes.iter().cloned());
        format!(
            "no usable 3D T1 series was found, so the study cannot be measured; found: {}",
            if found.is_empty() {
                "nothing usable".to_owned()
            } else {
                found.join("; ")
            }
        )
    });

    let study_key = match study_uid {
        Some(uid) => format!("dicom:{uid}"),
        None => {
            let mut digests: Vec<String> = files.iter().map(|f| hex::encode(&f.sha256)).collect();
            digests.sort();
            format!(
                "files:{}",
                hex::encode(Sha256::digest(digests.join(",").as_bytes()))
            )
        }
    };
    Ok(Prepared {
        identity,
        study_key,
        series,
        needs_attention,
    })
}

fn add_series(report: &Report, dir: &Path, series: &mut Vec<FoundSeries>) {
    for s in &report.series {
        series.push(FoundSeries {
            number: s.number.unwrap_or(0) as i32,
            description: s.description.clone(),
            class: s.class,
            class_reason: s.class_reason.clone(),
            used_as: None,
            files: s.files as i32,
            dims: s.dims,
            voxel_mm: s.spacing_mm,
            warnings: s.warnings.clone(),
            volume: dir.join(&s.file),
        });
    }
}

/// The identity and StudyInstanceUID in the first DICOM file that opens.
fn dicom_identity(dir: &Path, limits: &Limits) -> (Option<Identity>, Option<String>) {
    let Ok(files) = gyri_imaging::convert::files_under(dir) else {
        return (None, None);
    };
    for f in files {
        let Ok(obj) = gyri_imaging::dicom::open_dicom(&f, limits) else {
            continue;
        };
        let uid = obj
            .element(gyri_imaging::dicom::deid::STUDY_INSTANCE_UID)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).to_owned())
            .filter(|s| !s.is_empty());
        let identity = Deidentifier::new(0).deidentify(&obj).ok().map(|(_, id)| id);
        return (identity, uid);
    }
    (None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zip_of(entries: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut w = zip::ZipWriter::new(f.reopen().unwrap());
        for (name, data) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
        f
    }

    #[test]
    fn zips_unpack_and_hostile_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ok = zip_of(&[("study/IM0001", b"a"), ("study/sub/IM0002", b"bb")]);
        assert_eq!(
            unzip(ok.path(), dir.path(), &ZipLimits::default(), "ok.zip").unwrap(),
            2
        );
        assert_eq!(
            std::fs::read(dir.path().join("study/sub/IM0002")).unwrap(),
            b"bb"
        );

        for (name, why) in [
            ("../evil", "outside"),
            ("/etc/evil", "absolute"),
            ("a/../../evil", "outside"),
        ] {
            let z = zip_of(&[(name, b"x")]);
            let d = tempfile::tempdir().unwrap();
            let e = unzip(z.path(), d.path(), &ZipLimits::default(), "bad.zip").unwrap_err();
            assert!(e.0.contains(why), "{name}: {e}");
        }

        let many: Vec<(String, Vec<u8>)> = (0..12).map(|i| (format!("f{i}"), vec![1u8])).collect();
        let refs: Vec<(&str, &[u8])> = many
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        let z = zip_of(&refs);
        let limits = ZipLimits {
            max_entries: 10,
            ..Default::default()
        };
        let e = unzip(z.path(), dir.path(), &limits, "many.zip").unwrap_err();
        assert!(e.0.contains("12 entries"), "{e}");

        // 64 MB of zeros compress about 1000-fold.
        let zeros = vec![0u8; 64 * 1024 * 1024];
        let z = {
            let f = tempfile::NamedTempFile::new().unwrap();
            let mut w = zip::ZipWriter::new(f.reopen().unwrap());
            let o = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            w.start_file("zeros", o).unwrap();
            w.write_all(&zeros).unwrap();
            w.finish().unwrap();
            f
        };
        let d = tempfile::tempdir().unwrap();
        let e = unzip(z.path(), d.path(), &ZipLimits::default(), "bomb.zip").unwrap_err();
        assert!(e.0.contains("zip bomb"), "{e}");
        let small = ZipLimits {
            max_total_bytes: 1024 * 1024,
            max_ratio: 1_000_000,
            ..Default::default()
        };
        let e = unzip(z.path(), d.path(), &small, "bomb.zip").unwrap_err();
        assert!(e.0.contains("more than 1048576 bytes"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn symbolic_links_in_zips_are_refused() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut w = zip::ZipWriter::new(f.reopen().unwrap());
        w.add_symlink(
            "link",
            "/etc/passwd",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        w.finish().unwrap();
        let d = tempfile::tempdir().unwrap();
        let e = unzip(f.path(), d.path(), &ZipLimits::default(), "link.zip").unwrap_err();
        assert!(e.0.contains("symbolic link"), "{e}");
        assert!(!d.path().join("link").exists());
    }

    #[test]
    fn names_from_uploaders_are_not_paths() {
        assert_eq!(safe_name(3, "../../etc/passwd"), "00003__.._etc_passwd");
        assert_eq!(safe_name(0, ".hidden"), "00000_hidden");
    }
}
