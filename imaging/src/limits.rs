//! Explicit bounds on what Gyri accepts, so that no input can make it use
//! unbounded memory. A brain MRI is typically 256×256×192 voxels (12.6 M);
//! the limits leave room for high-resolution research scans.

/// Bounds checked before any voxel data is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Voxels in one 3D volume (default 256 M: 1 GiB as f32).
    pub max_voxels: usize,
    /// Voxels along one axis (default 4096).
    pub max_dim: usize,
    /// Bytes of one file, compressed or not, and of its decompressed
    /// content (default 2 GiB).
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_voxels: 256 << 20,
            max_dim: 4096,
            max_file_bytes: 2 << 30,
        }
    }
}
