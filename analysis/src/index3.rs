//! Voxel indices of C-order 3D arrays (last axis fastest).

/// The `(a, b, c)` of linear index `i`.
pub(crate) fn coords(i: usize, dims: [usize; 3]) -> [usize; 3] {
    [
        i / (dims[1] * dims[2]),
        (i / dims[2]) % dims[1],
        i % dims[2],
    ]
}

/// The linear index of `p + d`, if it lies inside the array.
pub(crate) fn offset(dims: [usize; 3], p: [usize; 3], d: [isize; 3]) -> Option<usize> {
    let mut q = [0usize; 3];
    for a in 0..3 {
        let v = p[a] as isize + d[a];
        if v < 0 || v >= dims[a] as isize {
            return None;
        }
        q[a] = v as usize;
    }
    Some((q[0] * dims[1] + q[1]) * dims[2] + q[2])
}
