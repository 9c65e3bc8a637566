//! Gyri's analysis: 3D network operations on candle, the networks built from
//! them, and inference over whole volumes. Knows nothing of HTTP, SQL or S3.

pub mod alloc;
pub mod hdbet;
mod index3;
pub mod inference;
pub mod layers;
pub mod measure;
pub mod ops;
pub mod segment;
pub mod synth;
pub mod torch_file;
pub mod train;
pub mod unet;
