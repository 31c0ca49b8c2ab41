//! The function refuses to start, naming what is wrong, when its configuration is incomplete.

use std::process::Command;

fn start(env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_users-api"))
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("running users-api");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

const GOOD_SECRET: &str = "a-cursor-secret-of-at-least-32-characters";

#[test]
fn a_missing_or_weak_setting_is_named_and_the_function_does_not_start() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "CURSOR_SECRET"),
        (
            &[("CURSOR_SECRET", "short")],
            "CURSOR_SECRET is invalid: must be at least 32 characters",
        ),
        (&[("CURSOR_SECRET", GOOD_SECRET)], "TABLE_NAME"),
        (
            &[("CURSOR_SECRET", GOOD_SECRET), ("TABLE_NAME", "users")],
            "BUCKET_NAME",
        ),
        (
            &[
                ("CURSOR_SECRET", GOOD_SECRET),
                ("TABLE_NAME", "users"),
                ("BUCKET_NAME", "files"),
            ],
            "JWT_HS256_SECRET or JWT_PUBLIC_KEY_PEM",
        ),
        (
            &[
                ("CURSOR_SECRET", GOOD_SECRET),
                ("TABLE_NAME", "users"),
                ("BUCKET_NAME", "files"),
                ("JWT_HS256_SECRET", "weak"),
            ],
            "JWT_HS256_SECRET is invalid",
        ),
        (
            &[
                ("CURSOR_SECRET", GOOD_SECRET),
                ("TABLE_NAME", "users"),
                ("BUCKET_NAME", "files"),
                ("JWT_HS256_SECRET", GOOD_SECRET),
                ("MAX_BODY_BYTES", "lots"),
            ],
            "MAX_BODY_BYTES is invalid",
        ),
        (
            &[
                ("CURSOR_SECRET", GOOD_SECRET),
                ("TABLE_NAME", "users"),
                ("BUCKET_NAME", "files"),
                ("JWT_HS256_SECRET", GOOD_SECRET),
            ],
            "IMPORT_QUEUE_URL",
        ),
    ];
    for (env, expected) in cases {
        let (ok, text) = start(env);
        assert!(!ok, "started with {env:?}");
        assert!(
            text.contains(expected),
            "{env:?}: expected {expected:?} in:\n{text}"
        );
        assert!(!text.contains(GOOD_SECRET), "a secret was printed:\n{text}");
    }
}
