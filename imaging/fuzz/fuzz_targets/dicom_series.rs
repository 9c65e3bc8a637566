//! Any set of files given to the DICOM series builder (the input is split
//! into up to four files at a marker): reasons for what is refused, never a
//! panic.
#![no_main]

use gyri_imaging::dicom::convert_files;
use gyri_imaging::Limits;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

static DIR: OnceLock<PathBuf> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| {
        // convert_files catches the panics of dicom-rs's pixel decoders on
        // damaged data and reports them; libfuzzer-sys's hook would abort
        // even on those. A panic that escapes still aborts (libfuzzer-sys
        // aborts on any unwinding out of the target).
        std::panic::set_hook(Box::new(|info| eprintln!("caught: {info}")));
        let d = std::env::temp_dir().join(format!("gyri-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    });
    let mut files = Vec::new();
    for (i, chunk) in split(data).into_iter().take(4).enumerate() {
        let path = dir.join(format!("{i}.dcm"));
        std::fs::write(&path, chunk).unwrap();
        files.push(path);
    }
    let limits = Limits { max_voxels: 1 << 20, max_dim: 1024, max_file_bytes: 64 << 20 };
    let _ = convert_files(&files, &limits);
});

/// Splits at the marker "GYRIFILE".
fn split(data: &[u8]) -> Vec<&[u8]> {
    let marker = b"GYRIFILE";
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(marker.len()).position(|w| w == marker) {
        parts.push(&rest[..i]);
        rest = &rest[i + marker.len()..];
    }
    parts.push(rest);
    parts
}
