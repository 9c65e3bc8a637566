//! Gyri's imaging layer: turns what clinics send into volumes whose voxel
//! values, voxel sizes and positions in the patient can be trusted, and
//! refuses with a clear reason what cannot be trusted.
//!
//! Conventions: world coordinates are RAS+ millimetres (NIfTI/nibabel);
//! voxel data is stored with the first axis (i) fastest.

pub mod affine;
pub mod convert;
pub mod dicom;
pub mod error;
pub mod geometry;
pub mod limits;
pub mod nifti;
pub mod volume;

pub use affine::Affine;
pub use error::{ImagingError, Result};
pub use limits::Limits;
pub use volume::{Metadata, SequenceClass, Volume, VoxelData};
