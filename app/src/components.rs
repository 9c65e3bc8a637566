//! Pieces shared by the pages.

use leptos::prelude::*;

use crate::api::Me;
use crate::{AuthActions, CurrentUser};

#[component]
pub fn NavBar() -> impl IntoView {
    let CurrentUser(me) = expect_context::<CurrentUser>();
    let sign_out = expect_context::<AuthActions>().sign_out;
    view! {
        <header class="nav">
            <a class="brand" href="/">"Gyri"</a>
            <Transition fallback=|| ()>
                {move || {
                    me.get()
                        .and_then(|r| r.ok())
                        .flatten()
                        .map(|me| {
                            view! {
                                <nav>
                                    {links(&me)}
                                    <a href="/account">"Account"</a>
                                </nav>
                                <span class="who">{me.display_name.clone()} " · " {me.role_label.clone()}</span>
                                <ActionForm action=sign_out attr:class="inline">
                                    <button type="submit" class="link">"Sign out"</button>
                                </ActionForm>
                            }
                        })
                }}
            </Transition>
        </header>
    }
}

fn links(me: &Me) -> impl IntoView {
    let platform = me.role == "platform_admin";
    let practice_admin = me.role == "practice_admin";
    let uploader = practice_admin || me.role == "technician";
    view! {
        {(!platform).then(|| view! { <a href="/studies">"Studies"</a> })}
        // A whole page load: the uploader's scripts run on it.
        {uploader.then(|| view! { <a href="/upload" rel="external">"Upload"</a> })}
        {platform.then(|| view! { <a href="/platform/practices">"Practices"</a> })}
        {practice_admin.then(|| view! { <a href="/practice/users">"Users"</a> })}
        {(platform || practice_admin).then(|| view! { <a href="/audit">"Audit"</a> })}
    }
}

/// Shows a server function's error, if any.
#[component]
pub fn ErrorNote(#[prop(into)] error: Signal<Option<String>>) -> impl IntoView {
    move || {
        error
            .get()
            .map(|e| view! { <p class="error" role="alert">{e}</p> })
    }
}

/// The message of an action's latest failure.
pub fn action_error<S>(action: ServerAction<S>) -> Signal<Option<String>>
where
    S: leptos::server_fn::ServerFn<Error = ServerFnError> + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    Signal::derive(move || {
        action
            .value()
            .get()
            .and_then(|r| r.err())
            .map(|e| clean_error(&e))
    })
}

/// A server function error as the user should read it.
pub fn clean_error(e: &ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Content for signed-in users only; a sign-in link otherwise.
#[component]
pub fn RequireSignIn(children: ChildrenFn) -> impl IntoView {
    let CurrentUser(me) = expect_context::<CurrentUser>();
    let children = StoredValue::new(children);
    view! {
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || match me.get() {
                None => None,
                Some(Ok(Some(_))) => Some(children.read_value()().into_any()),
                _ => Some(view! {
                    <p class="notice">"Please " <a href="/sign-in">"sign in"</a> "."</p>
                }.into_any()),
            }}
        </Transition>
    }
}
