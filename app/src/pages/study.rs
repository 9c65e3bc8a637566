//! One study: the sequences found, the measured volumes (mL and percent of
//! the intracranial volume), lesions, QC warnings and processing times. Its
//! status is polled (without audit entries) until it settles; the study is
//! fetched again, and audited, when the status changes.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::components::{clean_error, RequireSignIn};
use crate::pages::studies::ticker;
use crate::studies_api::{get_study, is_final, study_status, AnalysisView, StudyView};

#[component]
pub fn Study() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let version = RwSignal::new(0u32);
    let study = Resource::new(move || (id(), version.get()), |(id, _)| get_study(id));
    let shown_status = RwSignal::new(String::new());
    let tick = ticker(2);
    let polled = Resource::new(
        move || (id(), tick.get()),
        move |(id, t)| async move {
            // The first fetch of the page tells the status already.
            if t == 0 || is_final(&shown_status.get_untracked()) {
                return None;
            }
            study_status(id).await.ok()
        },
    );
    Effect::new(move |_| {
        if let Some(Ok(s)) = study.get() {
            shown_status.set(s.summary.status.clone());
        }
    });
    Effect::new(move |_| {
        if let Some(Some(status)) = polled.get() {
            if status != shown_status.get_untracked() {
                version.update(|v| *v += 1);
            }
        }
    });
    view! {
        <RequireSignIn>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || study.get().map(|r| match r {
                    Err(e) => view! { <p class="error" role="alert">{clean_error(&e)}</p> }.into_any(),
                    Ok(s) => view! { <StudyBody s /> }.into_any(),
                })}
            </Transition>
        </RequireSignIn>
    }
}

#[component]
fn StudyBody(s: StudyView) -> impl IntoView {
    let sum = &s.summary;
    let patient = match (&sum.patient_ref, &sum.patient_name) {
        (Some(id), Some(name)) => format!("{name} ({id})"),
        (Some(id), None) => id.clone(),
        _ => "patient not read yet".to_owned(),
    };
    view! {
        <section class="card wide" data-study=sum.id.clone() data-status=sum.status.clone()>
            <p><a href="/studies">"← Studies"</a></p>
            <h1>{patient}</h1>
            <p class="muted">
                {sum.study_date.clone().map(|d| format!("Study of {d} · ")).unwrap_or_default()}
                "uploaded " {sum.uploaded.clone()}
            </p>
            <p>"Status: " <span class=format!("status status-{}", sum.status)>{sum.status_label.clone()}</span></p>
            {sum.error.clone().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {(!s.series.is_empty()).then(|| view! {
                <h2>"Sequences"</h2>
                <table class="series">
                    <thead><tr><th>"#"</th><th>"Description"</th><th>"Class"</th><th>"Used as"</th><th>"Files"</th><th>"Grid"</th><th>"Voxels"</th><th>"Notes"</th></tr></thead>
                    <tbody>
                        {s.series.iter().map(|x| view! {
                            <tr>
                                <td>{x.number}</td><td>{x.description.clone()}</td><td>{x.class.clone()}</td>
                                <td>{x.used_as.clone().unwrap_or_else(|| "—".into())}</td><td>{x.files}</td>
                                <td>{x.dims.clone()}</td><td>{x.voxel.clone()}</td>
                                <td class="muted small">{x.note.clone().unwrap_or_default()}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            })}
            {s.analysis.clone().map(|a| view! { <Measurements a /> })}
        </section>
    }
}

#[component]
fn Measurements(a: AnalysisView) -> impl IntoView {
    view! {
        <h2>"Volumes"</h2>
        <table class="volumes">
            <thead><tr><th>"Structure"</th><th>"mL"</th><th>"% of intracranial"</th></tr></thead>
            <tbody>
                {a.volumes.iter().map(|v| view! {
                    <tr data-volume=v.label.clone()>
                        <td>{v.label.clone()}</td>
                        <td class="num">{format!("{:.1}", v.ml)}</td>
                        <td class="num">{format!("{:.1}", v.percent_icv)}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
        <h2>"Lesions"</h2>
        {match (a.lesion_count, a.lesion_ml) {
            (Some(n), Some(ml)) => view! {
                <p class="lesion-summary">{format!("{n} lesion{} · {ml:.2} mL", if n == 1 { "" } else { "s" })}</p>
            }.into_any(),
            _ => view! { <p class="muted">"Not measured: the study has no FLAIR."</p> }.into_any(),
        }}
        {(!a.lesions.is_empty()).then(|| view! {
            <table class="lesions">
                <thead><tr><th>"#"</th><th>"Volume (mL)"</th><th>"Centre (RAS mm)"</th></tr></thead>
                <tbody>
                    {a.lesions.iter().map(|l| view! {
                        <tr><td>{l.number}</td><td class="num">{format!("{:.3}", l.volume_ml)}</td><td>{l.centroid.clone()}</td></tr>
                    }).collect_view()}
                </tbody>
            </table>
        })}
        {(!a.warnings.is_empty()).then(|| view! {
            <h2>"Quality warnings"</h2>
            <ul class="warnings">{a.warnings.iter().map(|w| view! { <li>{w.clone()}</li> }).collect_view()}</ul>
        })}
        <h2>"Processing"</h2>
        <p class="muted">{format!("{} · measured {}", a.model, a.measured)}</p>
        <table class="timings">
            <tbody>
                {a.timings.iter().map(|(stage, s)| view! {
                    <tr><td>{stage.clone()}</td><td class="num">{format!("{s:.1} s")}</td></tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}
