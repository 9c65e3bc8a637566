use crate::helpers::{spawn_app, Cred};
use reqwest::StatusCode;

#[tokio::test]
async fn health_ready_metrics_and_openapi_answer() {
    let app = spawn_app().await;
    let res = app.get("/healthz", &Cred::None).await;
    assert_eq!(res.status(), StatusCode::OK);

    let ready: serde_json::Value = app.json("/readyz", &Cred::None).await;
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["object_store"], "ok");

    let metrics = app.get("/metrics", &Cred::None).await.text().await.unwrap();
    assert!(metrics.contains("gyri_http_responses_total{class=\"2xx\"}"));
    assert!(metrics.contains("# TYPE gyri_db_connections gauge"));

    let doc = app.json("/api/v1/openapi.json", &Cred::None).await;
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/api/v1/session",
        "/api/v1/practices",
        "/api/v1/users",
        "/api/v1/api-keys",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
}

#[tokio::test]
async fn pages_render_on_the_server() {
    let app = spawn_app().await;
    let res = app.get("/sign-in", &Cred::None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("Sign in to Gyri"));
    assert!(
        html.contains("/pkg/gyri.js"),
        "the page loads the hydration bundle"
    );

    let platform = app.login("admin@gyri.test").await;
    let html = app
        .get("/platform/practices", &platform)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Demo Clinic North"),
        "practices are rendered on the server"
    );
}
