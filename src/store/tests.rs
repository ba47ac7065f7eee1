//! The store on its own: what is linked survives a reopen, what is not
//! linked disappears, a damaged body is found, an old store is upgraded,
//! and a bad file is an error that names it — never a panic, never a reset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::*;
use crate::topic::AccessList;

fn msg(seq: u64, data_id: u64, size: u64, chunks: u32) -> StoredMessage {
    StoredMessage {
        seq,
        topic: "alice/files".into(),
        user: "alice".into(),
        size,
        created_ms: 1,
        data_id,
        chunks,
    }
}

/// Writes and links a message of the given chunks.
fn put(store: &Store, seq: u64, data_id: u64, parts: &[&[u8]]) -> StoredMessage {
    let mut w = store.create_body(data_id).unwrap();
    for p in parts {
        w.write_chunk(p).unwrap();
    }
    let (size, chunks) = w.finish().unwrap();
    let m = msg(seq, data_id, size, chunks);
    store.link(&m).unwrap();
    m
}

fn read_all(store: &Store, m: &StoredMessage) -> Result<Vec<u8>, Damage> {
    let body = store.open_body(m)?;
    body.verify()?;
    let (mut out, mut offset) = (Vec::new(), 0);
    for i in 0..body.chunks() {
        let (chunk, next) = body.read_chunk(i, offset)?;
        out.extend_from_slice(&chunk);
        offset = next;
    }
    Ok(out)
}

fn open_err(dir: &Path) -> String {
    match Store::open(dir) {
        Ok(_) => panic!("the store opened"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn linked_messages_and_acls_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let m = {
        let store = Store::open(dir.path()).unwrap();
        let m = put(&store, 1, 7, &[b"abc", b"def"]);
        let list = AccessList(vec!["bob".into(), "SHA256:xyz".into()]);
        store.put_acl("alice/files", Some(&list)).unwrap();
        store.put_acl("alice/gone", Some(&list)).unwrap();
        store.put_acl("alice/gone", None).unwrap();
        m
    };
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.load_messages().unwrap(), vec![m.clone()]);
    assert_eq!(read_all(&store, &m).unwrap(), b"abcdef");
    let acls = store.load_acls().unwrap();
    assert_eq!(acls.len(), 1);
    assert_eq!(acls["alice/files"].0, vec!["bob", "SHA256:xyz"]);
    store.remove_message(1, 7).unwrap();
    assert!(store.load_messages().unwrap().is_empty());
    assert!(!dir.path().join("queue/7.msg").exists());
    assert!(store.health().available);
}

#[test]
fn unlinked_bodies_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        put(&store, 1, 3, &[b"kept"]);
        // Finished but never linked (a crash between the two).
        let mut w = store.create_body(4).unwrap();
        w.write_chunk(b"orphan").unwrap();
        w.finish().unwrap();
        // Dropped unfinished: removed at once.
        let mut w = store.create_body(5).unwrap();
        w.write_chunk(b"cut off").unwrap();
        drop(w);
        assert!(!dir.path().join("queue/5.msg").exists());
        assert!(dir.path().join("queue/4.msg").exists());
    }
    let store = Store::open(dir.path()).unwrap();
    assert!(!dir.path().join("queue/4.msg").exists());
    let kept = store.load_messages().unwrap();
    assert_eq!(read_all(&store, &kept[0]).unwrap(), b"kept");
}

#[test]
fn a_flipped_byte_truncation_or_a_swapped_chunk_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let m = put(&store, 1, 9, &[&[1u8; 1000], &[2u8; 1000]]);
    let file = dir.path().join("queue/9.msg");
    let good = fs::read(&file).unwrap();

    let mut flipped = good.clone();
    flipped[1500] ^= 0x10;
    fs::write(&file, &flipped).unwrap();
    let d = read_all(&store, &m).unwrap_err();
    assert_eq!(d.chunk, Some(1), "{d}");
    assert!(d.to_string().contains("checksum"), "{d}");

    fs::write(&file, &good[..good.len() - 1]).unwrap();
    assert_eq!(read_all(&store, &m).unwrap_err().chunk, None);

    // The two frames swapped: each has a valid CRC of its own, but not for
    // its place.
    let (a, b) = good.split_at(good.len() / 2);
    fs::write(&file, [b, a].concat()).unwrap();
    assert!(read_all(&store, &m).is_err());

    fs::remove_file(&file).unwrap();
    assert!(read_all(&store, &m).unwrap_err().what.contains("missing"));
}

#[test]
fn a_tombstone_removes_its_row_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        put(&store, 1, 5, &[&[3u8; 10_000]]);
        put(&store, 2, 6, &[b"stays"]);
        store.mark_delivered(5).unwrap();
        assert!(!dir.path().join("queue/5.msg").exists());
        let tomb = dir.path().join("queue/5.delivered");
        assert_eq!(fs::metadata(tomb).unwrap().len(), 0);
    }
    let store = Store::open(dir.path()).unwrap();
    let left = store.load_messages().unwrap();
    assert_eq!(left.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![2]);
    assert!(!dir.path().join("queue/5.delivered").exists());
}

#[test]
fn a_message_set_aside_keeps_its_body_and_its_number() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let m = put(&store, 4, 2, &[b"bad"]);
        let kept = store.set_aside(&m, "chunk 0: checksum mismatch").unwrap();
        assert_eq!(kept, dir.path().join("damaged/4.msg"));
        assert!(kept.exists());
    }
    let store = Store::open(dir.path()).unwrap();
    assert!(store.load_messages().unwrap().is_empty());
    let damaged = store.damaged().unwrap();
    assert_eq!(damaged.len(), 1);
    assert_eq!(damaged[0].msg.seq, 4);
    assert_eq!(damaged[0].reason, "chunk 0: checksum mismatch");
    assert!(dir.path().join("damaged/4.msg").exists());
}

#[test]
fn a_format_1_store_keeps_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(FILE_NAME);
    {
        // What the previous release wrote: bodies as chunks inside redb.
        let db = redb::Database::create(&file).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(ACLS).unwrap();
        txn.open_table(MESSAGES)
            .unwrap()
            .insert(3, ("alice/files", "alice", 6, 1, 8, 2))
            .unwrap();
        let mut chunks = txn.open_table(OLD_CHUNKS).unwrap();
        chunks.insert((8, 0), &b"abc"[..]).unwrap();
        chunks.insert((8, 1), &b"def"[..]).unwrap();
        drop(chunks);
        txn.commit().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let msgs = store.load_messages().unwrap();
    assert_eq!(msgs, vec![msg(3, 8, 6, 2)]);
    assert_eq!(read_all(&store, &msgs[0]).unwrap(), b"abcdef");
    drop(store);
    // Moved once: the old table is gone.
    let db = redb::Database::open(&file).unwrap();
    let txn = db.begin_read().unwrap();
    assert!(txn.open_table(OLD_CHUNKS).is_err());
}

/// A real store file with a message in it, closed.
fn real_store(dir: &Path) -> Vec<u8> {
    let store = Store::open(dir).unwrap();
    put(&store, 1, 1, &[&[7u8; 5000]]);
    store
        .put_acl("alice/files", Some(&AccessList(vec!["bob".into()])))
        .unwrap();
    drop(store);
    fs::read(dir.join(FILE_NAME)).unwrap()
}

#[test]
fn a_garbage_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(FILE_NAME), vec![0x5a; 10_000]).unwrap();
    let err = open_err(dir.path());
    assert!(err.contains(FILE_NAME), "{err}");
    assert!(err.contains("not an sshpipe store"), "{err}");
}

#[test]
fn an_empty_file_is_refused_not_reset() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(FILE_NAME), b"").unwrap();
    let err = open_err(dir.path());
    assert!(
        err.contains(FILE_NAME) && err.contains("empty (0 bytes)"),
        "{err}"
    );
    assert_eq!(fs::metadata(dir.path().join(FILE_NAME)).unwrap().len(), 0);
}

#[test]
fn truncated_and_zeroed_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let good = real_store(dir.path());
    let file = dir.path().join(FILE_NAME);
    for cut in [4096, 64 * 1024, good.len() - 4096, good.len() - 100] {
        fs::write(&file, &good[..good.len() - cut.min(good.len() - 16)]).unwrap();
        let err = open_err(dir.path());
        assert!(
            err.contains(FILE_NAME) && err.contains("damaged"),
            "{cut}: {err}"
        );
    }
    // Every page after the header zeroed, then each written page alone.
    let mut zeroed = good.clone();
    zeroed[4096..].fill(0);
    fs::write(&file, &zeroed).unwrap();
    let err = open_err(dir.path());
    assert!(err.contains(FILE_NAME), "{err}");
    let mut found = 0;
    let written = (1..good.len() / 4096).filter(|p| good[p * 4096..][..4096] != [0u8; 4096]);
    for page in written {
        let f = fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.write_all_at(&good, 0).unwrap();
        f.write_all_at(&[0u8; 4096], (page * 4096) as u64).unwrap();
        drop(f);
        // Either the damage is found, or the page was not in use: then the
        // store opens with its message and list intact.
        match Store::open(dir.path()) {
            Err(e) => {
                assert!(e.to_string().contains(FILE_NAME), "page {page}: {e}");
                found += 1;
            }
            Ok(store) => {
                assert_eq!(store.load_messages().unwrap().len(), 1, "page {page}");
                assert_eq!(store.load_acls().unwrap().len(), 1, "page {page}");
            }
        }
    }
    assert!(found > 0, "no zeroed page was noticed");
}

#[test]
fn a_directory_in_its_place_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join(FILE_NAME)).unwrap();
    let err = open_err(dir.path());
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn a_second_server_on_the_same_dir_is_told_so() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path()).unwrap();
    let err = open_err(dir.path());
    assert!(err.contains("another sshpipe is using it"), "{err}");
}
