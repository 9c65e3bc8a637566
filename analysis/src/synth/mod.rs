//! Training data for the segmentation network, after SynthSeg (Billot et
//! al., Med. Image Anal. 2023): images are synthesised from label maps of
//! real anatomy with randomised contrast, resolution, bias, noise and
//! deformation, so that the network learns shape rather than one scanner's
//! look.
//!
//! Today: the label maps of real anatomy (`anatomy`), random affine and
//! smooth non-linear deformation (`deform`), white-matter lesions
//! (`lesions`), the contrasts with blur, thick slices, bias and noise, and
//! the `Sampler` that assembles them with atrophy (`atrophy`) and a random
//! crop (`generator`).

pub mod anatomy;
pub mod atrophy;
mod coarse;
pub mod deform;
pub mod generator;
pub mod lesions;
