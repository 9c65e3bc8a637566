//! The audit trail, for platform and practice admins.

use leptos::prelude::*;

use crate::api::audit_log;
use crate::components::{clean_error, RequireSignIn};

#[component]
pub fn Audit() -> impl IntoView {
    let events = Resource::new(|| (), |_| audit_log());
    view! {
        <RequireSignIn>
            <section class="card">
                <h1>"Audit trail"</h1>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || events.get().map(|r| match r {
                        Err(e) => view! { <p class="error" role="alert">{clean_error(&e)}</p> }.into_any(),
                        Ok(list) => view! {
                            <table>
                                <thead><tr><th>"When"</th><th>"Who"</th><th>"What"</th><th>"Target"</th><th>"From"</th></tr></thead>
                                <tbody>
                                {list.into_iter().map(|e| view! {
                                    <tr><td>{e.at}</td><td>{e.actor.unwrap_or_default()}</td><td>{e.action}</td>
                                        <td>{e.target.unwrap_or_default()}</td><td>{e.ip.unwrap_or_default()}</td></tr>
                                }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                    })}
                </Transition>
            </section>
        </RequireSignIn>
    }
}
