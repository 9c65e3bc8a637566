//! De-identification after DICOM PS3.15 Annex E: the Basic Application
//! Level Confidentiality Profile with the Retain Longitudinal Temporal
//! Information with Modified Dates option (dates are shifted by a per-patient
//! offset so that intervals between scans survive, which atrophy rates need).
//!
//! The identity taken out (name, ID, birth date, sex, study date) is returned
//! for PostgreSQL; the copy that goes to object storage keeps only what the
//! analysis needs. Private attributes are removed; UIDs are replaced
//! consistently within one [`Deidentifier`]; an image that says it has
//! burned-in annotation is refused.

use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_object::mem::InMemDicomObject;
use dicom_object::DefaultDicomObject;
use std::collections::HashMap;

use super::header::text;
use crate::error::{ImagingError, Result};

/// StudyInstanceUID: what makes two uploads the same study.
pub const STUDY_INSTANCE_UID: Tag = Tag(0x0020, 0x000D);

/// Who the images are of, as found in them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub patient_name: Option<String>,
    pub patient_id: Option<String>,
    /// DICOM DA (YYYYMMDD).
    pub birth_date: Option<String>,
    pub sex: Option<String>,
    pub study_date: Option<String>,
    pub accession_number: Option<String>,
}

#[derive(Clone, Copy)]
enum Action {
    /// X: remove the attribute.
    Remove,
    /// Z: keep the attribute, empty.
    Empty,
}

/// Attributes of the basic profile's table with action X or Z (the ones
/// whose action is U, replace UID, are handled by VR; D, dummy, is done as
/// Z where a zero-length value is valid). Every other person name (PN) is
/// removed too, and every private attribute.
const ACTIONS: &[(u16, u16, Action)] = {
    use Action::*;
    &[
        (0x0008, 0x0014, Remove), // Instance Creator UID
        (0x0008, 0x0050, Empty),  // Accession Number
        (0x0008, 0x0080, Remove), // Institution Name
        (0x0008, 0x0081, Remove), // Institution Address
        (0x0008, 0x0090, Empty),  // Referring Physician's Name
        (0x0008, 0x0092, Remove), // Referring Physician's Address
        (0x0008, 0x0094, Remove), // Referring Physician's Telephone Numbers
        (0x0008, 0x1010, Remove), // Station Name
        (0x0008, 0x1030, Remove), // Study Description
        (0x0008, 0x103E, Remove), // Series Description
        (0x0008, 0x1040, Remove), // Institutional Department Name
        (0x0008, 0x1048, Remove), // Physician(s) of Record
        (0x0008, 0x1050, Remove), // Performing Physician's Name
        (0x0008, 0x1060, Remove), // Name of Physician(s) Reading Study
        (0x0008, 0x1070, Remove), // Operators' Name
        (0x0008, 0x1080, Remove), // Admitting Diagnoses Description
        (0x0008, 0x1110, Remove), // Referenced Study Sequence
        (0x0008, 0x1111, Remove), // Referenced Performed Procedure Step Sequence
        (0x0008, 0x1120, Remove), // Referenced Patient Sequence
        (0x0008, 0x2111, Remove), // Derivation Description
        (0x0010, 0x0010, Empty),  // Patient's Name
        (0x0010, 0x0020, Empty),  // Patient ID
        (0x0010, 0x0021, Remove), // Issuer of Patient ID
        (0x0010, 0x0030, Empty),  // Patient's Birth Date
        (0x0010, 0x0032, Remove), // Patient's Birth Time
        (0x0010, 0x0040, Empty),  // Patient's Sex
        (0x0010, 0x0050, Remove), // Patient's Insurance Plan Code Sequence
        (0x0010, 0x1000, Remove), // Other Patient IDs
        (0x0010, 0x1001, Remove), // Other Patient Names
        (0x0010, 0x1002, Remove), // Other Patient IDs Sequence
        (0x0010, 0x1005, Remove), // Patient's Birth Name
        (0x0010, 0x1010, Remove), // Patient's Age
        (0x0010, 0x1020, Remove), // Patient's Size
        (0x0010, 0x1030, Remove), // Patient's Weight
        (0x0010, 0x1040, Remove), // Patient's Address
        (0x0010, 0x1060, Remove), // Patient's Mother's Birth Name
        (0x0010, 0x1080, Remove), // Military Rank
        (0x0010, 0x1081, Remove), // Branch of Service
        (0x0010, 0x1090, Remove), // Medical Record Locator
        (0x0010, 0x2150, Remove), // Country of Residence
        (0x0010, 0x2152, Remove), // Region of Residence
        (0x0010, 0x2154, Remove), // Patient's Telephone Numbers
        (0x0010, 0x2160, Remove), // Ethnic Group
        (0x0010, 0x2180, Remove), // Occupation
        (0x0010, 0x21A0, Remove), // Smoking Status
        (0x0010, 0x21B0, Remove), // Additional Patient History
        (0x0010, 0x21C0, Remove), // Pregnancy Status
        (0x0010, 0x21F0, Remove), // Patient's Religious Preference
        (0x0010, 0x4000, Remove), // Patient Comments
        (0x0018, 0x1000, Remove), // Device Serial Number
        (0x0018, 0x1030, Remove), // Protocol Name
        (0x0018, 0x4000, Remove), // Acquisition Comments
        (0x0020, 0x0010, Empty),  // Study ID
        (0x0020, 0x4000, Remove), // Image Comments
        (0x0032, 0x1032, Remove), // Requesting Physician
        (0x0032, 0x1060, Remove), // Requested Procedure Description
        (0x0032, 0x4000, Remove), // Study Comments
        (0x0038, 0x0010, Remove), // Admission ID
        (0x0038, 0x0300, Remove), // Current Patient Location
        (0x0038, 0x0400, Remove), // Patient's Institution Residence
        (0x0038, 0x0500, Remove), // Patient State
        (0x0040, 0x0241, Remove), // Performed Station AE Title
        (0x0040, 0x0242, Remove), // Performed Station Name
        (0x0040, 0x0243, Remove), // Performed Location
        (0x0040, 0x0253, Remove), // Performed Procedure Step ID
        (0x0040, 0x0254, Remove), // Performed Procedure Step Description
        (0x0040, 0x0275, Remove), // Request Attributes Sequence
        (0x0040, 0x1001, Remove), // Requested Procedure ID
        (0x0040, 0x2016, Remove), // Placer Order Number
        (0x0040, 0x2017, Remove), // Filler Order Number
        (0x0040, 0xA730, Remove), // Content Sequence
        (0x0088, 0x0140, Remove), // Storage Media File-set UID
        (0x4008, 0x0114, Remove), // Physician Approving Interpretation
    ]
};

fn action(tag: Tag) -> Option<Action> {
    ACTIONS
        .iter()
        .find(|(g, e, _)| Tag(*g, *e) == tag)
        .map(|(_, _, a)| *a)
}

/// UIDs that name standard things (SOP classes, transfer syntaxes), not
/// instances: kept.
fn is_standard_uid(uid: &str) -> bool {
    uid.starts_with("1.2.840.10008.")
}

/// De-identifies the files of one patient's study (or studies) with one
/// date shift and one consistent UID mapping.
pub struct Deidentifier {
    date_shift_days: i64,
    uids: HashMap<String, String>,
}

impl Deidentifier {
    /// `date_shift_days`: the patient's offset (negative: into the past),
    /// kept in the database so that every study of the patient shifts alike.
    pub fn new(date_shift_days: i64) -> Self {
        Deidentifier {
            date_shift_days,
            uids: HashMap::new(),
        }
    }

    /// The replacement of an instance UID (the same every time).
    pub fn uid(&mut self, original: &str) -> String {
        let original = original.trim_end_matches(['\0', ' ']).to_owned();
        if is_standard_uid(&original) {
            return original;
        }
        self.uids
            .entry(original)
            .or_insert_with(|| format!("2.25.{}", uuid_u128()))
            .clone()
    }

    /// A de-identified copy of `file`, and the identity taken from it.
    pub fn deidentify(
        &mut self,
        file: &DefaultDicomObject,
    ) -> Result<(DefaultDicomObject, Identity)> {
        if text(file, Tag(0x0028, 0x0301)).is_some_and(|v| v.eq_ignore_ascii_case("YES")) {
            return Err(ImagingError::Unsupported(
                "the image has burned-in annotation (patient details in the pixels): it cannot be de-identified automatically".into(),
            ));
        }
        let identity = Identity {
            patient_name: text(file, Tag(0x0010, 0x0010)),
            patient_id: text(file, Tag(0x0010, 0x0020)),
            birth_date: text(file, Tag(0x0010, 0x0030)),
            sex: text(file, Tag(0x0010, 0x0040)),
            study_date: text(file, Tag(0x0008, 0x0020)),
            accession_number: text(file, Tag(0x0008, 0x0050)),
        };
        let mut meta = file.meta().clone();
        meta.media_storage_sop_instance_uid = self.uid(&meta.media_storage_sop_instance_uid);
        meta.source_application_entity_title = None;
        meta.sending_application_entity_title = None;
        meta.receiving_application_entity_title = None;
        meta.private_information_creator_uid = None;
        meta.private_information = None;
        meta.update_information_group_length();
        let mut out = DefaultDicomObject::new_empty_with_meta(meta);
        for e in self.clean(file).into_iter() {
            out.put(e);
        }
        out.put(DataElement::new(
            Tag(0x0012, 0x0062),
            VR::CS,
            PrimitiveValue::from("YES"),
        ));
        out.put(DataElement::new(
            Tag(0x0012, 0x0063),
            VR::LO,
            PrimitiveValue::from("DICOM PS3.15 E.1 Basic; Retain Longitudinal Modified Dates"),
        ));
        out.put(DataElement::new(
            Tag(0x0028, 0x0303),
            VR::CS,
            PrimitiveValue::from("MODIFIED"),
        ));
        Ok((out, identity))
    }

    fn clean(&mut self, ds: &InMemDicomObject) -> InMemDicomObject {
        let mut out = InMemDicomObject::new_empty();
        for e in ds.iter() {
            let tag = e.tag();
            let vr = e.vr();
            if tag.group() % 2 == 1 {
                continue; // private
            }
            match action(tag) {
                Some(Action::Remove) => continue,
                Some(Action::Empty) => {
                    out.put(DataElement::new(tag, vr, PrimitiveValue::Empty));
                    continue;
                }
                None => {}
            }
            let value = match (vr, e.value()) {
                (VR::PN, _) => continue,
                (VR::SQ, Value::Sequence(seq)) => {
                    let items: Vec<InMemDicomObject> =
                        seq.items().iter().map(|i| self.clean(i)).collect();
                    out.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
                    continue;
                }
                (VR::UI, Value::Primitive(p)) => {
                    let mapped: Vec<String> = p.to_str().split('\\').map(|u| self.uid(u)).collect();
                    PrimitiveValue::from(mapped.join("\\"))
                }
                (VR::DA, Value::Primitive(p)) => {
                    match shift_dates(&p.to_str(), self.date_shift_days) {
                        Some(v) => PrimitiveValue::from(v),
                        None => PrimitiveValue::Empty,
                    }
                }
                (VR::DT, Value::Primitive(_)) => PrimitiveValue::Empty,
                _ => {
                    out.put(e.clone());
                    continue;
                }
            };
            out.put(DataElement::new(tag, vr, value));
        }
        out
    }
}

fn uuid_u128() -> u128 {
    let mut bytes = [0u8; 16];
    getrandom(&mut bytes);
    u128::from_be_bytes(bytes)
}

/// Random bytes from the OS (/dev/urandom).
fn getrandom(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("the OS provides random bytes");
}

/// Shifts each DA value (YYYYMMDD, backslash-separated) by `days`.
fn shift_dates(value: &str, days: i64) -> Option<String> {
    let shifted: Option<Vec<String>> = value
        .split('\\')
        .map(|d| {
            let d = d.trim();
            if d.len() != 8 || !d.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let (y, m, day) = (
                d[0..4].parse().ok()?,
                d[4..6].parse().ok()?,
                d[6..8].parse().ok()?,
            );
            let (y, m, day) = civil_from_days(days_from_civil(y, m, day) + days);
            Some(format!("{y:04}{m:02}{day:02}"))
        })
        .collect();
    shifted.map(|v| v.join("\\"))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_shift_across_months_years_and_leap_days() {
        assert_eq!(shift_dates("20240301", -1).unwrap(), "20240229");
        assert_eq!(shift_dates("20231231", 1).unwrap(), "20240101");
        assert_eq!(
            shift_dates("20010413\\20010414", -100).unwrap(),
            "20010103\\20010104"
        );
        assert_eq!(shift_dates("2001", 3), None);
    }

    #[test]
    fn uids_map_consistently() {
        let mut d = Deidentifier::new(0);
        let a = d.uid("1.2.3.4");
        assert_eq!(d.uid("1.2.3.4\0"), a);
        assert_ne!(d.uid("1.2.3.5"), a);
        assert!(a.starts_with("2.25."));
        assert_eq!(
            d.uid("1.2.840.10008.5.1.4.1.1.4"),
            "1.2.840.10008.5.1.4.1.1.4"
        );
    }
}
