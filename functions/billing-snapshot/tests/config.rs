//! The function refuses to start, naming what is wrong, when its configuration is incomplete.

use std::process::Command;

fn start(env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_billing-snapshot"))
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("running billing-snapshot");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn a_missing_or_bad_setting_is_named_and_the_function_does_not_start() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "TABLE_NAME"),
        (&[("TABLE_NAME", "users")], "BUCKET_NAME"),
        (
            &[
                ("TABLE_NAME", "users"),
                ("BUCKET_NAME", "files"),
                ("SNAPSHOT_CONCURRENCY", "0"),
            ],
            "SNAPSHOT_CONCURRENCY is invalid: must be from 1 to 64",
        ),
    ];
    for (env, expected) in cases {
        let (ok, text) = start(env);
        assert!(!ok, "started with {env:?}");
        assert!(
            text.contains(expected),
            "{env:?}: expected {expected:?} in:\n{text}"
        );
    }
}
