//! The TOML users file: `Users::parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sshpipe::identity::{Users, valid_user_name};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Users::parse(text) {
        Ok(users) => {
            // Every listed name is a valid user name, and known as a user.
            let names: Vec<&str> = users.names().collect();
            for name in &names {
                assert!(valid_user_name(name), "accepted bad name {name:?}");
                assert!(users.is_user(name));
            }
            assert_eq!(users.is_empty(), names.is_empty());
        }
        Err(e) => {
            // Every users-file error is one line (it goes into a log line).
            let msg = e.to_string();
            assert!(!msg.contains(['\n', '\r']), "multi-line error {msg:?}");
        }
    }
});
