//! What every request handler can reach.

use axum::extract::FromRef;
use gyri_app::ssr::ServerContext;
use gyri_store::objects::ObjectStore;
use gyri_store::Db;
use leptos::config::LeptosOptions;
use std::sync::Arc;

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub objects: ObjectStore,
    pub context: ServerContext,
    pub leptos: LeptosOptions,
    pub metrics: Arc<Metrics>,
    pub upload_limits: gyri_store::uploads::UploadLimits,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}
