//! Practices, invitations and user administration, end to end over HTTP.

use crate::helpers::{spawn_app, Cred, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn a_new_practice_gets_its_admin_who_invites_a_neurologist() {
    let app = spawn_app().await;
    let platform = app.login("admin@gyri.test").await;

    let res = app
        .post(
            "/api/v1/practices",
            &platform,
            json!({ "name": "Lakeside Neurology", "programme": "dementia" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let practice: Value = res.json().await.unwrap();
    assert_eq!(practice["status"], "active");
    assert_eq!(
        practice["follow_up_months"], 18,
        "the programme's default interval"
    );
    let id = practice["id"].as_str().unwrap();

    // Same name again (any case) is refused with a clear message.
    let res = app
        .post(
            "/api/v1/practices",
            &platform,
            json!({ "name": "lakeside neurology" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"], "a practice with this name already exists");

    let res = app
        .post(
            &format!("/api/v1/practices/{id}/invitations"),
            &platform,
            json!({ "email": "Chief@Lakeside.example", "display_name": "Dr Chief" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let issued: Value = res.json().await.unwrap();
    let token = issued["token"].as_str().unwrap().to_owned();
    assert_eq!(issued["user"]["status"], "invited");
    assert_eq!(issued["user"]["email"], "chief@lakeside.example");

    let info = app
        .json(&format!("/api/v1/invitations/{token}"), &Cred::None)
        .await;
    assert_eq!(info["practice_name"], "Lakeside Neurology");
    // Cannot sign in before accepting.
    assert_eq!(
        app.sign_in("chief@lakeside.example", "").await.status(),
        StatusCode::UNAUTHORIZED
    );

    let accept_path = format!("/api/v1/invitations/{token}/accept");
    let accept =
        |password: &str| app.post(&accept_path, &Cred::None, json!({ "password": password }));
    assert_eq!(
        accept("short").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        accept("chief-password-1").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        accept("another-password-2").await.status(),
        StatusCode::CONFLICT,
        "single use"
    );
    assert_eq!(
        app.get(&format!("/api/v1/invitations/{token}"), &Cred::None)
            .await
            .status(),
        StatusCode::CONFLICT
    );

    let chief = app
        .login_with("chief@lakeside.example", "chief-password-1")
        .await;
    let me = app.json("/api/v1/me", &chief).await;
    assert_eq!(me["role"], "practice_admin");
    assert_eq!(me["practice_id"], id);

    let neuro = app
        .invite_and_accept(&chief, "/api/v1/users",
            json!({ "email": "neuro@lakeside.example", "display_name": "Dr Neuro", "role": "neurologist" }))
        .await;
    let me = app.json("/api/v1/me", &neuro).await;
    assert_eq!(me["role"], "neurologist");
    assert_eq!(me["practice_id"], id);

    let users = app.json("/api/v1/users", &chief).await;
    let emails: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails.len(), 2);
    assert!(emails.contains(&"neuro@lakeside.example"));

    let audit = app.json("/api/v1/audit", &chief).await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "practice.created",
        "user.invited",
        "invitation.accepted",
        "sign_in.succeeded",
    ] {
        assert!(
            actions.contains(&action),
            "{action} is in the practice's audit trail: {actions:?}"
        );
    }
}

#[tokio::test]
async fn an_expired_invitation_cannot_be_used() {
    let app = spawn_app().await;
    let admin = app.login("admin@north.gyri.test").await;
    let res = app
        .post("/api/v1/users", &admin, json!({ "email": "late@north.gyri.test", "display_name": "Late", "role": "technician" }))
        .await;
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    sqlx::query("UPDATE invitations SET expires_at = now() - interval '1 minute'")
        .execute(&app.owner().await)
        .await
        .unwrap();
    let res = app
        .post(
            &format!("/api/v1/invitations/{token}/accept"),
            &Cred::None,
            json!({ "password": "late-password-123" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let res = app
        .get("/api/v1/invitations/not-a-token", &Cred::None)
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn practice_admins_change_roles_and_deactivate_users() {
    let app = spawn_app().await;
    let admin = app.login("admin@north.gyri.test").await;
    let tech = app.login("tech@north.gyri.test").await;
    let users = app.json("/api/v1/users", &admin).await;
    let find = |email: &str| {
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let tech_id = find("tech@north.gyri.test");
    let admin_id = find("admin@north.gyri.test");

    let res = app
        .request(
            Method::PATCH,
            &format!("/api/v1/users/{tech_id}"),
            &admin,
            Some(json!({ "role": "neurologist" })),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.json("/api/v1/me", &tech).await["role"], "neurologist");

    let res = app
        .request(
            Method::PATCH,
            &format!("/api/v1/users/{tech_id}"),
            &admin,
            Some(json!({ "role": "platform_admin" })),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "no one becomes platform admin this way"
    );

    let res = app
        .request(
            Method::PATCH,
            &format!("/api/v1/users/{admin_id}"),
            &admin,
            Some(json!({ "role": "technician" })),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::CONFLICT,
        "admins cannot demote themselves"
    );

    let res = app
        .post(
            &format!("/api/v1/users/{tech_id}/deactivate"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "deactivated");
    assert_eq!(
        app.get("/api/v1/me", &tech).await.status(),
        StatusCode::UNAUTHORIZED,
        "sessions end"
    );
    assert_eq!(
        app.sign_in("tech@north.gyri.test", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let res = app
        .post(
            &format!("/api/v1/users/{tech_id}/reactivate"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "active");
    app.login("tech@north.gyri.test").await;

    let audit = app.json("/api/v1/audit", &admin).await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in ["user.role_changed", "user.deactivated", "user.reactivated"] {
        assert!(actions.contains(&action), "{action} audited");
    }
}

#[tokio::test]
async fn a_suspended_practice_is_locked_out_until_reactivated() {
    let app = spawn_app().await;
    let platform = app.login("admin@gyri.test").await;
    let neuro = app.login("neuro@south.gyri.test").await;
    let neuro_key = app.api_key(&neuro).await;
    let south = app.practice_id(&platform, "Demo Clinic South").await;

    let res = app
        .post(
            &format!("/api/v1/practices/{south}/suspend"),
            &platform,
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "suspended");
    assert_eq!(
        app.get("/api/v1/me", &neuro).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v1/me", &Cred::Key(neuro_key.clone()))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.sign_in("admin@south.gyri.test", PASSWORD)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // North is untouched.
    app.login("neuro@north.gyri.test").await;

    let res = app
        .post(
            &format!("/api/v1/practices/{south}/reactivate"),
            &platform,
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    app.login("admin@south.gyri.test").await;
    assert_eq!(
        app.get("/api/v1/me", &Cred::Key(neuro_key)).await.status(),
        StatusCode::OK
    );

    let audit = app.json("/api/v1/audit", &platform).await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"practice.suspended") && actions.contains(&"practice.reactivated"));
}

#[tokio::test]
async fn bootstrap_admin_is_created_only_on_a_database_without_one() {
    use gyri_server::{Application, Settings};
    let app = crate::helpers::spawn_app_with(|s: &mut Settings| {
        s.demo = false;
        s.bootstrap_admin = Some(("ops@example.org".into(), "bootstrap-password-1".into()));
    })
    .await;
    let ops = app
        .login_with("ops@example.org", "bootstrap-password-1")
        .await;
    assert_eq!(app.json("/api/v1/me", &ops).await["role"], "platform_admin");
    assert_eq!(
        app.json("/api/v1/practices", &ops).await,
        json!([]),
        "nothing else is seeded"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::embedded(dir.path().to_path_buf());
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.database_url = Some(app.owner_url.clone());
    settings.embedded_worker = false;
    settings.bootstrap_admin = Some(("other@example.org".into(), "bootstrap-password-2".into()));
    drop(Application::build(settings).await.unwrap());
    assert_eq!(
        app.sign_in("other@example.org", "bootstrap-password-2")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}
