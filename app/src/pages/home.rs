//! The start page: what the signed-in user can do.

use leptos::prelude::*;

use crate::components::RequireSignIn;
use crate::CurrentUser;

#[component]
pub fn Home() -> impl IntoView {
    let CurrentUser(me) = expect_context::<CurrentUser>();
    view! {
        <RequireSignIn>
            {move || me.get().and_then(|r| r.ok()).flatten().map(|me| {
                let tasks = match me.role.as_str() {
                    "platform_admin" => view! {
                        <li><a href="/platform/practices">"Manage practices"</a></li>
                        <li><a href="/audit">"Read the audit trail"</a></li>
                    }.into_any(),
                    "practice_admin" => view! {
                        <li><a href="/upload" rel="external">"Upload a study"</a></li>
                        <li><a href="/studies">"Your practice's studies"</a></li>
                        <li><a href="/practice/users">"Manage your practice's users"</a></li>
                        <li><a href="/audit">"Read your practice's audit trail"</a></li>
                    }.into_any(),
                    "technician" => view! {
                        <li><a href="/upload" rel="external">"Upload a study"</a></li>
                        <li><a href="/studies">"Your practice's studies"</a></li>
                    }.into_any(),
                    _ => view! {
                        <li><a href="/studies">"Your practice's studies and their measurements"</a></li>
                    }.into_any(),
                };
                view! {
                    <section class="card">
                        <h1>"Welcome, " {me.display_name.clone()}</h1>
                        <p class="muted">{me.email.clone()} " · " {me.role_label.clone()}</p>
                        <ul class="tasks">{tasks}<li><a href="/account">"Your account and API keys"</a></li></ul>
                    </section>
                }
            })}
        </RequireSignIn>
    }
}
