//! Server functions behind the pages, and the data they exchange. On the
//! server they call `gyri-store` as the signed-in user; in the browser they
//! are HTTP calls.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use crate::ssr::{actor, client_ip, fail, maybe_actor, server_context};

/// The signed-in user as the pages see them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Me {
    pub display_name: String,
    pub email: String,
    /// `platform_admin`, `practice_admin`, `neurologist` or `technician`.
    pub role: String,
    pub role_label: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PracticeRow {
    pub id: String,
    pub name: String,
    pub active: bool,
    pub programme: String,
    pub follow_up_months: i32,
    pub user_count: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub role: String,
    pub status: String,
    pub is_me: bool,
}

/// An invitation just issued: the link to pass on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InviteLink {
    pub email: String,
    pub url: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InviteInfo {
    pub email: String,
    pub display_name: String,
    pub practice_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRow {
    pub at: String,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
}

/// The role choices a practice admin has.
pub const PRACTICE_ROLES: [(&str, &str); 3] = [
    ("practice_admin", "Practice admin"),
    ("neurologist", "Neurologist"),
    ("technician", "Technician"),
];

#[server(prefix = "/fn")]
pub async fn current_user() -> Result<Option<Me>, ServerFnError> {
    Ok(maybe_actor().await?.map(|a| Me {
        display_name: a.display_name.clone(),
        email: a.email.clone(),
        role: a.role.as_str().to_owned(),
        role_label: a.role.label().to_owned(),
    }))
}

#[server(prefix = "/fn")]
pub async fn sign_in(email: String, password: String) -> Result<(), ServerFnError> {
    let ctx = server_context()?;
    let headers: axum::http::HeaderMap = leptos_axum::extract().await?;
    let agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let session = gyri_store::auth::sign_in(
        &ctx.db,
        &email,
        &password,
        client_ip().await,
        agent,
        ctx.limits,
        ctx.session_ttl,
    )
    .await
    .map_err(fail)?;
    crate::ssr::set_session_cookie(&ctx, &session.token);
    leptos_axum::redirect("/");
    Ok(())
}

#[server(prefix = "/fn")]
pub async fn sign_out() -> Result<(), ServerFnError> {
    let ctx = server_context()?;
    if let Some(actor) = maybe_actor().await? {
        gyri_store::auth::sign_out(&ctx.db, &actor, client_ip().await)
            .await
            .map_err(fail)?;
    }
    crate::ssr::clear_session_cookie(&ctx);
    leptos_axum::redirect("/sign-in");
    Ok(())
}

#[server(prefix = "/fn")]
pub async fn list_practices() -> Result<Vec<PracticeRow>, ServerFnError> {
    let (ctx, actor) = (server_context()?, actor().await?);
    let practices = gyri_store::practices::list(&ctx.db, &actor)
        .await
        .map_err(fail)?;
    Ok(practices.into_iter().map(practice_row).collect())
}

#[cfg(feature = "ssr")]
fn practice_row(p: gyri_store::practices::Practice) -> PracticeRow {
    PracticeRow {
        id: p.id.to_string(),
        name: p.name,
        active: p.status == gyri_store::PracticeStatus::Active,
        programme: match p.programme {
            gyri_store::Programme::Ms => "MS".into(),
            gyri_store::Programme::Dementia => "Dementia".into(),
        },
        follow_up_months: p.follow_up_months,
        user_count: p.user_count,
    }
}

#[server(prefix = "/fn")]
pub async fn create_practice(name: String, programme: String) -> Result<(), ServerFnError> {
    let (ctx, actor) = (server_context()?, actor().await?);
    let programme = match programme.as_str() {
        "dementia" => gyri_store::Programme::Dementia,
        _ => gyri_store::Programme::Ms,
    };
    gyri_store::practices::create(
        &ctx.db,
        &actor,
        gyri_store::practices::NewPractice {
            name,
            programme,
            follow_up_months: None,
        },
        client_ip().await,
    )
    .await
    .map_err(fail)?;
    Ok(())
}

#[server(prefix = "/fn")]
pub async fn set_practice_active(id: String, active: bool) -> Result<(), ServerFnError> {
    let (ctx, actor) = (server_context()?, actor().await?);
    let id = id
        .parse()
        .map_err(|_| ServerFnError::new("practice not found"))?;
    let status = if active {
        gyri_store::PracticeStatus::Active
    } else {
        gyri_store::PracticeStatus::Suspended
    };
    gyri_store::practices::set_status(&ctx.db, &actor, id, status, client_ip().await)
        .await
        .map_err(fail)?;
    Ok(())
}

#[server(prefix = "/fn")]
pub async fn invite_practice_admin(
    practice_id: String,
    email: String,
    display_name: String,
) -> Result<InviteLink, ServerFnError> {
    let (ctx, actor) = (server_context()?, actor().await?);
    let practice = practice_id
        .parse()
        .map_err(|_| ServerFnError::new("practice not found"))?;
    let issued = gyri_store::users::invite(
        &ctx.db,
        &actor,
        practice,
        gyri_store::users::NewInvitation {
            email,
            display_name,
            role: gyri_store::Role::PracticeAdmin,
        },
        client_ip().await,
    )
    .await
    .map_err(fail)?;
    Ok(InviteLink {
        email: issued.user.email,
        url: crate::ssr::invite_url(&issued.token).await,
    })
}

#[server(prefix = "/fn")]
pub async fn list_users() -> Result<Vec<UserRow>, ServerFnError> {
    let (ctx, actor) = (server_context()?, actor().await?);
    let users = gyri_store::users::list(&ctx.db, &actor)
        .await
        .map_err(fail)?;
    Ok(users
        .into_iter()
        .map(|u| UserRow {
            is_me: u.id == actor.user_id,
            id: u.id.to_string(),
            email: u.email,
            display_name: u.display_name,
            role: u.role.as_str().to_owned(),
            status: format!("{:?}", u.status).to_lowercase(),
        })
        .collect())
}

#[server(prefix = "/fn")]
pub async fn invite_user(
    email: String,
    display_name: String,
    role: String,
) -> Result<InviteLink, ServerFnError> {
    let (ctx, actor) = (server_context()?, actor().await?);
    let role = gyri_store::Role::parse(&role).ok_or_else(|| ServerFnError::new("unknown role"))?;
    let practice = actor
        .practice_id
        .ok_or_else(|| ServerFnError::new("you are not allowed to do this"))?;
    let issued = gyri_store::users::invite(
        &ctx.db,
        &actor,
        practice,
        gyri_store::users::NewInvitation {
            email,
            display_name,
            role,
        },
        client_ip().await,
    )
    .await
    .map_err(fail)?;
    Ok(InviteLink {
        email: issued.user.email,
        url: crate::ssr::invite_url(&issued.token).await,
    })
}

#[server(prefix = "/fn")]
pub async fn change_role(user_id: String, role: String) -> Result<(), ServerFnError> {
    let (ctx, actor) = (server_context()?, actor().await?);
    let role = gyri_store::Role::parse(&role).ok_or_else(|| ServerFnError::new("unknown role"))?;
    let id = user_id
        .parse()
        .map_err(|_| ServerFnError::new("user not found"))?;
    gyri_store::users::set_role(&ctx.db, &actor, id, role, client_ip().await)
        .await
        .map_err(fail)?;
    Ok(())
}

#[server(prefix = "/fn")]
pub async fn set_user_active(user_id: String, active: bool) -> Result<(), ServerFnError> {
    let (ctx, actor) = (server_context()?, actor().await?);
    let id = user_id
        .parse()
        .map_err(|_| ServerFnError::new("user not found"))?;
    gyri_store::users::set_active(&ctx.db, &actor, id, active, client_ip().await)
        .await
        .map_err(fail)?;
    Ok(())
}

#[server(prefix = "/fn")]
pub async fn invitation_info(token: String) -> Result<InviteInfo, ServerFnError> {
    let ctx = server_context()?;
    let info = gyri_store::invitations::lookup(&ctx.db, &token)
        .await
        .map_err(fail)?;
    Ok(InviteInfo {
        email: info.email,
        display_name: info.display_name,
        practice_name: info.practice_name,
    })
}

/// Sets the password of an invited account and signs its user in.
#[server(prefix = "/fn")]
pub async fn accept_invitation(
    token: String,
    password: String,
    confirm: String,
) -> Result<(), ServerFnError> {
    if password != confirm {
        return Err(ServerFnError::new("the two passwords differ"));
    }
    let ctx = server_context()?;
    let ip = client_ip().await;
    let email = gyri_store::invitations::accept(&ctx.db, &token, &password, ip.clone())
        .await
        .map_err(fail)?;
    let session = gyri_store::auth::sign_in(
        &ctx.db,
        &email,
        &password,
        ip,
        None,
        ctx.limits,
        ctx.session_ttl,
    )
    .await
    .map_err(fail)?;
    crate::ssr::set_session_cookie(&ctx, &session.token);
    leptos_axum::redirect("/");
    Ok(())
}

#[server(prefix = "/fn")]
pub async fn change_password(
    current: String,
    new: String,
    confirm: String,
) -> Result<(), ServerFnError> {
    if new != confirm {
        return Err(ServerFnError::new("the two new passwords differ"));
    }
    let (ctx, actor) = (server_context()?, actor().await?);
    gyri_store::auth::change_password(&ctx.db, &actor, &current, &new, client_ip().await)
        .await
        .map_err(fail)?;
    Ok(())
}

#[server(prefix = "/fn")]
pub async fn list_api_keys() -> Result<Vec<KeyRow>, ServerFnError> {
    let (ctx, actor) = (server_context()?, actor().await?);
    let keys = gyri_store::api_keys::list(&ctx.db, &actor)
        .await
        .map_err(fail)?;
    Ok(keys
        .into_iter()
        .map(|k| KeyRow {
            id: k.id.to_string(),
            name: k.name,
            prefix: k.prefix,
            created_at: crate::ssr::format_time(k.created_at),
            last_used_at: k.last_used_at.map(crate::ssr::format_time),
        })
        .collect())
}

/// Creates a key and returns it; it is shown this once.
#[server(prefix = "/fn")]
pub async fn create_api_key(name: String) -> Result<String, ServerFnError> {
    let (ctx, actor) = (server_context()?, actor().await?);
    let created = gyri_store::api_keys::create(
        &ctx.db,
        &actor,
        gyri_store::api_keys::NewApiKey { name },
        client_ip().await,
    )
    .await
    .map_err(fail)?;
    Ok(created.key)
}

#[server(prefix = "/fn")]
pub async fn revoke_api_key(id: String) -> Result<(), ServerFnError> {
    let (ctx, actor) = (server_context()?, actor().await?);
    let id = id
        .parse()
        .map_err(|_| ServerFnError::new("API key not found"))?;
    gyri_store::api_keys::revoke(&ctx.db, &actor, id, client_ip().await)
        .await
        .map_err(fail)?;
    Ok(())
}

#[server(prefix = "/fn")]
pub async fn audit_log() -> Result<Vec<AuditRow>, ServerFnError> {
    let (ctx, actor) = (server_context()?, actor().await?);
    let events = gyri_store::audit::list(&ctx.db, &actor, 200)
        .await
        .map_err(fail)?;
    Ok(events
        .into_iter()
        .map(|e| AuditRow {
            at: crate::ssr::format_time(e.at),
            actor: e.actor_email,
            action: e.action,
            target: e.target_type.map(|t| match e.target_id {
                Some(id) => format!("{t} {}", &id.to_string()[..8]),
                None => t,
            }),
            ip: e.ip,
        })
        .collect())
}
