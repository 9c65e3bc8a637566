//! Prometheus metrics in the text exposition format, kept in atomics.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::state::AppState;

#[derive(Debug, Default)]
pub struct Metrics {
    /// Responses by status class 1xx..5xx.
    responses: [AtomicU64; 5],
    /// Total seconds spent answering, in microseconds.
    duration_us: AtomicU64,
}

pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(req).await;
    let class = (response.status().as_u16() / 100).clamp(1, 5) as usize - 1;
    state.metrics.responses[class].fetch_add(1, Ordering::Relaxed);
    state
        .metrics
        .duration_us
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    response
}

pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let m = &state.metrics;
    let mut out = String::new();
    out.push_str("# HELP gyri_http_responses_total HTTP responses by status class.\n");
    out.push_str("# TYPE gyri_http_responses_total counter\n");
    for (i, counter) in m.responses.iter().enumerate() {
        let _ = writeln!(
            out,
            "gyri_http_responses_total{{class=\"{}xx\"}} {}",
            i + 1,
            counter.load(Ordering::Relaxed)
        );
    }
    out.push_str("# HELP gyri_http_request_seconds_total Time spent answering requests.\n");
    out.push_str("# TYPE gyri_http_request_seconds_total counter\n");
    let _ = writeln!(
        out,
        "gyri_http_request_seconds_total {}",
        m.duration_us.load(Ordering::Relaxed) as f64 / 1e6
    );
    let pool = state.db.pool();
    out.push_str("# HELP gyri_db_connections Open database connections by state.\n");
    out.push_str("# TYPE gyri_db_connections gauge\n");
    let _ = writeln!(
        out,
        "gyri_db_connections{{state=\"idle\"}} {}",
        pool.num_idle()
    );
    let _ = writeln!(
        out,
        "gyri_db_connections{{state=\"busy\"}} {}",
        (pool.size() as usize).saturating_sub(pool.num_idle())
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
