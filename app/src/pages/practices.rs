//! Platform admins: the practices, creating and suspending them, and
//! inviting a practice's first admin.

use leptos::prelude::*;

use crate::api::{
    list_practices, CreatePractice, InvitePracticeAdmin, PracticeRow, SetPracticeActive,
};
use crate::components::{action_error, clean_error, ErrorNote, RequireSignIn};

#[component]
pub fn Practices() -> impl IntoView {
    let create = ServerAction::<CreatePractice>::new();
    let set_active = ServerAction::<SetPracticeActive>::new();
    let invite = ServerAction::<InvitePracticeAdmin>::new();
    let practices = Resource::new(
        move || {
            (
                create.version().get(),
                set_active.version().get(),
                invite.version().get(),
            )
        },
        |_| list_practices(),
    );
    // Which practice's invitation form is open (handled in the browser).
    let inviting = RwSignal::new(None::<String>);
    view! {
        <RequireSignIn>
            <section class="card">
                <h1>"Practices"</h1>
                <ActionForm action=create attr:class="row">
                    <input name="name" placeholder="Practice name" required />
                    <select name="programme">
                        <option value="ms">"Multiple sclerosis"</option>
                        <option value="dementia">"Dementia"</option>
                    </select>
                    <button type="submit">"Create practice"</button>
                </ActionForm>
                <ErrorNote error=action_error(create) />
                <ErrorNote error=action_error(set_active) />
                {move || invite.value().get().map(|r| match r {
                    Ok(link) => view! {
                        <div class="invite-link" role="status">
                            "Send this link to " {link.email} ": "
                            <code class="link-value">{link.url}</code>
                        </div>
                    }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{clean_error(&e)}</p> }.into_any(),
                })}
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || practices.get().map(|r| match r {
                        Err(e) => view! { <p class="error" role="alert">{clean_error(&e)}</p> }.into_any(),
                        Ok(list) => view! {
                            <table>
                                <thead><tr><th>"Name"</th><th>"Programme"</th><th>"Follow-up"</th><th>"Users"</th><th>"Status"</th><th></th></tr></thead>
                                <tbody>
                                    {list.into_iter().map(|p| view! { <PracticeLine p set_active invite inviting /> }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                    })}
                </Transition>
            </section>
        </RequireSignIn>
    }
}

#[component]
fn PracticeLine(
    p: PracticeRow,
    set_active: ServerAction<SetPracticeActive>,
    invite: ServerAction<InvitePracticeAdmin>,
    inviting: RwSignal<Option<String>>,
) -> impl IntoView {
    let id = p.id.clone();
    let open_id = p.id.clone();
    let is_open = move || inviting.get().as_deref() == Some(open_id.as_str());
    let toggle_id = p.id.clone();
    let form_id = StoredValue::new(p.id.clone());
    view! {
        <tr data-practice=p.name.clone()>
            <td>{p.name.clone()}</td>
            <td>{p.programme.clone()}</td>
            <td>{p.follow_up_months} " months"</td>
            <td>{p.user_count}</td>
            <td>{if p.active { "active" } else { "suspended" }}</td>
            <td class="actions">
                <ActionForm action=set_active attr:class="inline">
                    <input type="hidden" name="id" value=id />
                    <input type="hidden" name="active" value=(!p.active).to_string() />
                    <button type="submit" class="secondary">{if p.active { "Suspend" } else { "Reactivate" }}</button>
                </ActionForm>
                <button type="button" class="secondary invite-toggle" on:click=move |_| {
                    let id = toggle_id.clone();
                    inviting.update(|open| *open = if open.as_deref() == Some(id.as_str()) { None } else { Some(id) });
                }>"Invite admin"</button>
            </td>
        </tr>
        <Show when=is_open>
            <tr class="invite-row">
                <td colspan="6">
                    <ActionForm action=invite attr:class="row">
                        <input type="hidden" name="practice_id" value=form_id.get_value() />
                        <input type="email" name="email" placeholder="admin@clinic.example" required />
                        <input name="display_name" placeholder="Full name" required />
                        <button type="submit">"Send invitation"</button>
                    </ActionForm>
                </td>
            </tr>
        </Show>
    }
}
