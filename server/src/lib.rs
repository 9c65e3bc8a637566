//! `gyri-server`: the HTTP face of Gyri. It serves the Leptos pages, the JSON
//! API under `/api/v1`, health and metrics, and in the embedded edition runs
//! PostgreSQL, an S3 endpoint and the worker alongside.

pub mod api;
pub mod auth;
pub mod config;
pub mod embedded;
pub mod error;
pub mod health;
pub mod metrics;
pub mod startup;
pub mod state;
pub mod tus;

pub use config::{ExternalS3, Settings};
pub use startup::Application;
