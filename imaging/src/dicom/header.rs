//! What Gyri reads from one DICOM file before touching its pixels: the
//! series it belongs to, where its frames lie, and how it was acquired.

use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;
use dicom_object::Tag;

use super::classify::Acquisition;
use crate::volume::Metadata;

type Obj = InMemDicomObject;

pub(crate) fn text(obj: &Obj, tag: Tag) -> Option<String> {
    let s = obj.get(tag)?.to_str().ok()?;
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!s.is_empty()).then(|| s.to_owned())
}

pub(crate) fn float(obj: &Obj, tag: Tag) -> Option<f64> {
    obj.get(tag)?.to_float64().ok().filter(|v| v.is_finite())
}

pub(crate) fn floats(obj: &Obj, tag: Tag) -> Option<Vec<f64>> {
    let v = obj.get(tag)?.to_multi_float64().ok()?;
    v.iter().all(|x| x.is_finite()).then_some(v)
}

pub(crate) fn int(obj: &Obj, tag: Tag) -> Option<i64> {
    obj.get(tag)?.to_int::<i64>().ok()
}

/// The first item of a sequence attribute.
pub(crate) fn item(obj: &Obj, tag: Tag) -> Option<&Obj> {
    obj.get(tag)?.items()?.first()
}

/// One 2D frame's place and scaling.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameGeometry {
    /// ImagePositionPatient (LPS mm) of the first pixel.
    pub position: [f64; 3],
    pub slope: f64,
    pub intercept: f64,
}

/// The header of one file: a classic single-frame image or an enhanced
/// multi-frame one.
#[derive(Clone, Debug)]
pub struct FileHeader {
    pub series_uid: String,
    pub series_number: Option<i64>,
    pub description: String,
    pub instance_number: i64,
    pub rows: usize,
    pub columns: usize,
    /// PixelSpacing: [between rows, between columns] in mm.
    pub pixel_spacing: [f64; 2],
    /// ImageOrientationPatient: row direction then column direction (LPS).
    pub orientation: [f64; 6],
    pub frames: Vec<FrameGeometry>,
    pub slice_thickness: Option<f64>,
    pub gantry_tilt: f64,
    pub mosaic: bool,
    pub samples_per_pixel: u16,
    pub acquisition: Acquisition,
    pub meta: Metadata,
}

/// Why a file is not an image Gyri can place in space.
pub fn read_header(obj: &Obj) -> Result<FileHeader, String> {
    let series_uid =
        text(obj, tags::SERIES_INSTANCE_UID).ok_or("it has no series (SeriesInstanceUID)")?;
    let rows = int(obj, tags::ROWS).ok_or("it holds no image (no Rows)")?;
    let columns = int(obj, tags::COLUMNS).ok_or("it holds no image (no Columns)")?;
    if rows < 1 || columns < 1 || rows > 4096 || columns > 4096 {
        return Err(format!("its image size {columns}×{rows} is not plausible"));
    }
    let shared = item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let per_frame = obj
        .get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|e| e.items())
        .unwrap_or(&[]);
    // Enhanced objects keep geometry in functional groups (per frame, or
    // shared by all frames); classic ones at the top level.
    let group_attr = |frame: Option<&Obj>, seq: Tag, tag: Tag| -> Option<Vec<f64>> {
        frame
            .and_then(|f| item(f, seq))
            .and_then(|i| floats(i, tag))
            .or_else(|| {
                shared
                    .and_then(|s| item(s, seq))
                    .and_then(|i| floats(i, tag))
            })
            .or_else(|| floats(obj, tag))
    };
    let first = per_frame.first();
    let spacing = group_attr(first, tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING)
        .filter(|v| v.len() == 2 && v.iter().all(|x| *x > 0.0))
        .ok_or("it has no usable PixelSpacing")?;
    let orientation = group_attr(
        first,
        tags::PLANE_ORIENTATION_SEQUENCE,
        tags::IMAGE_ORIENTATION_PATIENT,
    )
    .filter(|v| v.len() == 6)
    .ok_or("it has no ImageOrientationPatient")?;
    let scale = |frame: Option<&Obj>| {
        let slope = group_attr(
            frame,
            tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
            tags::RESCALE_SLOPE,
        )
        .and_then(|v| v.first().copied())
        .filter(|s| *s != 0.0)
        .unwrap_or(1.0);
        let intercept = group_attr(
            frame,
            tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
            tags::RESCALE_INTERCEPT,
        )
        .and_then(|v| v.first().copied())
        .unwrap_or(0.0);
        (slope, intercept)
    };
    let number_of_frames = int(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as usize;
    let mut frames = Vec::new();
    if per_frame.is_empty() {
        if number_of_frames > 1 {
            return Err("it is a multi-frame image without per-frame positions".into());
        }
        let position = floats(obj, tags::IMAGE_POSITION_PATIENT)
            .filter(|v| v.len() == 3)
            .ok_or("it has no ImagePositionPatient")?;
        let (slope, intercept) = scale(None);
        frames.push(FrameGeometry {
            position: [position[0], position[1], position[2]],
            slope,
            intercept,
        });
    } else {
        if per_frame.len() != number_of_frames {
            return Err(format!(
                "it announces {number_of_frames} frames but describes {}",
                per_frame.len()
            ));
        }
        for f in per_frame {
            let position = group_attr(
                Some(f),
                tags::PLANE_POSITION_SEQUENCE,
                tags::IMAGE_POSITION_PATIENT,
            )
            .filter(|v| v.len() == 3)
            .ok_or("a frame has no ImagePositionPatient")?;
            let (slope, intercept) = scale(Some(f));
            frames.push(FrameGeometry {
                position: [position[0], position[1], position[2]],
                slope,
                intercept,
            });
        }
        // Per-frame orientations must agree with the first.
        for f in per_frame {
            if let Some(o) = item(f, tags::PLANE_ORIENTATION_SEQUENCE)
                .and_then(|i| floats(i, tags::IMAGE_ORIENTATION_PATIENT))
            {
                if o.iter()
                    .zip(&orientation)
                    .any(|(a, b)| (a - b).abs() > 1e-4)
                {
                    return Err("its frames have different orientations".into());
                }
            }
        }
    }
    let image_type = text(obj, tags::IMAGE_TYPE)
        .unwrap_or_default()
        .to_uppercase();
    let mr_seq = |tag| {
        text(obj, tag).or_else(|| {
            shared
                .and_then(|s| item(s, tags::MR_TIMING_AND_RELATED_PARAMETERS_SEQUENCE))
                .and_then(|i| text(i, tag))
        })
    };
    let timing = |tag| {
        float(obj, tag)
            .or_else(|| {
                shared
                    .and_then(|s| item(s, tags::MR_TIMING_AND_RELATED_PARAMETERS_SEQUENCE))
                    .and_then(|i| float(i, tag))
            })
            .or_else(|| {
                shared
                    .and_then(|s| item(s, tags::MR_ECHO_SEQUENCE))
                    .and_then(|i| float(i, tag))
            })
            .or_else(|| {
                first
                    .and_then(|f| item(f, tags::MR_ECHO_SEQUENCE))
                    .and_then(|i| float(i, tag))
            })
    };
    let description = text(obj, tags::SERIES_DESCRIPTION)
        .or_else(|| text(obj, tags::PROTOCOL_NAME))
        .unwrap_or_default();
    let acquisition = Acquisition {
        description: description.clone(),
        scanning_sequence: mr_seq(tags::SCANNING_SEQUENCE).unwrap_or_default(),
        sequence_variant: mr_seq(tags::SEQUENCE_VARIANT).unwrap_or_default(),
        acquisition_type: text(obj, tags::MR_ACQUISITION_TYPE).unwrap_or_default(),
        inversion_time_ms: timing(tags::INVERSION_TIME),
        echo_time_ms: timing(tags::ECHO_TIME).or_else(|| timing(tags::EFFECTIVE_ECHO_TIME)),
        repetition_time_ms: timing(tags::REPETITION_TIME),
    };
    let meta = Metadata {
        modality: text(obj, tags::MODALITY),
        sequence: Default::default(),
        acquisition_date: text(obj, tags::ACQUISITION_DATE)
            .or_else(|| text(obj, tags::SERIES_DATE))
            .or_else(|| text(obj, tags::STUDY_DATE))
            .and_then(|d| iso_date(&d)),
        scanner: match (
            text(obj, tags::MANUFACTURER),
            text(obj, tags::MANUFACTURER_MODEL_NAME),
        ) {
            (Some(a), Some(b)) => Some(format!("{a} {b}")),
            (a, b) => a.or(b),
        },
        field_strength_tesla: float(obj, tags::MAGNETIC_FIELD_STRENGTH),
        patient_age_years: text(obj, tags::PATIENT_AGE).and_then(|a| age_years(&a)),
        patient_sex: text(obj, tags::PATIENT_SEX).filter(|s| matches!(s.as_str(), "M" | "F" | "O")),
    };
    Ok(FileHeader {
        series_uid,
        series_number: int(obj, tags::SERIES_NUMBER),
        description,
        instance_number: int(obj, tags::INSTANCE_NUMBER).unwrap_or(0),
        rows: rows as usize,
        columns: columns as usize,
        pixel_spacing: [spacing[0], spacing[1]],
        orientation: std::array::from_fn(|i| orientation[i]),
        frames,
        slice_thickness: float(obj, tags::SLICE_THICKNESS).or_else(|| {
            group_attr(first, tags::PIXEL_MEASURES_SEQUENCE, tags::SLICE_THICKNESS)
                .and_then(|v| v.first().copied())
        }),
        gantry_tilt: float(obj, tags::GANTRY_DETECTOR_TILT).unwrap_or(0.0),
        mosaic: image_type.contains("MOSAIC"),
        samples_per_pixel: int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1) as u16,
        acquisition,
        meta,
    })
}

/// DICOM DA (YYYYMMDD) to ISO.
fn iso_date(da: &str) -> Option<String> {
    let d: String = da.chars().filter(|c| c.is_ascii_digit()).collect();
    (d.len() == 8).then(|| format!("{}-{}-{}", &d[0..4], &d[4..6], &d[6..8]))
}

/// DICOM AS ("045Y", "006M") to years.
fn age_years(age: &str) -> Option<f64> {
    let (n, unit) = age.split_at(age.len().checked_sub(1)?);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "Y" => n,
        "M" => n / 12.0,
        "W" => n / 52.0,
        "D" => n / 365.25,
        _ => return None,
    })
}
