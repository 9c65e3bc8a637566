//! Damaged and hostile NIfTI input: a typed error, never a panic, never a
//! huge allocation.

use gyri_imaging::nifti::{read_bytes, to_bytes, ReadOptions};
use gyri_imaging::{Affine, ImagingError, Volume, VoxelData};

fn small() -> Vec<u8> {
    let v = Volume::new(
        [4, 3, 2],
        Affine::scaling([1.0, 1.0, 2.0]),
        VoxelData::F32((0..24).map(|x| x as f32).collect()),
    )
    .unwrap();
    to_bytes(&v)
}

fn read(b: &[u8]) -> Result<Volume, ImagingError> {
    read_bytes(b, ReadOptions::default())
}

#[test]
fn a_valid_small_file_reads() {
    let v = read(&small()).unwrap();
    assert_eq!(v.dims, [4, 3, 2]);
    assert_eq!(v.data.get_f32(23), 23.0);
}

#[test]
fn truncation_anywhere_is_reported() {
    let b = small();
    for cut in [0, 3, 100, 347, 352, 400, b.len() - 1] {
        let err = read(&b[..cut]).unwrap_err();
        assert!(
            matches!(err, ImagingError::Truncated(_) | ImagingError::NotNifti(_)),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn wrong_magic_is_not_nifti() {
    let mut b = small();
    b[344..348].copy_from_slice(b"xyz\0");
    assert!(matches!(read(&b).unwrap_err(), ImagingError::NotNifti(_)));
    assert!(matches!(
        read(b"PK\x03\x04 a zip file").unwrap_err(),
        ImagingError::NotNifti(_)
    ));
}

#[test]
fn absurd_dimensions_are_refused_before_allocating() {
    let mut b = small();
    for (i, d) in [3i16, 30000, 30000, 30000].iter().enumerate() {
        b[40 + 2 * i..42 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    let err = read(&b).unwrap_err();
    assert!(matches!(err, ImagingError::TooLarge(_)), "{err}");
    b[42..44].copy_from_slice(&(-5i16).to_le_bytes());
    assert!(matches!(read(&b).unwrap_err(), ImagingError::TooLarge(_)));
}

#[test]
fn negative_or_nan_voxel_sizes_are_refused() {
    for bad in [-1.0f32, 0.0, f32::NAN, f32::INFINITY] {
        let mut b = small();
        b[80..84].copy_from_slice(&bad.to_le_bytes());
        let err = read(&b).unwrap_err();
        assert!(
            matches!(err, ImagingError::BadHeader(_)),
            "pixdim {bad}: {err}"
        );
    }
}

#[test]
fn a_degenerate_transform_is_refused() {
    let mut b = small();
    for at in (280..328).step_by(4) {
        b[at..at + 4].copy_from_slice(&0f32.to_le_bytes());
    }
    assert!(matches!(read(&b).unwrap_err(), ImagingError::BadHeader(_)));
}

#[test]
fn a_gzip_bomb_stops_at_the_limit() {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    let mut options = ReadOptions::default();
    options.limits.max_file_bytes = 16 << 20;
    let err = read_bytes(&bomb, options).unwrap_err();
    assert!(matches!(err, ImagingError::TooLarge(_)), "{err}");
}

#[test]
fn random_bytes_never_panic() {
    let base = small();
    let mut seed = 0x9e3779b97f4a7c15u64;
    for _ in 0..2000 {
        let mut b = base.clone();
        for _ in 0..8 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed as usize) % b.len();
            b[at] = (seed >> 32) as u8;
        }
        let _ = read(&b);
    }
}
