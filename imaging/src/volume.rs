//! A 3D volume: voxel data on a grid placed in the patient by an affine.

use serde::{Deserialize, Serialize};

use crate::affine::Affine;
use crate::error::{ImagingError, Result};

/// Voxel values, first axis fastest. Images are f32; label maps u8 or u16.
#[derive(Clone, Debug, PartialEq)]
pub enum VoxelData {
    F32(Vec<f32>),
    U8(Vec<u8>),
    U16(Vec<u16>),
}

impl VoxelData {
    pub fn len(&self) -> usize {
        match self {
            VoxelData::F32(v) => v.len(),
            VoxelData::U8(v) => v.len(),
            VoxelData::U16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at a linear index, as f32.
    pub fn get_f32(&self, i: usize) -> f32 {
        match self {
            VoxelData::F32(v) => v[i],
            VoxelData::U8(v) => v[i] as f32,
            VoxelData::U16(v) => v[i] as f32,
        }
    }

    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            VoxelData::F32(v) => v.clone(),
            VoxelData::U8(v) => v.iter().map(|&x| x as f32).collect(),
            VoxelData::U16(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
}

/// What the pipeline knows about how the image was acquired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SequenceClass {
    /// 3D T1-weighted (MPRAGE, SPGR, ...).
    T1,
    /// FLAIR, 2D or 3D.
    Flair,
    #[default]
    Other,
}

/// Acquisition facts the pipeline needs, where known.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub modality: Option<String>,
    pub sequence: SequenceClass,
    /// ISO date (YYYY-MM-DD).
    pub acquisition_date: Option<String>,
    pub scanner: Option<String>,
    pub field_strength_tesla: Option<f64>,
    pub patient_age_years: Option<f64>,
    pub patient_sex: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    pub dims: [usize; 3],
    pub affine: Affine,
    pub data: VoxelData,
    pub meta: Metadata,
}

impl Volume {
    /// A volume, checking that the data fills the grid and the affine is
    /// usable.
    pub fn new(dims: [usize; 3], affine: Affine, data: VoxelData) -> Result<Volume> {
        let n = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if n != Some(data.len()) {
            return Err(ImagingError::Geometry(format!(
                "{} voxel values do not fill a {}×{}×{} grid",
                data.len(),
                dims[0],
                dims[1],
                dims[2]
            )));
        }
        if !affine.is_finite() || affine.inverse().is_none() {
            return Err(ImagingError::Geometry(
                "the voxel-to-world transform is degenerate".into(),
            ));
        }
        Ok(Volume {
            dims,
            affine,
            data,
            meta: Metadata::default(),
        })
    }

    pub fn voxel_count(&self) -> usize {
        self.dims.iter().product()
    }

    /// Linear index of voxel (i, j, k).
    #[inline]
    pub fn index(&self, i: usize, j: usize, k: usize) -> usize {
        i + self.dims[0] * (j + self.dims[1] * k)
    }

    /// Voxel sizes in millimetres.
    pub fn spacing(&self) -> [f64; 3] {
        self.affine.spacing()
    }

    /// Volume of one voxel in cubic millimetres.
    pub fn voxel_volume_mm3(&self) -> f64 {
        self.affine.det3().abs()
    }
}
