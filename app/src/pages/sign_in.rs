//! The sign-in page.

use leptos::prelude::*;

use crate::components::{action_error, ErrorNote};
use crate::AuthActions;

#[component]
pub fn SignIn() -> impl IntoView {
    let action = expect_context::<AuthActions>().sign_in;
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
