//! Any bytes given to the NIfTI reader: an error or a volume, never a panic,
//! never more memory than the limits allow.
#![no_main]

use gyri_imaging::nifti::{read_bytes, ReadOptions};
use gyri_imaging::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_voxels: 1 << 20, max_dim: 1024, max_file_bytes: 64 << 20 };
    let _ = read_bytes(data, ReadOptions { volume: 0, limits });
    let _ = read_bytes(data, ReadOptions { volume: 1, limits });
});
