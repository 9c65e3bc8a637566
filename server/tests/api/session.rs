//! Signing in and out, sessions, CSRF, rate limits, passwords, API keys.

use crate::helpers::{spawn_app, Cred, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn sign_in_sets_a_hardened_cookie_and_returns_the_user() {
    let app = spawn_app().await;
    let res = app.sign_in("neuro@north.gyri.test", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(
            cookie.contains(attribute),
            "cookie has {attribute}: {cookie}"
        );
    }
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["role"], "neurologist");
    assert!(body["csrf_token"].as_str().unwrap().len() >= 32);

    let cred = app.login("neuro@north.gyri.test").await;
    let me = app.json("/api/v1/me", &cred).await;
    assert_eq!(me["email"], "neuro@north.gyri.test");
}

#[tokio::test]
async fn wrong_password_or_unknown_account_fails_alike_and_is_audited() {
    let app = spawn_app().await;
    let wrong = app
        .sign_in("neuro@north.gyri.test", "not-the-password")
        .await;
    let unknown = app.sign_in("nobody@north.gyri.test", PASSWORD).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let a: Value = wrong.json().await.unwrap();
    let b: Value = unknown.json().await.unwrap();
    assert_eq!(a, b, "the response does not tell which accounts exist");

    let admin = app.login("admin@north.gyri.test").await;
    let audit = app.json("/api/v1/audit", &admin).await;
    assert!(audit
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "sign_in.failed" && e["actor_email"] == "neuro@north.gyri.test"));
}

#[tokio::test]
async fn repeated_failures_lock_the_account_for_a_while() {
    let app = spawn_app().await;
    for _ in 0..5 {
        let res = app.sign_in("tech@north.gyri.test", "wrong-password!").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    // Even the right password is refused now.
    let res = app.sign_in("tech@north.gyri.test", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // Other accounts are not affected.
    let res = app.sign_in("neuro@north.gyri.test", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn many_failures_from_one_address_are_limited() {
    let app = spawn_app().await;
    for i in 0..50 {
        let res = app
            .sign_in(&format!("guess{i}@north.gyri.test"), "guess-password")
            .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = app.sign_in("neuro@north.gyri.test", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let app = spawn_app().await;
    let cred = app.login("tech@south.gyri.test").await;
    let res = app
        .request(Method::DELETE, "/api/v1/session", &cred, None)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        app.get("/api/v1/me", &cred).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let app = spawn_app().await;
    let cred = app.login("tech@south.gyri.test").await;
    assert_eq!(app.get("/api/v1/me", &cred).await.status(), StatusCode::OK);
    sqlx::query("UPDATE sessions SET expires_at = now() - interval '1 second'")
        .execute(&app.owner().await)
        .await
        .unwrap();
    assert_eq!(
        app.get("/api/v1/me", &cred).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn cookie_calls_that_change_state_need_the_csrf_token() {
    let app = spawn_app().await;
    let Cred::Session { cookie, csrf } = app.login("admin@gyri.test").await else {
        unreachable!()
    };
    let body = json!({ "name": "Forged Clinic" });
    let url = format!("{}/api/v1/practices", app.base);
    let without = app
        .http
        .post(&url)
        .header("cookie", &cookie)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), StatusCode::FORBIDDEN);
    let wrong = app
        .http
        .post(&url)
        .header("cookie", &cookie)
        .header("x-csrf-token", "nope")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    // A page's server function called from another site is refused too.
    let cred = Cred::Session {
        cookie: cookie.clone(),
        csrf: csrf.clone(),
    };
    let page = app
        .get("/platform/practices", &cred)
        .await
        .text()
        .await
        .unwrap();
    let start = page.find("/fn/create_practice").expect("the create form");
    let end = start + page[start..].find('"').unwrap();
    let cross = app
        .http
        .post(format!("{}{}", app.base, &page[start..end]))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .form(&[("name", "Forged Clinic"), ("programme", "ms")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);

    let cred = Cred::Session { cookie, csrf };
    let names: Vec<String> = app
        .json("/api/v1/practices", &cred)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !names.contains(&"Forged Clinic".to_owned()),
        "nothing was created"
    );
    let ok = app.post("/api/v1/practices", &cred, body).await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_other_sessions() {
    let app = spawn_app().await;
    let first = app.login("neuro@south.gyri.test").await;
    let second = app.login("neuro@south.gyri.test").await;
    let change =
        |current: &str, new: &str| json!({ "current_password": current, "new_password": new });
    let res = app
        .request(
            Method::PUT,
            "/api/v1/me/password",
            &first,
            Some(change("wrong-one-123", "brand-new-password-1")),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .request(
            Method::PUT,
            "/api/v1/me/password",
            &first,
            Some(change(PASSWORD, "short")),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .request(
            Method::PUT,
            "/api/v1/me/password",
            &first,
            Some(change(PASSWORD, "brand-new-password-1")),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    assert_eq!(app.get("/api/v1/me", &first).await.status(), StatusCode::OK);
    assert_eq!(
        app.get("/api/v1/me", &second).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.sign_in("neuro@south.gyri.test", PASSWORD)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    app.login_with("neuro@south.gyri.test", "brand-new-password-1")
        .await;
}

#[tokio::test]
async fn api_keys_work_without_csrf_are_stored_hashed_and_can_be_revoked() {
    let app = spawn_app().await;
    let session = app.login("admin@north.gyri.test").await;
    let key = app.api_key(&session).await;
    assert!(key.starts_with("gyri_"));
    let bearer = Cred::Key(key.clone());

    let me = app.json("/api/v1/me", &bearer).await;
    assert_eq!(me["email"], "admin@north.gyri.test");
    // State-changing calls need no CSRF token with a key.
    let res = app
        .post("/api/v1/users", &bearer, json!({ "email": "script@north.gyri.test", "display_name": "Script", "role": "technician" }))
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    let stored: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT key_hash FROM api_keys")
        .fetch_all(&app.owner().await)
        .await
        .unwrap();
    assert!(stored
        .iter()
        .all(|(h,)| h.len() == 32 && h.as_slice() != key.as_bytes()));

    let keys = app.json("/api/v1/api-keys", &session).await;
    let id = keys[0]["id"].as_str().unwrap().to_owned();
    assert!(keys[0].get("key").is_none(), "the key is never listed");
    let res = app
        .request(
            Method::DELETE,
            &format!("/api/v1/api-keys/{id}"),
            &session,
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/me", &bearer).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let res = app
        .get("/api/v1/me", &Cred::Key("gyri_made_up".into()))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}
