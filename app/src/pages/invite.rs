//! Accepting an invitation: choose a password, then you are signed in.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::api::invitation_info;
use crate::components::{action_error, clean_error, ErrorNote};
use crate::AuthActions;

#[component]
pub fn AcceptInvite() -> impl IntoView {
    let params = use_params_map();
    let token = move || params.read().get("token").unwrap_or_default();
    let info = Resource::new(token, invitation_info);
    let accept = expect_context::<AuthActions>().accept;
    view! {
        <section class="card narrow">
            <h1>"Join Gyri"</h1>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || info.get().map(|r| match r {
                    Err(e) => view! { <p class="error" role="alert">{clean_error(&e)}</p> }.into_any(),
                    Ok(info) => view! {
                        <p>
                            "Welcome, " <strong>{info.display_name.clone()}</strong> " (" {info.email.clone()} ")"
                            {info.practice_name.clone().map(|p| view! { ", at " <strong>{p}</strong> })}
                            ". Choose a password of at least 12 characters."
                        </p>
                        <ActionForm action=accept>
                            <input type="hidden" name="token" value=token() />
                            <label>"Password" <input type="password" name="password" autocomplete="new-password" minlength="12" required /></label>
                            <label>"Repeat password" <input type="password" name="confirm" autocomplete="new-password" minlength="12" required /></label>
                            <button type="submit">"Set password and sign in"</button>
                        </ActionForm>
                        <ErrorNote error=action_error(accept) />
                    }.into_any(),
                })}
            </Suspense>
        </section>
    }
}
