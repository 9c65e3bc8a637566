//! The embedded edition: everything Gyri needs, on one machine, under one
//! data directory.

pub mod postgres;
pub mod s3;
