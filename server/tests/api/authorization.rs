//! The authorization matrix: every `/api/v1` route × every role × own
//! practice vs another practice, once with session cookies and once with
//! API keys. Each role gets exactly its rights, and nobody in North ever
//! reads or changes South's data.

use crate::helpers::{spawn_app, Cred, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Platform,
    Admin,
    Neuro,
    Tech,
}

const ALL: [Who; 4] = [Who::Platform, Who::Admin, Who::Neuro, Who::Tech];

/// Ids the routes are filled with. "own" is North (the practice of the
/// practice-level actors); "other" is South.
struct Ids {
    north: String,
    south: String,
    /// Targets for user changes: a fresh invitee in each practice.
    north_user: String,
    south_user: String,
    south_key: String,
    scratch: String,
}

struct Case {
    method: Method,
    path: String,
    body: Option<Value>,
    /// Expected status per actor: Platform, Admin, Neuro, Tech.
    expect: [u16; 4],
}

fn case(method: Method, path: String, body: Option<Value>, expect: [u16; 4]) -> Case {
    Case {
        method,
        path,
        body,
        expect,
    }
}

fn cases(ids: &Ids, n: usize) -> Vec<Case> {
    let Ids {
        north,
        south,
        north_user,
        south_user,
        south_key,
        scratch,
    } = ids;
    let invite = |tag: &str| {
        Some(
            json!({ "email": format!("{tag}{n}@matrix.example"), "display_name": "Matrix", "role": "technician" }),
        )
    };
    let admin_invite = |tag: &str| {
        Some(json!({ "email": format!("{tag}{n}@matrix.example"), "display_name": "Matrix" }))
    };
    vec![
        case(Method::GET, "/api/v1/me".into(), None, [200, 200, 200, 200]),
        case(
            Method::GET,
            "/api/v1/practices".into(),
            None,
            [200, 403, 403, 403],
        ),
        case(
            Method::POST,
            "/api/v1/practices".into(),
            Some(json!({ "name": format!("Matrix Clinic {n}") })),
            [200, 403, 403, 403],
        ),
        // Own practice vs other practice.
        case(
            Method::GET,
            format!("/api/v1/practices/{north}"),
            None,
            [200, 200, 200, 200],
        ),
        case(
            Method::GET,
            format!("/api/v1/practices/{south}"),
            None,
            [200, 404, 404, 404],
        ),
        case(
            Method::POST,
            format!("/api/v1/practices/{scratch}/suspend"),
            None,
            [200, 403, 403, 403],
        ),
        case(
            Method::POST,
            format!("/api/v1/practices/{scratch}/reactivate"),
            None,
            [200, 403, 403, 403],
        ),
        case(
            Method::POST,
            format!("/api/v1/practices/{north}/suspend"),
            None,
            [0, 403, 403, 403],
        ),
        case(
            Method::POST,
            format!("/api/v1/practices/{south}/suspend"),
            None,
            [0, 403, 403, 403],
        ),
        case(
            Method::POST,
            format!("/api/v1/practices/{scratch}/invitations"),
            admin_invite("pa"),
            [200, 403, 403, 403],
        ),
        case(
            Method::POST,
            format!("/api/v1/practices/{north}/invitations"),
            admin_invite("na"),
            [200, 200, 403, 403],
        ),
        // (The platform admin's right to invite anywhere is shown on `scratch`;
        // here it would add users to South, which must stay unchanged.)
        case(
            Method::POST,
            format!("/api/v1/practices/{south}/invitations"),
            admin_invite("sa"),
            [0, 403, 403, 403],
        ),
        case(
            Method::GET,
            "/api/v1/practice".into(),
            None,
            [404, 200, 200, 200],
        ),
        case(
            Method::PUT,
            "/api/v1/practice".into(),
            Some(json!({ "programme": "ms", "follow_up_months": 6 })),
            [403, 200, 403, 403],
        ),
        case(
            Method::GET,
            "/api/v1/users".into(),
            None,
            [403, 200, 403, 403],
        ),
        case(
            Method::POST,
            "/api/v1/users".into(),
            invite("u"),
            [403, 200, 403, 403],
        ),
        case(
            Method::PATCH,
            format!("/api/v1/users/{north_user}"),
            Some(json!({ "role": "neurologist" })),
            [403, 200, 403, 403],
        ),
        case(
            Method::PATCH,
            format!("/api/v1/users/{south_user}"),
            Some(json!({ "role": "neurologist" })),
            [403, 404, 403, 403],
        ),
        case(
            Method::POST,
            format!("/api/v1/users/{north_user}/deactivate"),
            None,
            [403, 200, 403, 403],
        ),
        case(
            Method::POST,
            format!("/api/v1/users/{south_user}/deactivate"),
            None,
            [403, 404, 403, 403],
        ),
        case(
            Method::POST,
            format!("/api/v1/users/{north_user}/reactivate"),
            None,
            [403, 200, 403, 403],
        ),
        case(
            Method::POST,
            format!("/api/v1/users/{south_user}/reactivate"),
            None,
            [403, 404, 403, 403],
        ),
        case(
            Method::GET,
            "/api/v1/audit".into(),
            None,
            [200, 200, 403, 403],
        ),
        case(
            Method::GET,
            "/api/v1/api-keys".into(),
            None,
            [200, 200, 200, 200],
        ),
        case(
            Method::DELETE,
            format!("/api/v1/api-keys/{south_key}"),
            None,
            [404, 404, 404, 404],
        ),
    ]
}

async fn sessions(app: &TestApp) -> Vec<(Who, Cred)> {
    vec![
        (Who::Platform, app.login("admin@gyri.test").await),
        (Who::Admin, app.login("admin@north.gyri.test").await),
        (Who::Neuro, app.login("neuro@north.gyri.test").await),
        (Who::Tech, app.login("tech@north.gyri.test").await),
    ]
}

/// South as its own admin sees it: users, practice, audit trail.
async fn south_snapshot(app: &TestApp) -> (Value, Value, usize) {
    let south_admin = app.login("admin@south.gyri.test").await;
    let mut users = app.json("/api/v1/users", &south_admin).await;
    users
        .as_array_mut()
        .unwrap()
        .sort_by_key(|u| u["email"].as_str().unwrap().to_owned());
    let practice = app.json("/api/v1/practice", &south_admin).await;
    let audit = app.json("/api/v1/audit?limit=1000", &south_admin).await;
    let foreign = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["actor_email"]
                .as_str()
                .is_some_and(|a| a.ends_with("@north.gyri.test"))
        })
        .count();
    (users, practice, foreign)
}

#[tokio::test]
async fn every_route_every_role_own_and_other_practice() {
    let app = spawn_app().await;
    let platform = app.login("admin@gyri.test").await;
    let north = app.practice_id(&platform, "Demo Clinic North").await;
    let south = app.practice_id(&platform, "Demo Clinic South").await;
    let scratch = app
        .post(
            "/api/v1/practices",
            &platform,
            json!({ "name": "Scratch Clinic" }),
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let north_admin = app.login("admin@north.gyri.test").await;
    let south_admin = app.login("admin@south.gyri.test").await;
    let invitee = |admin: Cred, email: &'static str| {
        let app = &app;
        async move {
            let res = app
                .post(
                    "/api/v1/users",
                    &admin,
                    json!({ "email": email, "display_name": "Target", "role": "technician" }),
                )
                .await;
            res.json::<Value>().await.unwrap()["user"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let south_key_id = {
        app.api_key(&south_admin).await;
        app.json("/api/v1/api-keys", &south_admin).await[0]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let ids = Ids {
        north_user: invitee(north_admin, "target@north.gyri.test").await,
        south_user: invitee(south_admin, "target@south.gyri.test").await,
        north,
        south,
        south_key: south_key_id,
        scratch,
    };
    let before = south_snapshot(&app).await;

    let mut checked = 0;
    let mut failures = Vec::new();
    for (round, use_keys) in [(0, false), (1, true)] {
        for (i, (who, session)) in sessions(&app).await.into_iter().enumerate() {
            let cred = if use_keys {
                Cred::Key(app.api_key(&session).await)
            } else {
                session
            };
            let n = round * 10 + i;
            // Not signed in at all: every route refuses.
            for c in cases(&ids, 100 + n).into_iter().filter(|_| n == 0) {
                let res = app
                    .request(c.method.clone(), &c.path, &Cred::None, c.body.clone())
                    .await;
                if res.status() != StatusCode::UNAUTHORIZED {
                    failures.push(format!(
                        "anonymous {} {} -> {}",
                        c.method,
                        c.path,
                        res.status()
                    ));
                }
            }
            for c in cases(&ids, n) {
                let expected = c.expect[ALL.iter().position(|w| *w == who).unwrap()];
                if expected == 0 {
                    continue; // would lock out the actors under test; covered elsewhere
                }
                let res = app
                    .request(c.method.clone(), &c.path, &cred, c.body.clone())
                    .await;
                checked += 1;
                if res.status().as_u16() != expected {
                    failures.push(format!(
                        "{who:?} ({}) {} {} -> {} (expected {expected})",
                        if use_keys { "key" } else { "session" },
                        c.method,
                        c.path,
                        res.status()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization matrix failures:\n{}",
        failures.join("\n")
    );
    assert!(checked > 150, "the matrix ran ({checked} checks)");

    // Reads never leaked the other practice.
    let admin = app.login("admin@north.gyri.test").await;
    let users = app.json("/api/v1/users", &admin).await;
    assert!(users
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["practice_id"] == ids.north));
    let audit = app.json("/api/v1/audit?limit=1000", &admin).await;
    assert!(audit
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["practice_id"] == ids.north));

    // And South is exactly as it was.
    let after = south_snapshot(&app).await;
    assert_eq!(before.0, after.0, "South's users are unchanged");
    assert_eq!(before.1, after.1, "South's practice is unchanged");
    assert_eq!(after.2, 0, "no North user acted in South");
}
