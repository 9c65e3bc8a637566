//! A check of every declared length in a DICOM file before dicom-rs reads
//! it. dicom-rs reserves memory for an element's value by the length its
//! header declares, so a 100 kB file declaring a 3 GB element would make it
//! try to allocate 3 GB (found by fuzzing). This walks the element headers
//! (without decoding values) and refuses any length that runs past the end
//! of the file, or past the item or sequence that holds it.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

/// What the walk found, when every length up to the pixel data fits.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Walk {
    /// Where the top-level pixel data element ends, when the walk reached
    /// it.
    pub pixel_data_end: Option<usize>,
    /// Whether a length after the pixel data runs past the end: what
    /// follows the pixel data should not be read.
    pub damaged_after_pixel_data: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Syntax {
    ExplicitLittle,
    ExplicitBig,
    ImplicitLittle,
}

const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_END: (u16, u16) = (0xFFFE, 0xE00D);
const SEQUENCE_END: (u16, u16) = (0xFFFE, 0xE0DD);
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
const UNDEFINED: u32 = u32::MAX;

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    big: bool,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u16(&mut self) -> Option<u16> {
        let s: [u8; 2] = self.take(2)?.try_into().ok()?;
        Some(if self.big {
            u16::from_be_bytes(s)
        } else {
            u16::from_le_bytes(s)
        })
    }
    fn u32(&mut self) -> Option<u32> {
        let s: [u8; 4] = self.take(4)?.try_into().ok()?;
        Some(if self.big {
            u32::from_be_bytes(s)
        } else {
            u32::from_le_bytes(s)
        })
    }
}

/// Whether an explicit VR has the 4-byte length form. A VR that is not one
/// of the standard's is read as UN by dicom-rs, which has that form too.
fn long_length(vr: &[u8]) -> bool {
    let short = matches!(
        vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    );
    !short
}

/// Walks the file (`bytes`: the whole file, preamble or not).
pub fn check(bytes: &[u8]) -> Result<Walk, String> {
    let start = if bytes.get(128..132) == Some(b"DICM") {
        132
    } else if bytes.get(0..4) == Some(b"DICM") {
        4
    } else {
        // No meta header: dicom-rs will refuse the file itself.
        return Ok(Walk::default());
    };
    // The meta group is always explicit VR little endian. dicom-rs reads
    // it as its group length (0002,0000) says: elements of any group until
    // that many bytes are consumed; the data set starts there.
    let mut r = Reader {
        b: bytes,
        pos: start,
        big: false,
    };
    let mut syntax = Syntax::ExplicitLittle;
    let end_meta = "the file ends in its meta header";
    let (Some((0x0002, 0x0000)), Some(b"UL"), Some(4)) = (
        r.u16().zip(r.u16()),
        r.take(2).map(|v| [v[0], v[1]]).as_ref(),
        r.u16(),
    ) else {
        // No usable group length: dicom-rs refuses the file itself.
        return Ok(Walk::default());
    };
    let group_length = r.u32().ok_or(end_meta)? as usize;
    let meta_start = r.pos;
    while r.pos - meta_start < group_length {
        let (group, element) = r.u16().zip(r.u16()).ok_or(end_meta)?;
        let vr = r.take(2).ok_or(end_meta)?.to_vec();
        let len = if long_length(&vr) {
            r.take(2);
            r.u32().ok_or(end_meta)?
        } else {
            u32::from(r.u16().ok_or(end_meta)?)
        };
        if len == UNDEFINED {
            return Ok(Walk::default()); // refused by dicom-rs
        }
        let len = len as usize;
        let value = r.take(len).ok_or_else(|| {
            format!("the meta element ({group:04X},{element:04X}) declares {len} bytes past the end of the file")
        })?;
        if (group, element) == (0x0002, 0x0010) {
            let uid = String::from_utf8_lossy(value);
            match uid.trim_end_matches(['\0', ' ']) {
                "1.2.840.10008.1.2" => syntax = Syntax::ImplicitLittle,
                "1.2.840.10008.1.2.2" => syntax = Syntax::ExplicitBig,
                // Deflated: the data set is compressed; dicom-rs inflates
                // it within the file-size limit.
                "1.2.840.10008.1.2.1.99" => return Ok(Walk::default()),
                _ => {}
            }
        }
    }
    r.big = syntax == Syntax::ExplicitBig;
    walk(r, syntax)
}

fn walk(mut r: Reader, syntax: Syntax) -> Result<Walk, String> {
    let n = r.b.len();
    // End offsets of the sequences and items the walk is inside.
    let mut open: Vec<usize> = Vec::new();
    let mut pixel_data_end = None;
    loop {
        while open
            .last()
            .is_some_and(|&end| end != usize::MAX && end <= r.pos)
        {
            open.pop();
        }
        if r.pos == n {
            return Ok(Walk {
                pixel_data_end,
                damaged_after_pixel_data: false,
            });
        }
        let at = r.pos;
        let bad = |what: String| -> Result<Walk, String> {
            match pixel_data_end {
                Some(end) if at >= end => Ok(Walk {
                    pixel_data_end,
                    damaged_after_pixel_data: true,
                }),
                _ => Err(what),
            }
        };
        let (Some(group), Some(element)) = (r.u16(), r.u16()) else {
            return bad(format!(
                "the file ends inside an element header at byte {at}"
            ));
        };
        let tag = (group, element);
        let limit = open.iter().copied().min().unwrap_or(n).min(n);
        if tag == ITEM || tag == ITEM_END || tag == SEQUENCE_END {
            let Some(len) = r.u32() else {
                return bad(format!("the file ends inside an item header at byte {at}"));
            };
            match tag {
                ITEM if len == UNDEFINED => open.push(usize::MAX),
                ITEM if (len as usize) <= limit.saturating_sub(r.pos) => {
                    open.push(r.pos + len as usize)
                }
                ITEM => {
                    return bad(format!(
                        "an item at byte {at} declares {len} bytes, more than remain"
                    ))
                }
                _ => {
                    // A delimiter closes the innermost undefined-length
                    // item or sequence.
                    if let Some(i) = open.iter().rposition(|&e| e == usize::MAX) {
                        open.truncate(i);
                    }
                }
            }
            continue;
        }
        let (is_sequence, len) = if syntax == Syntax::ImplicitLittle {
            let Some(len) = r.u32() else {
                return bad(format!(
                    "the file ends inside an element header at byte {at}"
                ));
            };
            let sq = len == UNDEFINED
                || StandardDataDictionary
                    .by_tag(Tag(group, element))
                    .is_some_and(|e| e.vr().relaxed() == VR::SQ);
            (sq, len)
        } else {
            let Some(vr) = r.take(2).map(|v| [v[0], v[1]]) else {
                return bad(format!(
                    "the file ends inside an element header at byte {at}"
                ));
            };
            let len = if long_length(&vr) {
                r.take(2);
                r.u32()
            } else {
                r.u16().map(u32::from)
            };
            let Some(len) = len else {
                return bad(format!(
                    "the file ends inside an element header at byte {at}"
                ));
            };
            if len == UNDEFINED && !matches!(&vr, b"SQ" | b"OB" | b"OW") {
                // A sequence of unknown VR, encoded implicitly inside:
                // dicom-rs bounds what it reads there by its delimiters.
                return Ok(Walk {
                    pixel_data_end,
                    damaged_after_pixel_data: false,
                });
            }
            (&vr == b"SQ", len)
        };
        let remaining = limit.saturating_sub(r.pos);
        if is_sequence {
            if len == UNDEFINED {
                open.push(usize::MAX);
            } else if len as usize <= remaining {
                open.push(r.pos + len as usize);
            } else {
                return bad(format!(
                    "the sequence ({group:04X},{element:04X}) declares {len} bytes, more than the {remaining} that remain"
                ));
            }
            continue;
        }
        if len == UNDEFINED {
            // Encapsulated (compressed) pixel data: fragments until the
            // sequence delimiter, each within the file.
            loop {
                let frag_at = r.pos;
                let (Some(g), Some(e), Some(flen)) = (r.u16(), r.u16(), r.u32()) else {
                    return bad(format!(
                        "the file ends inside the fragments of ({group:04X},{element:04X})"
                    ));
                };
                if (g, e) == SEQUENCE_END {
                    break;
                }
                if (g, e) != ITEM || flen as usize > n - r.pos {
                    return bad(format!(
                        "a pixel data fragment at byte {frag_at} is damaged"
                    ));
                }
                r.pos += flen as usize;
            }
        } else if len as usize <= remaining {
            r.pos += len as usize;
        } else {
            return bad(format!(
                "the element ({group:04X},{element:04X}) declares {len} bytes, more than the {remaining} that remain"
            ));
        }
        if tag == PIXEL_DATA && open.is_empty() {
            pixel_data_end = Some(r.pos);
        }
    }
}
