//! What can go wrong reading or transforming a volume, in words a clinic
//! user can act on.

use thiserror::Error;

pub type Result<T> = std::result::Result<T, ImagingError>;

#[derive(Debug, Error)]
pub enum ImagingError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("this is not a NIfTI file: {0}")]
    NotNifti(String),
    #[error("the file ends early: {0} (was the upload interrupted?)")]
    Truncated(String),
    #[error("the image header is not valid: {0}")]
    BadHeader(String),
    #[error("this image is too large: {0}")]
    TooLarge(String),
    #[error("this kind of image is not supported: {0}")]
    Unsupported(String),
    #[error("the geometry is not usable: {0}")]
    Geometry(String),
}

impl ImagingError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ImagingError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
