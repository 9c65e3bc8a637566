//! The object store (S3 protocol through aws-sdk-s3): imaging data lives
//! here, keyed by pseudonymous ids.

use anyhow::Context;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::Client;

/// Where objects go.
#[derive(Clone, Debug)]
pub struct ObjectStore {
    client: Client,
    bucket: String,
}

/// How to reach the object store.
#[derive(Clone)]
pub struct ObjectStoreConfig {
    /// Endpoint URL; None for AWS itself.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    /// Static credentials; None to use the AWS default chain.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for ObjectStoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreConfig")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl ObjectStore {
    pub async fn connect(cfg: &ObjectStoreConfig) -> anyhow::Result<ObjectStore> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new(cfg.region.clone()));
        if let Some((id, secret)) = &cfg.credentials {
            loader = loader.credentials_provider(Credentials::new(id, secret, None, None, "gyri"));
        }
        let shared = loader.load().await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared);
        if let Some(endpoint) = &cfg.endpoint {
            builder = builder.endpoint_url(endpoint).force_path_style(true);
        }
        Ok(ObjectStore {
            client: Client::from_conf(builder.build()),
            bucket: cfg.bucket.clone(),
        })
    }

    /// Creates the bucket if it does not exist (the embedded edition).
    pub async fn ensure_bucket(&self) -> anyhow::Result<()> {
        if self.ping().await.is_ok() {
            return Ok(());
        }
        self.client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .with_context(|| format!("cannot create bucket {}", self.bucket))?;
        Ok(())
    }

    /// Is the bucket reachable with our credentials?
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .with_context(|| format!("bucket {} is not reachable", self.bucket))?;
        Ok(())
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

/// The parts of a multipart upload, in order: (part number, ETag).
pub type CompletedParts = Vec<(i32, String)>;

impl ObjectStore {
    /// Stores a whole object.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(bytes.into())
            .send()
            .await
            .with_context(|| format!("cannot store object {key}"))?;
        Ok(())
    }

    /// Stores a whole object from a file, streaming it.
    pub async fn put_file(&self, key: &str, path: &std::path::Path) -> anyhow::Result<()> {
        let body = aws_sdk_s3::primitives::ByteStream::from_path(path)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot store object {key}"))?;
        Ok(())
    }

    /// Reads a whole object (small objects only: staging tails, metrics).
    pub async fn get(&self, key: &str) -> anyhow::Result<Vec<u8>> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .with_context(|| format!("cannot read object {key}"))?;
        let bytes = out
            .body
            .collect()
            .await
            .with_context(|| format!("cannot read object {key}"))?;
        Ok(bytes.into_bytes().to_vec())
    }

    /// Streams an object into a file.
    pub async fn download(&self, key: &str, path: &std::path::Path) -> anyhow::Result<u64> {
        use tokio::io::AsyncWriteExt;
        let mut out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .with_context(|| format!("cannot read object {key}"))?;
        let mut file = tokio::fs::File::create(path)
            .await
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut written = 0u64;
        while let Some(chunk) = out
            .body
            .try_next()
            .await
            .with_context(|| format!("reading object {key} failed"))?
        {
            file.write_all(&chunk).await?;
            written += chunk.len() as u64;
        }
        file.flush().await?;
        Ok(written)
    }

    /// Deletes an object; a missing object is not an error.
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .with_context(|| format!("cannot delete object {key}"))?;
        Ok(())
    }

    /// Starts a multipart upload; returns its id.
    pub async fn start_multipart(&self, key: &str) -> anyhow::Result<String> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .with_context(|| format!("cannot start a multipart upload of {key}"))?;
        out.upload_id()
            .map(str::to_owned)
            .context("the object store returned no upload id")
    }

    /// Uploads one part (numbered from 1); returns its ETag.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: i32,
        bytes: Vec<u8>,
    ) -> anyhow::Result<String> {
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .body(bytes.into())
            .send()
            .await
            .with_context(|| format!("cannot upload part {part_number} of {key}"))?;
        out.e_tag()
            .map(str::to_owned)
            .context("the object store returned no ETag for a part")
    }

    /// Completes a multipart upload from its parts.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: CompletedParts,
    ) -> anyhow::Result<()> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let parts = parts
            .into_iter()
            .map(|(n, etag)| CompletedPart::builder().part_number(n).e_tag(etag).build())
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .with_context(|| format!("cannot complete the multipart upload of {key}"))?;
        Ok(())
    }

    /// Abandons a multipart upload and its parts.
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> anyhow::Result<()> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .with_context(|| format!("cannot abort the multipart upload of {key}"))?;
        Ok(())
    }

    /// The size of an object, or None when there is none.
    pub async fn size(&self, key: &str) -> anyhow::Result<Option<i64>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(out.content_length()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!("cannot look up {key}"))),
        }
    }
}

impl ObjectStore {
    /// The keys under `prefix`, in order (for checks and cleanup).
    pub async fn list(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .with_context(|| format!("cannot list objects under {prefix}"))?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            match out.next_continuation_token() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        Ok(keys)
    }
}
