//! Training on generator samples: checkpoints, validation, resumption.

use gyri_analysis::synth::anatomy::class;
use gyri_analysis::train::{read_state, train, Anatomy, TrainConfig};
use gyri_analysis::unet::UNetConfig;

fn phantom() -> Anatomy {
    let dims = [24, 24, 24];
    let mut labels = vec![0u8; 24 * 24 * 24];
    for a in 0..24 {
        for b in 0..24 {
            for c in 0..24 {
                let d = [a, b, c]
                    .iter()
                    .map(|&i: &usize| i.min(23 - i))
                    .min()
                    .unwrap();
                labels[(a * 24 + b) * 24 + c] = match d {
                    0 => class::BACKGROUND,
                    1 => class::HEAD,
                    2..=3 => class::CSF,
                    4..=6 => class::GREY_MATTER,
                    _ => class::WHITE_MATTER,
                };
            }
        }
    }
    Anatomy {
        name: "phantom".into(),
        labels,
        dims,
    }
}

fn config(steps: usize) -> TrainConfig {
    TrainConfig {
        unet: UNetConfig {
            in_channels: 2,
            classes: 5,
            base: 4,
            levels: 2,
        },
        patch: 16,
        steps,
        learning_rate: 1e-3,
        seed: 1,
        validation_seed: 1_000_000,
        validation_samples: 2,
        validate_every: 2,
        checkpoint_every: 2,
        class_weights: Some(vec![1.0, 1.0, 1.0, 1.0, 3.0]),
    }
}

#[test]
fn training_checkpoints_validates_and_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let anatomy = [phantom()];
    let mut seen = vec![];
    let state = train(&config(3), &anatomy, dir.path(), "test", &mut |p| {
        assert!(p.loss.is_finite());
        seen.push(p.step)
    })
    .unwrap();
    assert_eq!(seen, vec![1, 2, 3]);
    assert_eq!(state.step, 3);
    assert_eq!(
        state.validations.iter().map(|v| v.step).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert!(state.validations[0]
        .dice
        .iter()
        .flatten()
        .all(|d| (0.0..=1.0).contains(d)));
    assert!(dir.path().join("checkpoint.safetensors").exists());
    let saved = read_state(&dir.path().join("checkpoint.safetensors")).unwrap();
    // (JSON keeps floats to within their last digit)
    assert_eq!(
        (&saved.config, saved.step, &saved.runs),
        (&state.config, state.step, &state.runs)
    );
    for (a, b) in saved.validations.iter().zip(&state.validations) {
        assert_eq!(a.step, b.step);
        for (x, y) in a.dice.iter().zip(&b.dice) {
            assert!(x.zip(*y).is_none_or(|(x, y)| (x - y).abs() < 1e-12));
            assert_eq!(x.is_some(), y.is_some());
        }
    }
    assert_eq!(saved.anatomies, vec!["phantom".to_string()]);

    // a longer run continues from step 3
    let mut seen = vec![];
    let state = train(&config(5), &anatomy, dir.path(), "test", &mut |p| {
        seen.push(p.step)
    })
    .unwrap();
    assert_eq!(seen, vec![4, 5]);
    assert_eq!(
        state.validations.iter().map(|v| v.step).collect::<Vec<_>>(),
        vec![2, 3, 4, 5]
    );
    assert_eq!(
        state.runs.iter().map(|r| r.from_step).collect::<Vec<_>>(),
        vec![0, 3]
    );
    assert_eq!(state.runs[1].learning_rate, Some(1e-3));
    assert_eq!(state.version(), "b4l2-s5");

    // another network cannot resume this checkpoint
    let mut other = config(6);
    other.unet.base = 8;
    let err = train(&other, &anatomy, dir.path(), "test", &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("another network"), "{err}");
    let mut odd = config(6);
    odd.patch = 15;
    assert!(train(&odd, &anatomy, dir.path(), "test", &mut |_| {}).is_err());
    let mut short = config(6);
    short.class_weights = Some(vec![1.0; 3]);
    let err = train(&short, &anatomy, dir.path(), "test", &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("3 class weights for 5 classes"), "{err}");
}
