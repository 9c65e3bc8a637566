//! Gyri's web interface: Leptos pages rendered on the server and hydrated in
//! the browser. Server functions (behind feature `ssr`) call the same account
//! rules as the JSON API, in `gyri-store`.

pub mod api;
mod components;
mod pages;
#[cfg(feature = "ssr")]
pub mod ssr;
pub mod studies_api;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

use crate::api::Me;
use crate::components::NavBar;

/// The HTML document around the app (server side only).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="stylesheet" href="/pkg/gyri.css" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The signed-in user, shared by every page.
#[derive(Clone, Copy)]
pub struct CurrentUser(pub Resource<Result<Option<Me>, ServerFnError>>);

/// The actions that change who is signed in; the current user is fetched
/// again whenever one of them completes.
#[derive(Clone, Copy)]
pub struct AuthActions {
    pub sign_in: ServerAction<api::SignIn>,
    pub sign_out: ServerAction<api::SignOut>,
    pub accept: ServerAction<api::AcceptInvitation>,
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let auth = AuthActions {
        sign_in: ServerAction::new(),
        sign_out: ServerAction::new(),
        accept: ServerAction::new(),
    };
    provide_context(auth);
    let me = Resource::new(
        move || {
            (
                auth.sign_in.version().get(),
                auth.sign_out.version().get(),
                auth.accept.version().get(),
            )
        },
        |_| api::current_user(),
    );
    provide_context(CurrentUser(me));
    // Marks the page as hydrated (for people debugging, and for the browser
    // tests). Browser only: the server renders no effects.
    #[cfg(feature = "hydrate")]
    Effect::new(|_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Title text="Gyri" />
        <Router>
            <NavBar />
            <main>
                <Routes fallback=|| view! { <p class="notice">"This page does not exist."</p> }>
                    <Route path=path!("/") view=pages::home::Home />
                    <Route path=path!("/sign-in") view=pages::sign_in::SignIn />
                    <Route path=path!("/invite/:token") view=pages::invite::AcceptInvite />
                    <Route path=path!("/platform/practices") view=pages::practices::Practices />
                    <Route path=path!("/practice/users") view=pages::users::Users />
                    <Route path=path!("/account") view=pages::account::Account />
                    <Route path=path!("/audit") view=pages::audit::Audit />
                    <Route path=path!("/studies") view=pages::studies::Studies />
                    <Route path=path!("/studies/:id") view=pages::study::Study />
                    <Route path=path!("/upload") view=pages::upload::Upload />
                </Routes>
            </main>
        </Router>
    }
}
