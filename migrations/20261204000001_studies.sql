-- Studies: resumable uploads, the objects they leave in S3, patients,
-- studies with their series, and the analysis results.
--
-- Patient identity (name, patient ID, birth date, sex) is in `patients`
-- only. Objects in S3 are keyed by UUIDs; the raw uploads (which may hold
-- identity in DICOM headers) live under `practices/{p}/incoming/` and are
-- deleted once ingest has written de-identified volumes.
--
-- Row-level security as in the accounts migration, but without the platform
-- bypass: platform admins manage practices, never patients.

-- How much a practice may keep in the object store. Uploads in progress
-- count with their declared length.
ALTER TABLE practices
    ADD COLUMN storage_quota_bytes bigint NOT NULL DEFAULT 107374182400
        CONSTRAINT practices_storage_quota_positive CHECK (storage_quota_bytes > 0);

CREATE TYPE study_status AS ENUM
    ('uploading', 'queued', 'ingesting', 'analysing', 'done', 'needs_attention', 'failed');
CREATE TYPE upload_status AS ENUM ('receiving', 'complete', 'failed', 'cancelled');
CREATE TYPE study_upload_status AS ENUM ('open', 'completed', 'cancelled');
CREATE TYPE sequence_class AS ENUM ('t1', 'flair', 'other');

-- The people scanned. `patient_ref` is the practice's own patient ID (the
-- DICOM PatientID, or what the uploader typed for NIfTI).
CREATE TABLE patients (
    id          uuid PRIMARY KEY,
    practice_id uuid NOT NULL REFERENCES practices (id),
    patient_ref text NOT NULL
        CONSTRAINT patients_ref_length CHECK (char_length(btrim(patient_ref)) BETWEEN 1 AND 64),
    name        text,
    birth_date  date,
    sex         text CONSTRAINT patients_sex_code CHECK (sex IN ('F', 'M', 'O')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT patients_ref_key UNIQUE (practice_id, patient_ref)
);

-- One imaging session of a patient. Created when its upload completes (the
-- patient is known after ingest); ingest fills in what the files say.
CREATE TABLE studies (
    id                 uuid PRIMARY KEY,
    practice_id        uuid NOT NULL REFERENCES practices (id),
    patient_id         uuid REFERENCES patients (id),
    status             study_status NOT NULL DEFAULT 'queued',
    -- What went wrong or what needs attention, in words for the user.
    error              text,
    -- DICOM StudyInstanceUID, or for NIfTI-only studies the SHA-256 digests
    -- of the volumes (sorted, joined): what makes two uploads one study.
    study_key          text,
    study_date         date,
    description        text,
    created_by         uuid REFERENCES users (id),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX studies_key_idx ON studies (practice_id, study_key);
CREATE INDEX studies_practice_created_idx ON studies (practice_id, created_at DESC);
CREATE INDEX studies_patient_idx ON studies (patient_id);

-- A study upload groups the files a client sends for one study (tus
-- `study_upload` metadata). Completing it creates the study.
CREATE TABLE study_uploads (
    id           uuid PRIMARY KEY,
    practice_id  uuid NOT NULL REFERENCES practices (id),
    created_by   uuid REFERENCES users (id),
    status       study_upload_status NOT NULL DEFAULT 'open',
    study_id     uuid REFERENCES studies (id) ON DELETE SET NULL,
    -- Set by ingest when the files turned out to be a study uploaded before.
    duplicate_of uuid REFERENCES studies (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);
CREATE INDEX study_uploads_practice_idx ON study_uploads (practice_id, created_at DESC);

-- One file of a study upload (a tus upload). Bytes go to S3 as multipart
-- parts of `part_size`; the bytes short of a whole part after a request wait
-- in a staging object (`tail_key`) until the next request. The running
-- SHA-256 of the bytes received is kept as the hasher's serialised state.
CREATE TABLE uploads (
    id              uuid PRIMARY KEY,
    practice_id     uuid NOT NULL REFERENCES practices (id),
    study_upload_id uuid NOT NULL REFERENCES study_uploads (id) ON DELETE CASCADE,
    filename        text NOT NULL
        CONSTRAINT uploads_filename_length CHECK (char_length(filename) BETWEEN 1 AND 255),
    sequence        sequence_class,
    length          bigint NOT NULL CONSTRAINT uploads_length_positive CHECK (length > 0),
    received        bigint NOT NULL DEFAULT 0,
    part_size       integer NOT NULL,
    object_key      text NOT NULL,
    multipart_id    text,
    parts_done      integer NOT NULL DEFAULT 0,
    tail_key        text,
    tail_size       integer NOT NULL DEFAULT 0,
    sha256_state    bytea NOT NULL,
    sha256_expected bytea,
    sha256          bytea,
    status          upload_status NOT NULL DEFAULT 'receiving',
    error           text,
    -- A request writing to this upload holds the lease; one at a time.
    lease_token     uuid,
    lease_until     timestamptz,
    created_by      uuid REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    CONSTRAINT uploads_received_range CHECK (received BETWEEN 0 AND length)
);
CREATE INDEX uploads_study_upload_idx ON uploads (study_upload_id);
CREATE INDEX uploads_practice_status_idx ON uploads (practice_id, status);

CREATE TABLE upload_parts (
    upload_id   uuid NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    part_number integer NOT NULL,
    practice_id uuid NOT NULL REFERENCES practices (id),
    etag        text NOT NULL,
    size        bigint NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);

-- Every object Gyri keeps in S3.
CREATE TABLE objects (
    id            uuid PRIMARY KEY,
    practice_id   uuid NOT NULL REFERENCES practices (id),
    key           text NOT NULL CONSTRAINT objects_key_key UNIQUE,
    kind          text NOT NULL
        CONSTRAINT objects_kind CHECK (kind IN ('incoming', 'raw', 'volumes', 'masks', 'reports')),
    study_id      uuid REFERENCES studies (id) ON DELETE CASCADE,
    upload_id     uuid REFERENCES uploads (id) ON DELETE SET NULL,
    size          bigint NOT NULL CONSTRAINT objects_size_nonnegative CHECK (size >= 0),
    sha256        bytea NOT NULL CONSTRAINT objects_sha256_length CHECK (length(sha256) = 32),
    storage_class text NOT NULL DEFAULT 'STANDARD',
    content_type  text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX objects_practice_idx ON objects (practice_id);
CREATE INDEX objects_study_idx ON objects (study_id);

-- The series ingest found in a study, with what was made of them.
CREATE TABLE series (
    id                  uuid PRIMARY KEY,
    practice_id         uuid NOT NULL REFERENCES practices (id),
    study_id            uuid NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    number              integer NOT NULL,
    description         text NOT NULL DEFAULT '',
    class               sequence_class NOT NULL,
    -- Chosen as the study's T1 or FLAIR for the analysis.
    used_as             sequence_class,
    files               integer NOT NULL DEFAULT 0,
    dims                integer[] NOT NULL,
    voxel_mm            real[] NOT NULL,
    -- Why the series was not made into a volume, or warnings about it.
    note                text,
    volume_object_id    uuid REFERENCES objects (id) ON DELETE SET NULL,
    CONSTRAINT series_number_key UNIQUE (study_id, number)
);

-- The analysis of a study: one result set, upserted by the analysis job.
CREATE TABLE analyses (
    study_id          uuid PRIMARY KEY REFERENCES studies (id) ON DELETE CASCADE,
    practice_id       uuid NOT NULL REFERENCES practices (id),
    model_version     text NOT NULL,
    icv_ml            double precision NOT NULL,
    brain_ml          double precision NOT NULL,
    gm_ml             double precision NOT NULL,
    wm_ml             double precision NOT NULL,
    csf_ml            double precision NOT NULL,
    lesion_count      integer,
    lesion_ml         double precision,
    warnings          text[] NOT NULL DEFAULT '{}',
    timings           jsonb NOT NULL DEFAULT '{}',
    -- The whole metrics.json of `gyri-worker analyze`.
    metrics           jsonb NOT NULL,
    labels_object_id  uuid REFERENCES objects (id) ON DELETE SET NULL,
    mask_object_id    uuid REFERENCES objects (id) ON DELETE SET NULL,
    -- Which job run wrote it (a retried run overwrites, never adds).
    runs              integer NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE lesions (
    study_id    uuid NOT NULL REFERENCES analyses (study_id) ON DELETE CASCADE,
    number      integer NOT NULL,
    practice_id uuid NOT NULL REFERENCES practices (id),
    volume_ml   double precision NOT NULL,
    voxels      integer NOT NULL,
    centroid_mm double precision[] NOT NULL,
    PRIMARY KEY (study_id, number)
);

ALTER TABLE patients ENABLE ROW LEVEL SECURITY;
CREATE POLICY patients_scope ON patients
    USING (practice_id = app_practice_id()) WITH CHECK (practice_id = app_practice_id());
ALTER TABLE studies ENABLE ROW LEVEL SECURITY;
CREATE POLICY studies_scope ON studies
    USING (practice_id = app_practice_id()) WITH CHECK (practice_id = app_practice_id());
ALTER TABLE study_uploads ENABLE ROW LEVEL SECURITY;
CREATE POLICY study_uploads_scope ON study_uploads
    USING (practice_id = app_practice_id()) WITH CHECK (practice_id = app_practice_id());
ALTER TABLE uploads ENABLE ROW LEVEL SECURITY;
CREATE POLICY uploads_scope ON uploads
    USING (practice_id = app_practice_id()) WITH CHECK (practice_id = app_practice_id());
ALTER TABLE upload_parts ENABLE ROW LEVEL SECURITY;
CREATE POLICY upload_parts_scope ON upload_parts
    USING (practice_id = app_practice_id()) WITH CHECK (practice_id = app_practice_id());
ALTER TABLE objects ENABLE ROW LEVEL SECURITY;
CREATE POLICY objects_scope ON objects
    USING (practice_id = app_practice_id()) WITH CHECK (practice_id = app_practice_id());
ALTER TABLE series ENABLE ROW LEVEL SECURITY;
CREATE POLICY series_scope ON series
    USING (practice_id = app_practice_id()) WITH CHECK (practice_id = app_practice_id());
ALTER TABLE analyses ENABLE ROW LEVEL SECURITY;
CREATE POLICY analyses_scope ON analyses
    USING (practice_id = app_practice_id()) WITH CHECK (practice_id = app_practice_id());
ALTER TABLE lesions ENABLE ROW LEVEL SECURITY;
CREATE POLICY lesions_scope ON lesions
    USING (practice_id = app_practice_id()) WITH CHECK (practice_id = app_practice_id());

GRANT SELECT, INSERT, UPDATE ON patients, studies, study_uploads TO gyri_app;
GRANT DELETE ON studies TO gyri_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON uploads, upload_parts, objects, series, analyses, lesions TO gyri_app;

-- The job queue (apalis-postgres) lives in schema `apalis`, created by its
-- own migrations, which the server runs as the owner after these.
