//! Training data for the segmentation network, after SynthSeg (Billot et
//! al., Med. Image Anal. 2023): images are synthesised from label maps of
//! real anatomy with randomised contrast, resolution, bias, noise and
//! deformation, so that the network learns shape rather than one scanner's
//! look.
//!
//! Today: the label maps of real anatomy (`anatomy`), random affine and
//! smooth non-linear deformation (`deform`), white-matter lesions
//! (`lesions`) and the contrast part of the generator (`generator`);
//! resolution and atrophy synthesis, crops and the assembled sampler come
//! next.

pub mod anatomy;
pub mod deform;
pub mod generator;
pub mod lesions;
