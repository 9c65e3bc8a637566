//! Geometry against answers known by construction.

use gyri_imaging::geometry::{
    bounding_box, crop_or_pad, label_volume_ml, reorient_to_ras, resample, Interpolation,
};
use gyri_imaging::{Affine, Volume, VoxelData};

/// A volume whose voxel value is its linear index.
fn indexed(dims: [usize; 3], affine: Affine) -> Volume {
    let n = dims.iter().product::<usize>();
    Volume::new(
        dims,
        affine,
        VoxelData::F32((0..n).map(|x| x as f32).collect()),
    )
    .unwrap()
}

fn world_of_value(v: &Volume) -> std::collections::HashMap<u32, [f64; 3]> {
    let mut map = std::collections::HashMap::new();
    for k in 0..v.dims[2] {
        for j in 0..v.dims[1] {
            for i in 0..v.dims[0] {
                let value = v.data.get_f32(v.index(i, j, k)) as u32;
                map.insert(value, v.affine.apply([i as f64, j as f64, k as f64]));
            }
        }
    }
    map
}

#[test]
fn reorienting_an_lps_sagittal_volume_keeps_every_voxel_in_place() {
    // Voxel axes: i → posterior, j → inferior, k → left (a sagittal LPS-like scan).
    let affine = Affine([
        [0.0, 0.0, -1.2, 80.0],
        [-1.0, 0.0, 0.0, 120.0],
        [0.0, -0.9, 0.0, 60.0],
        [0.0, 0.0, 0.0, 1.0],
    ]);
    let v = indexed([5, 4, 3], affine);
    let ras = reorient_to_ras(&v).unwrap();
    assert_eq!(ras.dims, [3, 5, 4]);
    for r in 0..3 {
        for c in 0..3 {
            let x = ras.affine.0[r][c];
            assert!(
                if r == c { x > 0.0 } else { x == 0.0 },
                "RAS-diagonal affine: {:?}",
                ras.affine
            );
        }
    }
    let before = world_of_value(&v);
    let after = world_of_value(&ras);
    for (value, p) in before {
        let q = after[&value];
        assert!(
            (0..3).all(|d| (p[d] - q[d]).abs() < 1e-9),
            "voxel {value} moved"
        );
    }
}

#[test]
fn resampling_onto_the_same_grid_changes_nothing() {
    let v = indexed([6, 5, 4], Affine::scaling([1.0, 2.0, 3.0]));
    for how in [Interpolation::Linear, Interpolation::Nearest] {
        let r = resample(&v, v.dims, v.affine, how).unwrap();
        assert_eq!(r.data.to_f32(), v.data.to_f32());
    }
}

#[test]
fn trilinear_resampling_is_exact_on_a_linear_ramp() {
    // value = 2x + 3y - z in world millimetres on a 2 mm grid.
    let affine = Affine::scaling([2.0, 2.0, 2.0]);
    let dims = [10, 10, 10];
    let mut data = Vec::new();
    for k in 0..10 {
        for j in 0..10 {
            for i in 0..10 {
                data.push((2.0 * 2.0 * i as f64 + 3.0 * 2.0 * j as f64 - 2.0 * k as f64) as f32);
            }
        }
    }
    let v = Volume::new(dims, affine, VoxelData::F32(data)).unwrap();
    // A 1.5 mm grid shifted by 0.7 mm, inside the source.
    let mut target = Affine::scaling([1.5, 1.5, 1.5]);
    target.0[0][3] = 0.7;
    target.0[1][3] = 0.7;
    target.0[2][3] = 0.7;
    let r = resample(&v, [11, 11, 11], target, Interpolation::Linear).unwrap();
    for k in 0..11 {
        for j in 0..11 {
            for i in 0..11 {
                let p = target.apply([i as f64, j as f64, k as f64]);
                let expected = 2.0 * p[0] + 3.0 * p[1] - p[2];
                let got = r.data.get_f32(r.index(i, j, k)) as f64;
                assert!(
                    (got - expected).abs() < 1e-3,
                    "at {p:?}: {got} vs {expected}"
                );
            }
        }
    }
}

#[test]
fn nearest_resampling_keeps_labels_and_their_type() {
    let labels: Vec<u8> = (0..64).map(|x| (x % 3) as u8).collect();
    let v = Volume::new([4, 4, 4], Affine::IDENTITY, VoxelData::U8(labels)).unwrap();
    let r = resample(
        &v,
        [8, 8, 8],
        Affine::scaling([0.5, 0.5, 0.5]),
        Interpolation::Nearest,
    )
    .unwrap();
    let VoxelData::U8(out) = &r.data else {
        panic!("labels stay u8")
    };
    assert!(out.iter().all(|&x| x < 3));
}

#[test]
fn cropping_to_the_bounding_box_keeps_world_positions() {
    let mut data = vec![0.0f32; 20 * 20 * 20];
    let v0 = Volume::new(
        [20, 20, 20],
        Affine::scaling([1.0, 1.0, 1.0]),
        VoxelData::F32(vec![0.0; 8000]),
    )
    .unwrap();
    for (i, j, k) in [(3, 4, 5), (10, 12, 14)] {
        data[v0.index(i, j, k)] = 7.0;
    }
    let mut affine = Affine::scaling([0.8, 0.8, 1.2]);
    affine.0[0][3] = -10.0;
    let v = Volume::new([20, 20, 20], affine, VoxelData::F32(data)).unwrap();
    let (start, dims) = bounding_box(&v, 0.5).unwrap();
    assert_eq!(start, [3, 4, 5]);
    assert_eq!(dims, [8, 9, 10]);
    let c = crop_or_pad(&v, start, dims).unwrap();
    assert_eq!(c.data.get_f32(c.index(0, 0, 0)), 7.0);
    assert_eq!(c.data.get_f32(c.index(7, 8, 9)), 7.0);
    assert_eq!(
        c.affine.apply([0.0, 0.0, 0.0]),
        v.affine.apply([3.0, 4.0, 5.0])
    );
    // Padding: a grid larger than the source, zeros outside.
    let p = crop_or_pad(&v, [-2, -2, -2], [24, 24, 24]).unwrap();
    assert_eq!(p.data.get_f32(p.index(0, 0, 0)), 0.0);
    assert_eq!(p.data.get_f32(p.index(5, 6, 7)), 7.0);
}

#[test]
fn label_volume_is_count_times_voxel_volume() {
    // A 10×10×10 block of label 2 in 0.5×0.5×2 mm voxels = 500 mm³ = 0.5 ml.
    let mut labels = vec![0u16; 30 * 30 * 30];
    let v = Volume::new(
        [30, 30, 30],
        Affine::scaling([0.5, 0.5, 2.0]),
        VoxelData::U16(vec![0; 27000]),
    )
    .unwrap();
    for k in 5..15 {
        for j in 5..15 {
            for i in 5..15 {
                labels[v.index(i, j, k)] = 2;
            }
        }
    }
    let v = Volume::new(v.dims, v.affine, VoxelData::U16(labels)).unwrap();
    assert!((label_volume_ml(&v, 2) - 0.5).abs() < 1e-12);
    assert_eq!(label_volume_ml(&v, 3), 0.0);
}
