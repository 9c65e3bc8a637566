//! The practice's studies: a list with live status (polled every few
//! seconds, no reload), a status filter, a patient search and paging.

use leptos::prelude::*;

use crate::components::{clean_error, RequireSignIn};
use crate::studies_api::{list_studies, StudyRow, STATUSES};

/// A signal that counts up every `seconds` in the browser (nothing on the
/// server), for polling.
pub fn ticker(seconds: u64) -> ReadSignal<u64> {
    let (tick, set_tick) = signal(0u64);
    #[cfg(feature = "hydrate")]
    {
        let handle = set_interval_with_handle(
            move || set_tick.update(|t| *t += 1),
            std::time::Duration::from_secs(seconds),
        )
        .ok();
        on_cleanup(move || {
            if let Some(h) = handle {
                h.clear();
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (set_tick, seconds);
    tick
}

#[component]
pub fn Studies() -> impl IntoView {
    let status = RwSignal::new(String::new());
    let patient = RwSignal::new(String::new());
    let offset = RwSignal::new(0i64);
    let tick = ticker(3);
    let page = Resource::new(
        move || (status.get(), patient.get(), offset.get(), tick.get()),
        |(status, patient, offset, _)| {
            list_studies(
                (!status.is_empty()).then_some(status),
                (!patient.is_empty()).then_some(patient),
                offset,
            )
        },
    );
    view! {
        <RequireSignIn>
            <section class="card wide">
                <h1>"Studies"</h1>
                <div class="row filters">
                    <label>"Status "
                        <select name="status" on:change=move |ev| { status.set(event_target_value(&ev)); offset.set(0); }>
                            <option value="">"All"</option>
                            {STATUSES.iter().map(|(v, l)| view! { <option value=*v>{*l}</option> }).collect_view()}
                        </select>
                    </label>
                    <label>"Patient "
                        <input name="patient" placeholder="ID or name" on:input=move |ev| { patient.set(event_target_value(&ev)); offset.set(0); } />
                    </label>
                </div>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || page.get().map(|r| match r {
                        Err(e) => view! { <p class="error" role="alert">{clean_error(&e)}</p> }.into_any(),
                        Ok(p) if p.rows.is_empty() => view! {
                            <p class="muted">"No studies yet."</p>
                        }.into_any(),
                        Ok(p) => {
                            let (from, to, total, limit) = (p.offset + 1, p.offset + p.rows.len() as i64, p.total, p.limit);
                            view! {
                                <table class="studies">
                                    <thead><tr><th>"Patient"</th><th>"Study date"</th><th>"Sequences"</th><th>"Status"</th><th>"Uploaded"</th></tr></thead>
                                    <tbody>{p.rows.into_iter().map(|s| view! { <StudyLine s /> }).collect_view()}</tbody>
                                </table>
                                <div class="row pager">
                                    <span class="muted">{format!("{from}–{to} of {total}")}</span>
                                    <button class="secondary" disabled=move || offset.get() == 0
                                        on:click=move |_| offset.update(|o| *o = (*o - limit).max(0))>"Newer"</button>
                                    <button class="secondary" disabled=to >= total
                                        on:click=move |_| offset.update(|o| *o += limit)>"Older"</button>
                                </div>
                            }.into_any()
                        }
                    })}
                </Transition>
            </section>
        </RequireSignIn>
    }
}

#[component]
fn StudyLine(s: StudyRow) -> impl IntoView {
    let href = format!("/studies/{}", s.id);
    let patient = match (&s.patient_ref, &s.patient_name) {
        (Some(id), Some(name)) => format!("{name} ({id})"),
        (Some(id), None) => id.clone(),
        _ => "(not read yet)".to_owned(),
    };
    view! {
        <tr data-study=s.id.clone() data-status=s.status.clone()>
            <td><a href=href>{patient}</a></td>
            <td>{s.study_date.clone().unwrap_or_default()}</td>
            <td>{s.sequences.clone()}</td>
            <td>
                <span class=format!("status status-{}", s.status)>{s.status_label.clone()}</span>
                {s.error.clone().map(|e| view! { <div class="muted small">{e}</div> })}
            </td>
            <td>{s.uploaded.clone()}</td>
        </tr>
    }
}
