//! NIfTI against real files written by others, and against nibabel.

mod common;

use common::{affine_of, nibabel, read_f32, testdata};
use gyri_imaging::nifti::{self, ReadOptions};
use gyri_imaging::{ImagingError, Volume, VoxelData};
use std::path::Path;

fn assert_same_as_nibabel(path: &Path, volume: &Volume) {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("voxels.f32");
    let described = nibabel(&[Path::new("describe"), path, &raw]);
    let dims: Vec<usize> = described["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(volume.dims.to_vec(), dims, "{}", path.display());
    let diff = volume.affine.max_abs_diff(&affine_of(&described["affine"]));
    assert!(
        diff < 1e-6,
        "affine differs from nibabel's by {diff} for {}",
        path.display()
    );
    let theirs = read_f32(&raw);
    let ours = volume.data.to_f32();
    assert_eq!(ours.len(), theirs.len());
    let worst = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0f32, f32::max);
    assert!(
        worst <= 1e-6,
        "voxel values differ (relative {worst}) for {}",
        path.display()
    );
}

#[test]
fn colin27_and_mni152_read_as_nibabel_reads_them() {
    for name in ["colin27_t1.nii.gz", "mni152_2009a_t1.nii.gz"] {
        let path = testdata().join(name);
        let volume = nifti::read_path(&path, ReadOptions::default()).unwrap();
        assert_same_as_nibabel(&path, &volume);
    }
}

#[test]
fn every_encoding_nibabel_writes_reads_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let source = testdata().join("mni152_2009a_t1.nii.gz");
    let written = nibabel(&[Path::new("variants"), &source, dir.path()]);
    let original = nifti::read_path(&source, ReadOptions::default()).unwrap();
    for (name, affine) in written.as_object().unwrap() {
        let path = dir.path().join(name);
        let volume = nifti::read_path(&path, ReadOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let diff = volume.affine.max_abs_diff(&affine_of(affine));
        assert!(diff < 1e-5, "{name}: affine differs by {diff}");
        assert_same_as_nibabel(&path, &volume);
        if name == "uint8.nii" {
            assert!(
                matches!(volume.data, VoxelData::U8(_)),
                "label-like data keeps its type"
            );
        }
        if name == "4d.nii.gz" {
            let second = nifti::read_path(
                &path,
                ReadOptions {
                    volume: 1,
                    ..Default::default()
                },
            )
            .unwrap();
            let a = volume.data.to_f32();
            let b = second.data.to_f32();
            assert!(
                a.iter().zip(&b).all(|(x, y)| *y == 2.0 * x),
                "volume 1 is the second volume"
            );
            let err = nifti::read_path(
                &path,
                ReadOptions {
                    volume: 2,
                    ..Default::default()
                },
            )
            .unwrap_err();
            assert!(matches!(err, ImagingError::BadHeader(_)), "{err}");
        }
        if name != "uint8.nii" && name != "int16_scaled.nii.gz" {
            assert_eq!(volume.dims, original.dims);
        }
    }
}

#[test]
fn what_gyri_writes_nibabel_reads_identically() {
    let dir = tempfile::tempdir().unwrap();
    let colin = nifti::read_path(
        &testdata().join("colin27_t1.nii.gz"),
        ReadOptions::default(),
    )
    .unwrap();
    // An oblique, flipped affine to make the qform work.
    let mut oblique = colin.clone();
    let (c, s) = (0.3f64.cos(), 0.3f64.sin());
    let rot = gyri_imaging::Affine([
        [c, -s, 0.0, 0.0],
        [s, c, 0.0, 0.0],
        [0.0, 0.0, -1.0, 5.0],
        [0.0, 0.0, 0.0, 1.0],
    ]);
    oblique.affine = rot.matmul(&colin.affine);
    let labels = Volume::new(
        colin.dims,
        colin.affine,
        VoxelData::U16(
            colin
                .data
                .to_f32()
                .iter()
                .map(|v| (*v as u16) % 7)
                .collect(),
        ),
    )
    .unwrap();
    for (name, volume) in [
        ("colin.nii.gz", &colin),
        ("oblique.nii", &oblique),
        ("labels.nii.gz", &labels),
    ] {
        let path = dir.path().join(name);
        nifti::write_path(volume, &path).unwrap();
        let back = nifti::read_path(&path, ReadOptions::default()).unwrap();
        assert_same_as_nibabel(&path, &back);
        assert_eq!(back.data, volume.data, "{name}: data round-trips exactly");
        assert!(
            back.affine.max_abs_diff(&volume.affine) < 1e-4,
            "{name}: affine round-trips (f32)"
        );
    }
}
