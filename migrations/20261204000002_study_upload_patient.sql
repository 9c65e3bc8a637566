-- The patient a study upload is of, as the uploader gives it: needed for
-- NIfTI files, which name no patient. DICOM files name their own.
ALTER TABLE study_uploads
    ADD COLUMN patient_ref text
        CONSTRAINT study_uploads_patient_ref_length
        CHECK (patient_ref IS NULL OR char_length(btrim(patient_ref)) BETWEEN 1 AND 64);
