//! The signed-in user's own account: password and personal API keys.

use leptos::prelude::*;

use crate::api::{list_api_keys, ChangePassword, CreateApiKey, RevokeApiKey};
use crate::components::{action_error, clean_error, ErrorNote, RequireSignIn};

#[component]
pub fn Account() -> impl IntoView {
    let change = ServerAction::<ChangePassword>::new();
    let create = ServerAction::<CreateApiKey>::new();
    let revoke = ServerAction::<RevokeApiKey>::new();
    let keys = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| list_api_keys(),
    );
    view! {
        <RequireSignIn>
            <section class="card">
                <h1>"Your account"</h1>
                <h2>"Change password"</h2>
                <ActionForm action=change attr:class="stack">
                    <label>"Current password" <input type="password" name="current" autocomplete="current-password" required /></label>
                    <label>"New password" <input type="password" name="new" autocomplete="new-password" minlength="12" required /></label>
                    <label>"Repeat new password" <input type="password" name="confirm" autocomplete="new-password" minlength="12" required /></label>
                    <button type="submit">"Change password"</button>
                </ActionForm>
                <ErrorNote error=action_error(change) />
                {move || matches!(change.value().get(), Some(Ok(()))).then(|| view! { <p class="ok" role="status">"Password changed. Your other sessions have been signed out."</p> })}

                <h2>"API keys"</h2>
                <p class="muted">"For scripts: send " <code>"Authorization: Bearer <key>"</code> " to " <code>"/api/v1"</code> "."</p>
                <ActionForm action=create attr:class="row">
                    <input name="name" placeholder="What the key is for" required />
                    <button type="submit">"Create key"</button>
                </ActionForm>
                {move || create.value().get().map(|r| match r {
                    Ok(key) => view! { <div class="invite-link" role="status">"Your new key (shown only now): " <code class="link-value">{key}</code></div> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{clean_error(&e)}</p> }.into_any(),
                })}
                <ErrorNote error=action_error(revoke) />
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || keys.get().map(|r| match r {
                        Err(e) => view! { <p class="error">{clean_error(&e)}</p> }.into_any(),
                        Ok(list) if list.is_empty() => view! { <p class="muted">"No API keys."</p> }.into_any(),
                        Ok(list) => view! {
                            <table>
                                <thead><tr><th>"Name"</th><th>"Key"</th><th>"Created"</th><th>"Last used"</th><th></th></tr></thead>
                                <tbody>
                                {list.into_iter().map(|k| view! {
                                    <tr>
                                        <td>{k.name}</td><td><code>{k.prefix} "…"</code></td><td>{k.created_at}</td>
                                        <td>{k.last_used_at.unwrap_or_else(|| "never".into())}</td>
                                        <td>
                                            <ActionForm action=revoke attr:class="inline">
                                                <input type="hidden" name="id" value=k.id />
                                                <button type="submit" class="secondary">"Revoke"</button>
                                            </ActionForm>
                                        </td>
                                    </tr>
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
