//! Which kind of MR series is this: 3D T1-weighted, FLAIR, or other? Decided
//! from the acquisition attributes, with the reason written down so that a
//! user can see why a series was (not) used.

use crate::volume::SequenceClass;

/// The attributes classification looks at (absent ones are None/empty).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Acquisition {
    pub description: String,
    /// (0018,0020) e.g. "GR", "IR\\GR", "SE\\IR".
    pub scanning_sequence: String,
    /// (0018,0021) e.g. "SK\\SP\\MP".
    pub sequence_variant: String,
    /// (0018,0023) "2D" or "3D".
    pub acquisition_type: String,
    pub inversion_time_ms: Option<f64>,
    pub echo_time_ms: Option<f64>,
    pub repetition_time_ms: Option<f64>,
}

const T1_NAMES: [&str; 10] = [
    "mprage", "mp-rage", "mp_rage", "spgr", "bravo", "tfl", "t1", "tfe", "mp2rage", "vibe",
];

/// Fewer slices than this cannot be a brain volume to measure, whatever the
/// acquisition attributes say (a localizer, a single test slice).
pub const MIN_SLICES: usize = 8;

const LOCALIZER_NAMES: [&str; 4] = ["scout", "localizer", "localiser", "survey"];

/// The class of a series of `slices` slices and the reason for it: localizers
/// and series too thin to measure are "other" before anything else.
pub fn classify_series(a: &Acquisition, slices: usize) -> (SequenceClass, String) {
    let desc = a.description.to_lowercase();
    if let Some(name) = LOCALIZER_NAMES.iter().find(|n| desc.contains(*n)) {
        return (
            SequenceClass::Other,
            format!("a localizer (\"{name}\" in \"{}\")", a.description),
        );
    }
    if slices < MIN_SLICES {
        return (
            SequenceClass::Other,
            format!("only {slices} slice(s): too few to be a brain volume (at least {MIN_SLICES})"),
        );
    }
    classify(a)
}

/// The class from the acquisition attributes alone, and the reason for it.
pub fn classify(a: &Acquisition) -> (SequenceClass, String) {
    let desc = a.description.to_lowercase();
    let seq = a.scanning_sequence.to_uppercase();
    let is_3d = a.acquisition_type.trim().eq_ignore_ascii_case("3D");
    let ti = a.inversion_time_ms.unwrap_or(0.0);
    let te = a.echo_time_ms.unwrap_or(0.0);
    let tr = a.repetition_time_ms.unwrap_or(0.0);

    if desc.contains("flair") {
        return (
            SequenceClass::Flair,
            format!("series description \"{}\" names FLAIR", a.description),
        );
    }
    if seq.contains("IR") && ti >= 1500.0 && te >= 70.0 {
        return (
            SequenceClass::Flair,
            format!("inversion recovery with long TI ({ti} ms) and long TE ({te} ms): fluid-attenuated T2"),
        );
    }
    let named_t1 = T1_NAMES.iter().find(|n| desc.contains(*n));
    let t1_timing = te > 0.0
        && te < 10.0
        && tr > 0.0
        && tr < 3000.0
        && (ti == 0.0 || (300.0..=1300.0).contains(&ti));
    match (is_3d, named_t1, t1_timing && seq.contains("GR")) {
        (true, Some(name), _) => (SequenceClass::T1, format!("3D acquisition named \"{name}\" in \"{}\"", a.description)),
        (true, None, true) => (
            SequenceClass::T1,
            format!("3D gradient echo with short TE ({te} ms) and TR ({tr} ms){}", if ti > 0.0 { format!(", TI {ti} ms") } else { String::new() }),
        ),
        (false, Some(_), _) | (false, None, true) => (
            SequenceClass::Other,
            "T1-weighted but not a 3D acquisition (needs MRAcquisitionType 3D)".into(),
        ),
        _ => (
            SequenceClass::Other,
            format!(
                "neither 3D T1 nor FLAIR (description \"{}\", sequence {}, TE {te}, TR {tr}, TI {ti})",
                a.description,
                if seq.is_empty() { "unknown" } else { &seq }
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acq(desc: &str, seq: &str, kind: &str, ti: f64, te: f64, tr: f64) -> Acquisition {
        Acquisition {
            description: desc.into(),
            scanning_sequence: seq.into(),
            acquisition_type: kind.into(),
            inversion_time_ms: (ti > 0.0).then_some(ti),
            echo_time_ms: Some(te),
            repetition_time_ms: Some(tr),
            ..Default::default()
        }
    }

    #[test]
    fn common_protocols_are_recognised() {
        let cases = [
            (
                acq("t1_mprage_sag_p2_iso", "GR\\IR", "3D", 900.0, 2.98, 2300.0),
                SequenceClass::T1,
            ),
            (
                acq("Sag 3D BRAVO", "GR", "3D", 450.0, 3.2, 8.2),
                SequenceClass::T1,
            ),
            (acq("3D_T1W", "GR", "3D", 0.0, 4.6, 9.9), SequenceClass::T1),
            (
                acq("sagittal", "GR", "3D", 0.0, 3.0, 7.0),
                SequenceClass::T1,
            ),
            (
                acq("t2_flair_tra", "SE\\IR", "2D", 2500.0, 81.0, 9000.0),
                SequenceClass::Flair,
            ),
            (
                acq("3D FLAIR", "SE\\IR", "3D", 1800.0, 120.0, 4800.0),
                SequenceClass::Flair,
            ),
            (
                acq("ax dark fluid", "SE\\IR", "2D", 2200.0, 90.0, 9000.0),
                SequenceClass::Flair,
            ),
            (
                acq("t1_se_tra", "SE", "2D", 0.0, 12.0, 500.0),
                SequenceClass::Other,
            ),
            (
                acq("T1 axial", "GR", "2D", 0.0, 4.0, 250.0),
                SequenceClass::Other,
            ),
            (
                acq("t2_tse_tra", "SE", "2D", 0.0, 100.0, 5000.0),
                SequenceClass::Other,
            ),
            (
                acq("ep2d_diff", "EP", "2D", 0.0, 90.0, 8000.0),
                SequenceClass::Other,
            ),
        ];
        for (a, expected) in cases {
            let (class, reason) = classify(&a);
            assert_eq!(class, expected, "{}: {reason}", a.description);
            assert!(!reason.is_empty());
        }
    }

    #[test]
    fn localizers_and_thin_series_are_never_t1_or_flair() {
        let scout = acq("AAHead_Scout", "GR", "3D", 0.0, 1.37, 3.15);
        assert_eq!(classify(&scout).0, SequenceClass::T1);
        let (class, reason) = classify_series(&scout, 128);
        assert_eq!(class, SequenceClass::Other);
        assert!(reason.contains("localizer"), "{reason}");
        let flair = acq("t2_flair_tra", "SE\\IR", "2D", 2500.0, 81.0, 9000.0);
        let (class, reason) = classify_series(&flair, 3);
        assert_eq!(class, SequenceClass::Other);
        assert!(reason.contains("only 3 slice"), "{reason}");
        assert_eq!(classify_series(&flair, 30).0, SequenceClass::Flair);
    }
}
