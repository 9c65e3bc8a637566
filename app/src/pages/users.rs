//! Practice admins: the practice's users, invitations, roles, deactivation.

use leptos::prelude::*;

use crate::api::{list_users, ChangeRole, InviteUser, SetUserActive, UserRow, PRACTICE_ROLES};
use crate::components::{action_error, clean_error, ErrorNote, RequireSignIn};

#[component]
pub fn Users() -> impl IntoView {
    let invite = ServerAction::<InviteUser>::new();
    let change_role = ServerAction::<ChangeRole>::new();
    let set_active = ServerAction::<SetUserActive>::new();
    let users = Resource::new(
        move || {
            (
                invite.version().get(),
                change_role.version().get(),
                set_active.version().get(),
            )
        },
        |_| list_users(),
    );
    view! {
        <RequireSignIn>
            <section class="card">
                <h1>"Users"</h1>
                <h2>"Invite a user"</h2>
                <ActionForm action=invite attr:class="row">
                    <input type="email" name="email" placeholder="name@clinic.example" required />
                    <input name="display_name" placeholder="Full name" required />
                    <select name="role">
                        {PRACTICE_ROLES.iter().map(|(value, label)| view! { <option value=*value selected=*value == "neurologist">{*label}</option> }).collect_view()}
                    </select>
                    <button type="submit">"Invite"</button>
                </ActionForm>
                {move || invite.value().get().map(|r| match r {
                    Ok(link) => view! {
                        <div class="invite-link" role="status">
                            "Send this link to " {link.email} ": " <code class="link-value">{link.url}</code>
                        </div>
                    }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{clean_error(&e)}</p> }.into_any(),
                })}
                <ErrorNote error=action_error(change_role) />
                <ErrorNote error=action_error(set_active) />
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || users.get().map(|r| match r {
                        Err(e) => view! { <p class="error" role="alert">{clean_error(&e)}</p> }.into_any(),
                        Ok(list) => view! {
                            <table>
                                <thead><tr><th>"Name"</th><th>"E-mail"</th><th>"Role"</th><th>"Status"</th><th></th></tr></thead>
                                <tbody>
                                    {list.into_iter().map(|u| view! { <UserLine u change_role set_active /> }).collect_view()}
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
fn UserLine(
    u: UserRow,
    change_role: ServerAction<ChangeRole>,
    set_active: ServerAction<SetUserActive>,
) -> impl IntoView {
    let deactivated = u.status == "deactivated";
    let role = u.role.clone();
    let role_form_id = u.id.clone();
    let status_form_id = u.id.clone();
    view! {
        <tr data-email=u.email.clone()>
            <td>{u.display_name.clone()}</td>
            <td>{u.email.clone()}</td>
            <td>
                {if u.is_me {
                    view! { <span>{role.clone()} " (you)"</span> }.into_any()
                } else {
                    view! {
                        <ActionForm action=change_role attr:class="inline">
                            <input type="hidden" name="user_id" value=role_form_id />
                            <select name="role">
                                {PRACTICE_ROLES.iter().map(|(value, label)| view! { <option value=*value selected=*value == role.as_str()>{*label}</option> }).collect_view()}
                            </select>
                            <button type="submit" class="secondary">"Change"</button>
                        </ActionForm>
                    }.into_any()
                }}
            </td>
            <td>{u.status.clone()}</td>
            <td>
                {(!u.is_me).then(|| view! {
                    <ActionForm action=set_active attr:class="inline">
                        <input type="hidden" name="user_id" value=status_form_id />
                        <input type="hidden" name="active" value=deactivated.to_string() />
                        <button type="submit" class="secondary">{if deactivated { "Reactivate" } else { "Deactivate" }}</button>
                    </ActionForm>
                })}
            </td>
        </tr>
    }
}
