//! The sign-in page.

use leptos::prelude::*;

use crate::api::SignIn as SignInFn;
use crate::components::{action_error, ErrorNote};

#[component]
pub fn SignIn() -> impl IntoView {
    let action = ServerAction::<SignInFn>::new();
    view! {
        <section class="card narrow">
            <h1>"Sign in to Gyri"</h1>
            <ActionForm action>
                <label>"E-mail" <input type="email" name="email" autocomplete="username" required /></label>
                <label>"Password" <input type="password" name="password" autocomplete="current-password" required /></label>
                <button type="submit" disabled=move || action.pending().get()>"Sign in"</button>
            </ActionForm>
            <ErrorNote error=action_error(action) />
        </section>
    }
}
