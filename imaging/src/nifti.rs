//! NIfTI-1 and NIfTI-2 (`.nii`, `.nii.gz`): reading with the standard's
//! choice of transform (sform when its code is set, else qform, else the
//! voxel sizes alone), scaling by `scl_slope`/`scl_inter`, one chosen volume
//! of a 4D image; writing NIfTI-1 with both sform and qform.
//!
//! Every size is checked against [`Limits`] before anything is allocated.

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use std::io::{Read, Write};
use std::path::Path;

use crate::affine::Affine;
use crate::error::{ImagingError, Result};
use crate::limits::Limits;
use crate::volume::{Volume, VoxelData};

/// How to read: which volume of a 4D image, within which limits.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOptions {
    /// The volume (fourth index) to take from a 4D image.
    pub volume: usize,
    pub limits: Limits,
}

/// Reads a `.nii` or `.nii.gz` file.
pub fn read_path(path: &Path, options: ReadOptions) -> Result<Volume> {
    let size = std::fs::metadata(path)
        .map_err(|e| ImagingError::io(path, e))?
        .len();
    if size > options.limits.max_file_bytes {
        return Err(ImagingError::TooLarge(format!(
            "the file has {size} bytes; the limit is {}",
            options.limits.max_file_bytes
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| ImagingError::io(path, e))?;
    read_bytes(&bytes, options)
}

/// Reads NIfTI from memory, gzip-compressed or not.
pub fn read_bytes(bytes: &[u8], options: ReadOptions) -> Result<Volume> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let limit = options.limits.max_file_bytes;
        let mut out = Vec::new();
        MultiGzDecoder::new(bytes)
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| ImagingError::Truncated(format!("the gzip stream is damaged ({e})")))?;
        if out.len() as u64 > limit {
            return Err(ImagingError::TooLarge(format!(
                "the image decompresses to more than {limit} bytes"
            )));
        }
        parse(&out, options)
    } else {
        parse(bytes, options)
    }
}

/// The header fields Gyri uses, from either version.
#[derive(Debug)]
struct Header {
    dim: [i64; 8],
    datatype: i16,
    pixdim: [f64; 8],
    vox_offset: u64,
    scl_slope: f64,
    scl_inter: f64,
    qform_code: i32,
    sform_code: i32,
    quatern: [f64; 6],
    srow: [[f64; 4]; 3],
}

struct Fields<'a> {
    b: &'a [u8],
    big: bool,
}

impl Fields<'_> {
    fn arr<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[at..at + N]);
        if self.big {
            a.reverse();
        }
        a
    }
    fn i16(&self, at: usize) -> i16 {
        i16::from_le_bytes(self.arr(at))
    }
    fn i32(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.arr(at))
    }
    fn i64(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.arr(at))
    }
    fn f32(&self, at: usize) -> f64 {
        f32::from_le_bytes(self.arr(at)) as f64
    }
    fn f64(&self, at: usize) -> f64 {
        f64::from_le_bytes(self.arr(at))
    }
}

fn parse_header(b: &[u8]) -> Result<(Header, bool)> {
    if b.len() < 4 {
        return Err(ImagingError::Truncated("no NIfTI header".into()));
    }
    let le = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let be = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let (version, big) = match (le, be) {
        (348, _) => (1, false),
        (_, 348) => (1, true),
        (540, _) => (2, false),
        (_, 540) => (2, true),
        _ => {
            return Err(ImagingError::NotNifti(
                "the first bytes are not a NIfTI-1 or NIfTI-2 header".into(),
            ))
        }
    };
    let size = if version == 1 { 348 } else { 540 };
    if b.len() < size {
        return Err(ImagingError::Truncated("the header is incomplete".into()));
    }
    let f = Fields { b, big };
    let header = if version == 1 {
        let magic = &b[344..348];
        if magic != b"n+1\0" && magic != b"ni1\0" {
            return Err(ImagingError::NotNifti(
                "the NIfTI-1 magic is missing".into(),
            ));
        }
        if magic == b"ni1\0" {
            return Err(ImagingError::Unsupported(
                "two-file NIfTI (.hdr/.img): upload a single .nii or .nii.gz".into(),
            ));
        }
        Header {
            dim: std::array::from_fn(|i| f.i16(40 + 2 * i) as i64),
            datatype: f.i16(70),
            pixdim: std::array::from_fn(|i| f.f32(76 + 4 * i)),
            vox_offset: {
                let v = f.f32(108);
                if !(v.is_finite() && v >= 0.0) {
                    return Err(ImagingError::BadHeader(
                        "the data offset is not a number".into(),
                    ));
                }
                v as u64
            },
            scl_slope: f.f32(112),
            scl_inter: f.f32(116),
            qform_code: f.i16(252) as i32,
            sform_code: f.i16(254) as i32,
            quatern: std::array::from_fn(|i| f.f32(256 + 4 * i)),
            srow: std::array::from_fn(|r| std::array::from_fn(|c| f.f32(280 + 16 * r + 4 * c))),
        }
    } else {
        if &b[4..12] != b"n+2\0\r\n\x1a\n" {
            return Err(ImagingError::NotNifti(
                "the NIfTI-2 magic is missing".into(),
            ));
        }
        let vox_offset = f.i64(168);
        if vox_offset < 0 {
            return Err(ImagingError::BadHeader(
                "the data offset is negative".into(),
            ));
        }
        Header {
            dim: std::array::from_fn(|i| f.i64(16 + 8 * i)),
            datatype: f.i16(12),
            pixdim: std::array::from_fn(|i| f.f64(104 + 8 * i)),
            vox_offset: vox_offset as u64,
            scl_slope: f.f64(176),
            scl_inter: f.f64(184),
            qform_code: f.i32(344),
            sform_code: f.i32(348),
            quatern: std::array::from_fn(|i| f.f64(352 + 8 * i)),
            srow: std::array::from_fn(|r| std::array::from_fn(|c| f.f64(400 + 32 * r + 8 * c))),
        }
    };
    let min_offset = if version == 1 { 348 } else { 540 };
    if header.vox_offset < min_offset {
        return Err(ImagingError::BadHeader(format!(
            "the data offset {} lies inside the header",
            header.vox_offset
        )));
    }
    Ok((header, big))
}

/// Bytes per voxel and whether the type is supported.
fn bytes_per_voxel(datatype: i16) -> Result<usize> {
    Ok(match datatype {
        2 | 256 => 1,          // uint8, int8
        4 | 512 => 2,          // int16, uint16
        8 | 16 | 768 => 4,     // int32, float32, uint32
        64 | 1024 | 1280 => 8, // float64, int64, uint64
        128 | 2304 => {
            return Err(ImagingError::Unsupported(
                "colour (RGB) images are not MRI intensity volumes".into(),
            ))
        }
        32 | 1792 | 2048 => return Err(ImagingError::Unsupported("complex-valued images".into())),
        other => {
            return Err(ImagingError::BadHeader(format!(
                "unknown data type code {other}"
            )))
        }
    })
}

fn parse(b: &[u8], options: ReadOptions) -> Result<Volume> {
    let (h, big) = parse_header(b)?;
    let limits = options.limits;
    let ndim = h.dim[0];
    if !(1..=7).contains(&ndim) {
        return Err(ImagingError::BadHeader(format!(
            "{ndim} dimensions is not possible"
        )));
    }
    let mut dims = [1usize; 3];
    for (d, slot) in dims.iter_mut().enumerate() {
        if (d as i64) < ndim {
            let n = h.dim[d + 1];
            if n < 1 || n as u64 > limits.max_dim as u64 {
                return Err(ImagingError::TooLarge(format!(
                    "axis {} has {n} voxels; the limit is 1 to {}",
                    d + 1,
                    limits.max_dim
                )));
            }
            *slot = n as usize;
        }
    }
    let volumes = if ndim >= 4 { h.dim[4].max(1) } else { 1 };
    if ndim >= 5 && h.dim[5..=(ndim as usize)].iter().any(|&n| n > 1) {
        return Err(ImagingError::Unsupported(
            "images with more than four dimensions".into(),
        ));
    }
    if options.volume as i64 >= volumes {
        return Err(ImagingError::BadHeader(format!(
            "volume {} was asked for but the image has {volumes}",
            options.volume
        )));
    }
    let voxels = dims[0] * dims[1] * dims[2]; // ≤ 4096³ fits in usize
    if voxels > limits.max_voxels {
        return Err(ImagingError::TooLarge(format!(
            "{}×{}×{} = {voxels} voxels; the limit is {}",
            dims[0], dims[1], dims[2], limits.max_voxels
        )));
    }
    for d in 1..=3 {
        let p = h.pixdim[d];
        if !(p.is_finite() && p > 0.0) {
            return Err(ImagingError::BadHeader(format!(
                "the voxel size along axis {d} is {p}, not a positive number of millimetres"
            )));
        }
    }
    let affine = choose_affine(&h)?;
    let bpv = bytes_per_voxel(h.datatype)?;
    let bytes = voxels * bpv; // ≤ max_voxels × 8
    let out_of_range = || ImagingError::BadHeader("the data offset is out of range".into());
    let start = usize::try_from(h.vox_offset)
        .ok()
        .and_then(|o| o.checked_add(options.volume.checked_mul(bytes)?))
        .ok_or_else(out_of_range)?;
    let end = start.checked_add(bytes).ok_or_else(out_of_range)?;
    if end > b.len() {
        return Err(ImagingError::Truncated(format!(
            "the header announces {} bytes of voxel data but only {} are there",
            end.saturating_sub(h.vox_offset as usize),
            b.len().saturating_sub(h.vox_offset as usize)
        )));
    }
    let raw = &b[start..end];
    let scaled = h.scl_slope.is_finite()
        && h.scl_slope != 0.0
        && !(h.scl_slope == 1.0 && h.scl_inter == 0.0);
    let (slope, inter) = if scaled {
        (
            h.scl_slope,
            if h.scl_inter.is_finite() {
                h.scl_inter
            } else {
                0.0
            },
        )
    } else {
        (1.0, 0.0)
    };
    let data = decode(raw, h.datatype, big, scaled, slope, inter);
    Volume::new(dims, affine, data)
}

/// Converts raw voxels: label-like types stay integers when unscaled.
fn decode(raw: &[u8], datatype: i16, big: bool, scaled: bool, slope: f64, inter: f64) -> VoxelData {
    macro_rules! conv {
        ($t:ty, $n:expr) => {
            raw.chunks_exact($n).map(|c| {
                let mut a = [0u8; $n];
                a.copy_from_slice(c);
                if big {
                    a.reverse();
                }
                <$t>::from_le_bytes(a)
            })
        };
    }
    let f = |v: f64| (v * slope + inter) as f32;
    match (datatype, scaled) {
        (2, false) => VoxelData::U8(raw.to_vec()),
        (512, false) => VoxelData::U16(conv!(u16, 2).collect()),
        (2, true) => VoxelData::F32(raw.iter().map(|&v| f(v as f64)).collect()),
        (256, _) => VoxelData::F32(raw.iter().map(|&v| f(v as i8 as f64)).collect()),
        (4, _) => VoxelData::F32(conv!(i16, 2).map(|v| f(v as f64)).collect()),
        (512, true) => VoxelData::F32(conv!(u16, 2).map(|v| f(v as f64)).collect()),
        (8, _) => VoxelData::F32(conv!(i32, 4).map(|v| f(v as f64)).collect()),
        (768, _) => VoxelData::F32(conv!(u32, 4).map(|v| f(v as f64)).collect()),
        (16, _) => VoxelData::F32(conv!(f32, 4).map(|v| f(v as f64)).collect()),
        (64, _) => VoxelData::F32(conv!(f64, 8).map(f).collect()),
        (1024, _) => VoxelData::F32(conv!(i64, 8).map(|v| f(v as f64)).collect()),
        _ => VoxelData::F32(conv!(u64, 8).map(|v| f(v as f64)).collect()),
    }
}

/// The standard's order: sform (method 3) when its code is set, else the
/// qform (method 2), else voxel sizes alone (method 1, "analyze" images).
fn choose_affine(h: &Header) -> Result<Affine> {
    let affine = if h.sform_code > 0 {
        let mut a = Affine::IDENTITY;
        for r in 0..3 {
            a.0[r] = h.srow[r];
        }
        a
    } else if h.qform_code > 0 {
        let [b, c, d, x, y, z] = h.quatern;
        Affine::from_quaternion(
            b,
            c,
            d,
            h.pixdim[0],
            [h.pixdim[1], h.pixdim[2], h.pixdim[3]],
            [x, y, z],
        )
    } else {
        Affine::scaling([h.pixdim[1], h.pixdim[2], h.pixdim[3]])
    };
    if !affine.is_finite() || affine.inverse().is_none() {
        return Err(ImagingError::BadHeader(
            "the voxel-to-world transform is not usable (zero or not a number)".into(),
        ));
    }
    Ok(affine)
}

/// Writes NIfTI-1 (gzip-compressed when the name ends in `.gz`).
pub fn write_path(volume: &Volume, path: &Path) -> Result<()> {
    let bytes = to_bytes(volume);
    let out = if path.extension().is_some_and(|e| e == "gz") {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes)
            .map_err(|e| ImagingError::io(path, e))?;
        enc.finish().map_err(|e| ImagingError::io(path, e))?
    } else {
        bytes
    };
    std::fs::write(path, out).map_err(|e| ImagingError::io(path, e))
}

/// The uncompressed NIfTI-1 file of a volume.
pub fn to_bytes(volume: &Volume) -> Vec<u8> {
    let (datatype, bitpix): (i16, i16) = match &volume.data {
        VoxelData::F32(_) => (16, 32),
        VoxelData::U8(_) => (2, 8),
        VoxelData::U16(_) => (512, 16),
    };
    let mut h = vec![0u8; 352];
    let put = |h: &mut Vec<u8>, at: usize, b: &[u8]| h[at..at + b.len()].copy_from_slice(b);
    put(&mut h, 0, &348i32.to_le_bytes());
    let dim: [i16; 8] = [
        3,
        volume.dims[0] as i16,
        volume.dims[1] as i16,
        volume.dims[2] as i16,
        1,
        1,
        1,
        1,
    ];
    for (i, d) in dim.iter().enumerate() {
        put(&mut h, 40 + 2 * i, &d.to_le_bytes());
    }
    put(&mut h, 70, &datatype.to_le_bytes());
    put(&mut h, 72, &bitpix.to_le_bytes());
    let (quat, qfac, spacing, offset) = volume.affine.to_quaternion();
    let pixdim = [qfac, spacing[0], spacing[1], spacing[2], 1.0, 1.0, 1.0, 1.0];
    for (i, p) in pixdim.iter().enumerate() {
        put(&mut h, 76 + 4 * i, &(*p as f32).to_le_bytes());
    }
    put(&mut h, 108, &352f32.to_le_bytes());
    put(&mut h, 112, &1f32.to_le_bytes());
    put(&mut h, 116, &0f32.to_le_bytes());
    h[123] = 2 | 8; // millimetres, seconds
    put(&mut h, 148, b"gyri");
    put(&mut h, 252, &1i16.to_le_bytes()); // qform: scanner anatomical
    put(&mut h, 254, &1i16.to_le_bytes()); // sform: scanner anatomical
    for (i, v) in quat.iter().chain(offset.iter()).enumerate() {
        put(&mut h, 256 + 4 * i, &(*v as f32).to_le_bytes());
    }
    for r in 0..3 {
        for c in 0..4 {
            put(
                &mut h,
                280 + 16 * r + 4 * c,
                &(volume.affine.0[r][c] as f32).to_le_bytes(),
            );
        }
    }
    put(&mut h, 344, b"n+1\0");
    let mut out = h;
    match &volume.data {
        VoxelData::F32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        VoxelData::U8(v) => out.extend_from_slice(v),
        VoxelData::U16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
    out
}
