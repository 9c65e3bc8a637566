//! Smooth random fields for the generator: values on a coarse grid of
//! nodes spread from a volume's first voxel to its last, interpolated
//! trilinearly at every voxel.

/// Interpolation weights along one axis of the grid.
pub(crate) type Node = (usize, usize, f64);

/// For voxel `i` of `n` along an axis, the two nodes of a `nodes`-node
/// axis around it and the weight of the second.
pub(crate) fn node(i: usize, n: usize, nodes: usize) -> Node {
    let x = if n > 1 {
        i as f64 * (nodes - 1) as f64 / (n - 1) as f64
    } else {
        0.0
    };
    let i0 = (x.floor() as usize).min(nodes - 2);
    (i0, i0 + 1, x - i0 as f64)
}

/// `value(x, y, z)` at the nodes, interpolated between them.
pub(crate) fn trilinear(
    value: impl Fn(usize, usize, usize) -> f64,
    (a0, a1, ta): Node,
    (b0, b1, tb): Node,
    (c0, c1, tc): Node,
) -> f64 {
    let lerp = |p: f64, q: f64, t: f64| p + t * (q - p);
    let plane = |a| {
        lerp(
            lerp(value(a, b0, c0), value(a, b0, c1), tc),
            lerp(value(a, b1, c0), value(a, b1, c1), tc),
            tb,
        )
    };
    lerp(plane(a0), plane(a1), ta)
}
