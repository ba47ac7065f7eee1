//! Exec strings: `command::parse`, `split_words`, `parse_duration`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sshpipe::command::{self, Command, MAX_EXEC_LEN};

fuzz_target!(|data: &[u8]| {
    let exec = String::from_utf8_lossy(data);

    match command::parse(&exec) {
        Ok(cmd) => {
            // Anything that parses came through split_words without error.
            assert!(exec.len() <= MAX_EXEC_LEN);
            assert!(command::split_words(&exec).is_ok());
            if let Some(common) = cmd.common() {
                if let Some(access) = &common.access {
                    // Entries are split on ',', trimmed, empty ones dropped.
                    for e in access {
                        assert!(!e.is_empty(), "empty access entry from {exec:?}");
                        assert!(!e.contains(','), "unsplit access entry {e:?}");
                        assert_eq!(e.trim(), e, "untrimmed access entry {e:?}");
                    }
                }
            }
            if let Command::Sub(args) = &cmd {
                assert!(args.common.topic.is_some(), "sub without topic: {exec:?}");
            }
        }
        Err(e) => {
            // Every usage error is one line of text, whatever the input.
            let msg = e.to_string();
            assert!(!msg.is_empty());
            assert!(
                !msg.contains(['\n', '\r']),
                "multi-line usage error {msg:?} from {exec:?}"
            );
        }
    }

    if let Ok(words) = command::split_words(&exec) {
        // Without quotes or backslashes, splitting is plain whitespace splitting.
        if !exec.contains(['\'', '"', '\\']) {
            let plain: Vec<&str> = exec
                .split([' ', '\t', '\n', '\r'])
                .filter(|w| !w.is_empty())
                .collect();
            assert_eq!(words, plain, "split of {exec:?}");
        }
        // Splitting never adds text: the words are at most as long as the input.
        assert!(words.iter().map(String::len).sum::<usize>() <= exec.len());
    }

    if let Ok(d) = command::parse_duration(&exec) {
        // Go's Duration.String output reads back to the same duration.
        let shown = command::format_duration(d);
        assert_eq!(
            command::parse_duration(&shown),
            Ok(d),
            "{exec:?} -> {d:?} -> {shown:?}"
        );
        assert!(d.as_nanos() <= i64::MAX as u128);
    }
});
