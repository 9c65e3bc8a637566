//! Uploading a study: Uppy's Dashboard with its tus plugin (npm `uppy`,
//! served from /pkg), set up by /pkg/upload.js once the page is hydrated.
//! The page is loaded whole (links to it are external to the router) so
//! the scripts run.

use leptos::prelude::*;

use crate::components::{clean_error, RequireSignIn};
use crate::studies_api::upload_config;

#[component]
pub fn Upload() -> impl IntoView {
    let config = Resource::new(|| (), |_| upload_config());
    view! {
        <link rel="stylesheet" href="/pkg/uppy.min.css" />
        <script type="module" src="/pkg/upload.js"></script>
        <RequireSignIn>
            <section class="card wide">
                <h1>"Upload a study"</h1>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || config.get().map(|r| match r {
                        Err(e) => view! { <p class="error" role="alert">{clean_error(&e)}</p> }.into_any(),
                        Ok(c) if !c.may_upload => view! {
                            <p class="notice">"Studies are uploaded by technicians and practice admins."</p>
                        }.into_any(),
                        Ok(c) => view! {
                            <p class="muted">
                                "Drop a DICOM folder, a zip of one, or NIfTI files (.nii, .nii.gz) — or browse. "
                                "NIfTI files need their sequence (t1 or flair; guessed from the name) and a patient ID below; "
                                "DICOM files name their patient themselves. An interrupted upload resumes where it stopped: "
                                "add the same files again."
                            </p>
                            <label class="patient">"Patient ID (NIfTI) "
                                <input id="patient-ref" name="patient_ref" maxlength="64" placeholder="e.g. MRN-0042" />
                            </label>
                            <div id="uppy" data-csrf=c.csrf_token></div>
                            <p id="upload-status" role="status"></p>
                        }.into_any(),
                    })}
                </Transition>
            </section>
        </RequireSignIn>
    }
}
