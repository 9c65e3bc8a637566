//! Study uploads and the tus 1.0 endpoints (core, creation, termination,
//! checksum) at `/api/v1/uploads`.
//!
//! A PATCH streams its body to S3: bytes collect into one part of
//! [`PART_SIZE`] at a time (never more in memory), each full part is
//! uploaded and committed with the running SHA-256 over the bytes in parts.
//! When the body ends short of a part, the rest is kept in a staging object
//! (`…tail-{offset}`) for the next request; a body cut off by the network is
//! treated the same way, so the client resumes from what arrived. With
//! `Upload-Checksum`, nothing is committed until the body's digest matches.
//! The last byte completes the object (or stores it whole when it never
//! filled a part), checks the whole-file `sha256` from the metadata, and
//! records the object.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use gyri_store::uploads::{
    self, NewStudyUpload, NewUpload, Progress, RunningHash, StudyUpload, Upload,
};
use gyri_store::{SequenceClass, StoreError};
use sha2::Digest;
use uuid::Uuid;

use crate::auth::{Auth, Ip};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::tus;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/study-uploads", post(create_study_upload))
        .route("/study-uploads/{id}", get(get_study_upload))
        .route("/study-uploads/{id}/complete", post(complete_study_upload))
        .route("/uploads", post(create).options(options))
        .route(
            "/uploads/{id}",
            axum::routing::head(head)
                .patch(patch)
                .delete(terminate)
                .options(options),
        )
}

fn parse_id(id: &str, what: &'static str) -> ApiResult<Uuid> {
    id.parse()
        .map_err(|_| ApiError::Store(StoreError::NotFound(what)))
}

/// Start a study upload (technicians, practice admins). Send its `id` as
/// the tus metadata `study_upload` of every file, then complete it.
#[utoipa::path(post, path = "/api/v1/study-uploads", tag = "uploads", request_body = NewStudyUpload,
    responses((status = 200, body = StudyUpload), (status = 403)))]
pub async fn create_study_upload(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Ip(ip): Ip,
    body: Option<Json<NewStudyUpload>>,
) -> ApiResult<Json<StudyUpload>> {
    let new = body.map(|Json(b)| b).unwrap_or_default();
    Ok(Json(
        uploads::create_study_upload(&s.db, &actor, new, ip).await?,
    ))
}

/// A study upload with its files and their progress; after completion, the
/// study it became (or, for a study uploaded before, the earlier one).
#[utoipa::path(get, path = "/api/v1/study-uploads/{id}", tag = "uploads",
    params(("id" = String, Path)), responses((status = 200, body = StudyUpload), (status = 404)))]
pub async fn get_study_upload(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<StudyUpload>> {
    let id = parse_id(&id, "study upload")?;
    Ok(Json(uploads::get_study_upload(&s.db, &actor, id).await?))
}

/// Complete a study upload: every file must be complete. The study is
/// created and queued for ingest. Completing twice is harmless.
#[utoipa::path(post, path = "/api/v1/study-uploads/{id}/complete", tag = "uploads",
    params(("id" = String, Path)),
    responses((status = 200, body = StudyUpload), (status = 404),
               (status = 409, description = "files are not completely uploaded")))]
pub async fn complete_study_upload(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Ip(ip): Ip,
    Path(id): Path<String>,
) -> ApiResult<Json<StudyUpload>> {
    let id = parse_id(&id, "study upload")?;
    Ok(Json(
        uploads::complete_study_upload(&s.db, &actor, id, ip).await?,
    ))
}

/// tus responses carry the protocol version.
fn tus_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert("tus-resumable", HeaderValue::from_static(tus::VERSION));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

fn tus_error(e: impl Into<ApiError>) -> Response {
    tus_headers(e.into().into_response())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn check_version(headers: &HeaderMap) -> ApiResult<()> {
    tus::check_version(header(headers, "tus-resumable"))
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// tus discovery.
pub async fn options(State(s): State<AppState>) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert("tus-resumable", HeaderValue::from_static(tus::VERSION));
    h.insert("tus-version", HeaderValue::from_static(tus::VERSION));
    h.insert("tus-extension", HeaderValue::from_static(tus::EXTENSIONS));
    h.insert(
        "tus-checksum-algorithm",
        HeaderValue::from_static(tus::CHECKSUM_ALGORITHMS),
    );
    h.insert(
        "tus-max-size",
        HeaderValue::from(s.upload_limits.max_file_bytes),
    );
    r
}

/// tus creation: `Upload-Length` and `Upload-Metadata` with `filename`,
/// `study_upload`, optionally `sequence` (t1, flair) and `sha256` (hex).
pub async fn create(State(s): State<AppState>, auth: Option<Auth>, headers: HeaderMap) -> Response {
    match create_inner(&s, auth, &headers).await {
        Ok(upload) => {
            let mut r = StatusCode::CREATED.into_response();
            let location = format!("/api/v1/uploads/{}", upload.id);
            r.headers_mut().insert(
                "location",
                HeaderValue::from_str(&location).expect("a UUID path is a valid header"),
            );
            r.headers_mut()
                .insert("upload-offset", HeaderValue::from_static("0"));
            tus_headers(r)
        }
        Err(e) => tus_error(e),
    }
}

async fn create_inner(s: &AppState, auth: Option<Auth>, headers: &HeaderMap) -> ApiResult<Upload> {
    let Auth(actor) = auth.ok_or(ApiError::Unauthenticated)?;
    check_version(headers)?;
    if headers.contains_key("upload-defer-length") {
        return Err(ApiError::BadRequest(
            "Upload-Defer-Length is not supported: send Upload-Length".into(),
        ));
    }
    let length: i64 = header(headers, "upload-length")
        .and_then(|v| v.trim().parse().ok())
        .filter(|n: &i64| *n >= 0)
        .ok_or_else(|| ApiError::BadRequest("Upload-Length (a byte count) is required".into()))?;
    if length == 0 {
        return Err(ApiError::BadRequest("an empty file is not an image".into()));
    }
    let metadata = tus::parse_metadata(header(headers, "upload-metadata").unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let study_upload = metadata
        .get("study_upload")
        .and_then(|v| v.parse::<Uuid>().ok())
        .ok_or_else(|| {
            ApiError::BadRequest(
                "Upload-Metadata needs `study_upload`: the id from POST /api/v1/study-uploads"
                    .into(),
            )
        })?;
    let filename = metadata
        .get("filename")
        .or_else(|| metadata.get("name"))
        .cloned()
        .ok_or_else(|| ApiError::BadRequest("Upload-Metadata needs `filename`".into()))?;
    // A browser may send the folder path (`relativePath`); keep the name.
    let filename = filename
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(&filename)
        .to_owned();
    let sequence = match metadata.get("sequence").map(String::as_str) {
        None | Some("") => None,
        Some(v) => Some(SequenceClass::parse(v).ok_or_else(|| {
            ApiError::BadRequest(format!("sequence {v:?} is not one of t1, flair, other"))
        })?),
    };
    let sha256_expected = match metadata.get("sha256") {
        None => None,
        Some(v) => Some(tus::parse_sha256_hex(v).map_err(|e| ApiError::BadRequest(e.to_string()))?),
    };
    Ok(uploads::create_upload(
        &s.db,
        &actor,
        NewUpload {
            study_upload_id: study_upload,
            filename,
            sequence,
            length,
            sha256_expected,
        },
        s.upload_limits,
    )
    .await?)
}

/// tus HEAD: where to resume.
pub async fn head(
    State(s): State<AppState>,
    auth: Option<Auth>,
    Path(id): Path<String>,
) -> Response {
    let result: ApiResult<Upload> = async {
        let Auth(actor) = auth.ok_or(ApiError::Unauthenticated)?;
        let id = parse_id(&id, "upload")?;
        Ok(uploads::get_upload(&s.db, &actor, id).await?)
    }
    .await;
    match result {
        Ok(u) if u.status == uploads::UploadStatus::Cancelled => {
            tus_error(StoreError::NotFound("upload"))
        }
        Ok(u) => {
            let mut r = StatusCode::OK.into_response();
            let h = r.headers_mut();
            h.insert("upload-offset", HeaderValue::from(u.received));
            h.insert("upload-length", HeaderValue::from(u.length));
            tus_headers(r)
        }
        Err(e) => tus_error(e),
    }
}

/// tus termination: the file leaves its study upload and S3.
pub async fn terminate(
    State(s): State<AppState>,
    auth: Option<Auth>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let result: ApiResult<Upload> = async {
        let Auth(actor) = auth.ok_or(ApiError::Unauthenticated)?;
        check_version(&headers)?;
        let id = parse_id(&id, "upload")?;
        Ok(uploads::cancel(&s.db, &actor, id).await?)
    }
    .await;
    match result {
        Ok(upload) => {
            remove_objects(&s, &upload).await;
            tus_headers(StatusCode::NO_CONTENT.into_response())
        }
        Err(e) => tus_error(e),
    }
}

/// Best effort: what a cancelled or failed upload left in S3. (The
/// database no longer refers to it either way.)
async fn remove_objects(s: &AppState, upload: &Upload) {
    if let Some(multipart) = &upload.multipart_id {
        if let Err(e) = s
            .objects
            .abort_multipart(&upload.object_key, multipart)
            .await
        {
            tracing::warn!(error = %e, "could not abort a multipart upload");
        }
    }
    for key in upload.tail_key.iter().chain([&upload.object_key]) {
        if let Err(e) = s.objects.delete(key).await {
            tracing::warn!(error = %e, %key, "could not delete an upload's object");
        }
    }
}

/// tus PATCH: append the body at `Upload-Offset`.
pub async fn patch(
    State(s): State<AppState>,
    auth: Option<Auth>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    match patch_inner(&s, auth, &headers, &id, body).await {
        Ok(offset) => {
            let mut r = StatusCode::NO_CONTENT.into_response();
            r.headers_mut()
                .insert("upload-offset", HeaderValue::from(offset));
            tus_headers(r)
        }
        Err(e) => tus_error(e),
    }
}

async fn patch_inner(
    s: &AppState,
    auth: Option<Auth>,
    headers: &HeaderMap,
    id: &str,
    body: Body,
) -> ApiResult<i64> {
    let Auth(actor) = auth.ok_or(ApiError::Unauthenticated)?;
    check_version(headers)?;
    let id = parse_id(id, "upload")?;
    if header(headers, "content-type") != Some("application/offset+octet-stream") {
        return Err(ApiError::BadRequest(
            "a tus PATCH has Content-Type: application/offset+octet-stream".into(),
        ));
    }
    let offset: i64 = header(headers, "upload-offset")
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| ApiError::BadRequest("Upload-Offset (a byte count) is required".into()))?;
    let checksum = match header(headers, "upload-checksum") {
        Some(v) => Some(tus::parse_checksum(v).map_err(|e| ApiError::BadRequest(e.to_string()))?),
        None => None,
    };
    let (upload, token) = uploads::lease(&s.db, &actor, id, offset).await?;
    // The write runs in a task of its own: when the client goes away, the
    // request's future is dropped, but what arrived is still committed and
    // the lease given back, so the client can resume at once.
    let s = s.clone();
    tokio::spawn(async move {
        let result = match Writer::new(&s, &upload, token).await {
            Ok(w) => w.write(body, checksum).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = uploads::release(&s.db, &upload, token).await {
            tracing::warn!(error = %e, "could not release an upload's lease");
        }
        result
    })
    .await
    .map_err(|e| {
        ApiError::Store(StoreError::Internal(anyhow::anyhow!(
            "upload task failed: {e}"
        )))
    })?
}

/// One PATCH request's state.
struct Writer<'a> {
    s: &'a AppState,
    upload: &'a Upload,
    token: Uuid,
    part_size: usize,
    /// Bytes not yet in a part (the staging tail first).
    buf: Vec<u8>,
    /// SHA-256 over the bytes in parts.
    hash: RunningHash,
    parts_done: i32,
    multipart: Option<String>,
}

impl<'a> Writer<'a> {
    async fn new(
        s: &'a AppState,
        upload: &'a Upload,
        token: Uuid,
    ) -> Result<Writer<'a>, StoreError> {
        let part_size = upload.part_size as usize;
        let mut buf = Vec::with_capacity(part_size);
        if let Some(tail) = &upload.tail_key {
            let bytes = s.objects.get(tail).await?;
            if bytes.len() != upload.tail_size as usize {
                return Err(StoreError::Internal(anyhow::anyhow!(
                    "the staging object {tail} has {} bytes, {} expected",
                    bytes.len(),
                    upload.tail_size
                )));
            }
            buf.extend_from_slice(&bytes);
        }
        Ok(Writer {
            s,
            upload,
            token,
            part_size,
            buf,
            hash: RunningHash::resume(&upload.sha256_state)?,
            parts_done: upload.parts_done,
            multipart: upload.multipart_id.clone(),
        })
    }

    fn received(&self) -> i64 {
        self.parts_done as i64 * self.part_size as i64 + self.buf.len() as i64
    }

    /// Streams the body; returns the new offset.
    async fn write(mut self, body: Body, checksum: Option<[u8; 32]>) -> ApiResult<i64> {
        let length = self.upload.length;
        let mut body_hash = checksum.map(|_| sha2::Sha256::new());
        let mut stream = body.into_data_stream();
        let mut cut = false;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    // The client went away: keep what arrived (tus resumes).
                    tracing::info!(error = %e, upload = %self.upload.id, "upload body cut off");
                    cut = true;
                    break;
                }
            };
            if self.received() + chunk.len() as i64 > length {
                return Err(ApiError::BadRequest(format!(
                    "the body goes past the file's Upload-Length of {length} bytes"
                )));
            }
            if let Some(h) = &mut body_hash {
                h.update(&chunk);
            }
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let room = self.part_size - self.buf.len();
                let take = room.min(rest.len());
                self.buf.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                // The last part is uploaded when the file completes.
                if self.buf.len() == self.part_size && self.received() < length {
                    self.flush_part(checksum.is_none()).await?;
                }
            }
        }
        if let (Some(expected), Some(h)) = (checksum, body_hash) {
            if cut {
                return Err(ApiError::BadRequest(
                    "the body was cut off before its checksum could be checked; send it again"
                        .into(),
                ));
            }
            let got: [u8; 32] = h.finalize().into();
            if got != expected {
                return Err(ApiError::ChecksumMismatch(
                    "the body's SHA-256 does not match Upload-Checksum; nothing was written".into(),
                ));
            }
        }
        if self.received() == length {
            self.complete().await
        } else {
            self.commit_tail().await
        }
    }

    /// Uploads `buf` as the next part; commits it unless the request's
    /// checksum is still to be checked.
    async fn flush_part(&mut self, commit: bool) -> ApiResult<()> {
        let key = &self.upload.object_key;
        let multipart = match &self.multipart {
            Some(m) => m.clone(),
            None => {
                let m = self
                    .s
                    .objects
                    .start_multipart(key)
                    .await
                    .map_err(StoreError::from)?;
                uploads::set_multipart(&self.s.db, self.upload, self.token, &m).await?;
                self.multipart = Some(m.clone());
                m
            }
        };
        let number = self.parts_done + 1;
        let bytes = std::mem::replace(&mut self.buf, Vec::with_capacity(self.part_size));
        self.hash.update(&bytes);
        let size = bytes.len() as i64;
        let etag = self
            .s
            .objects
            .upload_part(key, &multipart, number, bytes)
            .await
            .map_err(StoreError::from)?;
        uploads::record_part(&self.s.db, self.upload, self.token, number, &etag, size).await?;
        self.parts_done = number;
        if commit {
            self.commit(None).await?;
        }
        Ok(())
    }

    /// Commits the parts and, with `tail`, the staging object holding the
    /// bytes after them (its key and size).
    async fn commit(&self, tail: Option<(String, usize)>) -> ApiResult<()> {
        let (tail_key, tail_size) = match tail {
            Some((key, size)) => (Some(key), size),
            None => (None, 0),
        };
        let progress = Progress {
            received: self.parts_done as i64 * self.part_size as i64 + tail_size as i64,
            parts_done: self.parts_done,
            tail_key,
            tail_size: tail_size as i32,
            sha256_state: self.hash.state(),
        };
        if let Some(old) = uploads::commit(&self.s.db, self.upload, self.token, &progress).await? {
            if let Err(e) = self.s.objects.delete(&old).await {
                tracing::warn!(error = %e, key = %old, "could not delete a staging object");
            }
        }
        Ok(())
    }

    /// The body ended short of the file's end: keep the bytes short of a
    /// part in a staging object, named by offset so the committed one is
    /// never overwritten.
    async fn commit_tail(mut self) -> ApiResult<i64> {
        let received = self.received();
        if self.buf.is_empty() {
            self.commit(None).await?;
            return Ok(received);
        }
        let key = format!("{}.tail-{received}", self.upload.object_key);
        let bytes = std::mem::take(&mut self.buf);
        let size = bytes.len();
        self.s
            .objects
            .put(&key, bytes)
            .await
            .map_err(StoreError::from)?;
        self.commit(Some((key, size))).await?;
        Ok(received)
    }

    /// The last byte is here: finish the object, check the whole file.
    async fn complete(mut self) -> ApiResult<i64> {
        let key = self.upload.object_key.clone();
        let last = std::mem::take(&mut self.buf);
        self.hash.update(&last);
        let digest = std::mem::take(&mut self.hash).finish();
        if let Some(expected) = &self.upload.sha256_expected {
            if expected[..] != digest[..] {
                let message = "the file's SHA-256 does not match the `sha256` it was announced \
                               with; upload it again";
                uploads::fail(&self.s.db, self.upload, message).await?;
                let mut dead = self.upload.clone();
                dead.multipart_id = self.multipart.clone();
                remove_objects(self.s, &dead).await;
                return Err(ApiError::ChecksumMismatch(message.into()));
            }
        }
        match &self.multipart {
            None => self
                .s
                .objects
                .put(&key, last)
                .await
                .map_err(StoreError::from)?,
            Some(multipart) => {
                let mut parts: Vec<(i32, String)> = uploads::parts(&self.s.db, self.upload)
                    .await?
                    .into_iter()
                    .filter(|(n, _)| *n <= self.parts_done)
                    .collect();
                if !last.is_empty() {
                    let number = self.parts_done + 1;
                    let etag = self
                        .s
                        .objects
                        .upload_part(&key, multipart, number, last)
                        .await
                        .map_err(StoreError::from)?;
                    parts.push((number, etag));
                }
                self.s
                    .objects
                    .complete_multipart(&key, multipart, parts)
                    .await
                    .map_err(StoreError::from)?;
            }
        }
        uploads::finish(&self.s.db, self.upload, self.token, digest).await?;
        if let Some(tail) = &self.upload.tail_key {
            if let Err(e) = self.s.objects.delete(tail).await {
                tracing::warn!(error = %e, key = %tail, "could not delete a staging object");
            }
        }
        Ok(self.upload.length)
    }
}
