//! Voxel-to-world affines (RAS+ millimetres), and the NIfTI quaternion
//! encoding of their rotation part.

// Index loops mirror the matrix formulas they implement.
#![allow(clippy::needless_range_loop)]

use serde::{Deserialize, Serialize};

/// A 4×4 affine, row-major: `world = A · [i, j, k, 1]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Affine(pub [[f64; 4]; 4]);

impl Affine {
    pub const IDENTITY: Affine = Affine([
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]);

    /// Voxel sizes `sx, sy, sz` along the axes, at the origin.
    pub fn scaling(spacing: [f64; 3]) -> Affine {
        let mut a = Affine::IDENTITY;
        for (d, s) in spacing.iter().enumerate() {
            a.0[d][d] = *s;
        }
        a
    }

    /// The world position of voxel (i, j, k).
    pub fn apply(&self, p: [f64; 3]) -> [f64; 3] {
        let m = &self.0;
        let mut out = [0.0; 3];
        for (r, o) in out.iter_mut().enumerate() {
            *o = m[r][0] * p[0] + m[r][1] * p[1] + m[r][2] * p[2] + m[r][3];
        }
        out
    }

    pub fn matmul(&self, other: &Affine) -> Affine {
        let mut out = [[0.0; 4]; 4];
        for (r, row) in out.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = (0..4).map(|k| self.0[r][k] * other.0[k][c]).sum();
            }
        }
        Affine(out)
    }

    /// Determinant of the 3×3 linear part: the signed volume of one voxel.
    pub fn det3(&self) -> f64 {
        let m = &self.0;
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    }

    /// The inverse, if the linear part is not singular.
    pub fn inverse(&self) -> Option<Affine> {
        let det = self.det3();
        if !det.is_finite() || det.abs() < 1e-12 {
            return None;
        }
        let m = &self.0;
        let mut inv = [[0.0; 4]; 4];
        inv[0][0] = (m[1][1] * m[2][2] - m[1][2] * m[2][1]) / det;
        inv[0][1] = (m[0][2] * m[2][1] - m[0][1] * m[2][2]) / det;
        inv[0][2] = (m[0][1] * m[1][2] - m[0][2] * m[1][1]) / det;
        inv[1][0] = (m[1][2] * m[2][0] - m[1][0] * m[2][2]) / det;
        inv[1][1] = (m[0][0] * m[2][2] - m[0][2] * m[2][0]) / det;
        inv[1][2] = (m[0][2] * m[1][0] - m[0][0] * m[1][2]) / det;
        inv[2][0] = (m[1][0] * m[2][1] - m[1][1] * m[2][0]) / det;
        inv[2][1] = (m[0][1] * m[2][0] - m[0][0] * m[2][1]) / det;
        inv[2][2] = (m[0][0] * m[1][1] - m[0][1] * m[1][0]) / det;
        for r in 0..3 {
            inv[r][3] = -(0..3).map(|k| inv[r][k] * m[k][3]).sum::<f64>();
        }
        inv[3][3] = 1.0;
        Some(Affine(inv))
    }

    /// Voxel sizes in millimetres (lengths of the columns).
    pub fn spacing(&self) -> [f64; 3] {
        let m = &self.0;
        [0, 1, 2].map(|c| (0..3).map(|r| m[r][c] * m[r][c]).sum::<f64>().sqrt())
    }

    /// Largest absolute difference between two affines' entries.
    pub fn max_abs_diff(&self, other: &Affine) -> f64 {
        let mut d: f64 = 0.0;
        for r in 0..4 {
            for c in 0..4 {
                d = d.max((self.0[r][c] - other.0[r][c]).abs());
            }
        }
        d
    }

    pub fn is_finite(&self) -> bool {
        self.0.iter().flatten().all(|v| v.is_finite())
    }

    /// The NIfTI qform: rotation from the quaternion (b, c, d), voxel sizes,
    /// `qfac` (±1, the sign of the third axis) and the offsets.
    pub fn from_quaternion(
        b: f64,
        c: f64,
        d: f64,
        qfac: f64,
        pixdim: [f64; 3],
        offset: [f64; 3],
    ) -> Affine {
        let a2 = 1.0 - (b * b + c * c + d * d);
        let (a, b, c, d) = if a2 < 1e-7 {
            let n = (b * b + c * c + d * d).sqrt();
            (0.0, b / n, c / n, d / n)
        } else {
            (a2.sqrt(), b, c, d)
        };
        let qfac = if qfac < 0.0 { -1.0 } else { 1.0 };
        let [dx, dy, dz] = pixdim.map(|v| if v > 0.0 { v } else { 1.0 });
        let dz = dz * qfac;
        Affine([
            [
                (a * a + b * b - c * c - d * d) * dx,
                2.0 * (b * c - a * d) * dy,
                2.0 * (b * d + a * c) * dz,
                offset[0],
            ],
            [
                2.0 * (b * c + a * d) * dx,
                (a * a + c * c - b * b - d * d) * dy,
                2.0 * (c * d - a * b) * dz,
                offset[1],
            ],
            [
                2.0 * (b * d - a * c) * dx,
                2.0 * (c * d + a * b) * dy,
                (a * a + d * d - c * c - b * b) * dz,
                offset[2],
            ],
            [0.0, 0.0, 0.0, 1.0],
        ])
    }

    /// The NIfTI quaternion encoding (b, c, d, qfac, pixdim, offset) of the
    /// rotation part, after the reference implementation
    /// (`nifti_mat44_to_quatern`). Shears are lost; the sform keeps them.
    pub fn to_quaternion(&self) -> ([f64; 3], f64, [f64; 3], [f64; 3]) {
        let m = &self.0;
        let offset = [m[0][3], m[1][3], m[2][3]];
        let spacing = self.spacing().map(|s| if s == 0.0 { 1.0 } else { s });
        let mut r = [[0.0; 3]; 3];
        for (row, rr) in r.iter_mut().enumerate() {
            for (col, v) in rr.iter_mut().enumerate() {
                *v = m[row][col] / spacing[col];
            }
        }
        // Make the columns orthonormal (polar decomposition by iteration).
        let r = orthonormalise(r);
        let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
            - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
            + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
        let (qfac, r) = if det < 0.0 {
            let mut r = r;
            for row in r.iter_mut() {
                row[2] = -row[2];
            }
            (-1.0, r)
        } else {
            (1.0, r)
        };
        let (r11, r12, r13) = (r[0][0], r[0][1], r[0][2]);
        let (r21, r22, r23) = (r[1][0], r[1][1], r[1][2]);
        let (r31, r32, r33) = (r[2][0], r[2][1], r[2][2]);
        let trace = r11 + r22 + r33 + 1.0;
        let (a, b, c, d);
        if trace > 0.5 {
            let aa = 0.5 * trace.sqrt();
            a = aa;
            b = 0.25 * (r32 - r23) / aa;
            c = 0.25 * (r13 - r31) / aa;
            d = 0.25 * (r21 - r12) / aa;
        } else {
            let xd = 1.0 + r11 - (r22 + r33);
            let yd = 1.0 + r22 - (r11 + r33);
            let zd = 1.0 + r33 - (r11 + r22);
            if xd > 1.0 {
                let bb = 0.5 * xd.sqrt();
                b = bb;
                c = 0.25 * (r12 + r21) / bb;
                d = 0.25 * (r13 + r31) / bb;
                a = 0.25 * (r32 - r23) / bb;
            } else if yd > 1.0 {
                let cc = 0.5 * yd.sqrt();
                c = cc;
                b = 0.25 * (r12 + r21) / cc;
                d = 0.25 * (r23 + r32) / cc;
                a = 0.25 * (r13 - r31) / cc;
            } else {
                let dd = 0.5 * zd.sqrt();
                d = dd;
                b = 0.25 * (r13 + r31) / dd;
                c = 0.25 * (r23 + r32) / dd;
                a = 0.25 * (r21 - r12) / dd;
            }
        }
        let (b, c, d) = if a < 0.0 { (-b, -c, -d) } else { (b, c, d) };
        ([b, c, d], qfac, spacing, offset)
    }
}

/// Nearest orthonormal matrix (Newton iteration of the polar decomposition).
fn orthonormalise(mut r: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    for _ in 0..30 {
        let inv_t = match invert3(&r) {
            Some(inv) => transpose(&inv),
            None => return r,
        };
        let mut next = [[0.0; 3]; 3];
        let mut change: f64 = 0.0;
        for i in 0..3 {
            for j in 0..3 {
                next[i][j] = 0.5 * (r[i][j] + inv_t[i][j]);
                change = change.max((next[i][j] - r[i][j]).abs());
            }
        }
        r = next;
        if change < 1e-12 {
            break;
        }
    }
    r
}

fn transpose(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut t = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            t[i][j] = m[j][i];
        }
    }
    t
}

fn invert3(m: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let mut a = Affine::IDENTITY;
    for i in 0..3 {
        for j in 0..3 {
            a.0[i][j] = m[i][j];
        }
    }
    let inv = a.inverse()?;
    let mut out = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            out[i][j] = inv.0[i][j];
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quaternion_round_trip_of_an_oblique_flipped_affine() {
        // 10° about z, 20° about x, a flipped third axis, anisotropic voxels.
        let (cz, sz) = (10f64.to_radians().cos(), 10f64.to_radians().sin());
        let (cx, sx) = (20f64.to_radians().cos(), 20f64.to_radians().sin());
        let rz = [[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]];
        let rx = [[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]];
        let spacing = [0.9, 1.1, 3.0];
        let mut a = Affine::IDENTITY;
        for i in 0..3 {
            for j in 0..3 {
                let rot: f64 = (0..3).map(|k| rz[i][k] * rx[k][j]).sum();
                a.0[i][j] = rot * spacing[j] * if j == 2 { -1.0 } else { 1.0 };
            }
        }
        a.0[0][3] = -90.0;
        a.0[1][3] = 126.0;
        a.0[2][3] = -72.0;
        let (q, qfac, pix, off) = a.to_quaternion();
        assert_eq!(qfac, -1.0);
        let back = Affine::from_quaternion(q[0], q[1], q[2], qfac, pix, off);
        assert!(a.max_abs_diff(&back) < 1e-9, "{a:?} vs {back:?}");
    }

    #[test]
    fn inverse_undoes_the_affine() {
        let mut a = Affine::scaling([0.5, 2.0, 3.0]);
        a.0[0][1] = 0.2;
        a.0[1][3] = 7.0;
        let inv = a.inverse().unwrap();
        assert!(a.matmul(&inv).max_abs_diff(&Affine::IDENTITY) < 1e-12);
        assert!((a.det3() - 3.0).abs() < 1e-12);
    }
}
