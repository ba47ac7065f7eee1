//! The store on its own: what is linked survives a reopen, what is not
//! linked disappears, and a bad file is an error that names it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::topic::AccessList;

fn msg(seq: u64, data_id: u64, chunks: u32) -> StoredMessage {
    StoredMessage {
        seq,
        topic: "alice/files".into(),
        user: "alice".into(),
        size: 3 * u64::from(chunks),
        created_ms: 1,
        data_id,
        chunks,
    }
}

#[test]
fn linked_messages_and_acls_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.put_chunk(7, 0, b"abc").unwrap();
        store.put_chunk(7, 1, b"def").unwrap();
        store.link(&msg(1, 7, 2)).unwrap();
        let list = AccessList(vec!["bob".into(), "SHA256:xyz".into()]);
        store.put_acl("alice/files", Some(&list)).unwrap();
        store.put_acl("alice/gone", Some(&list)).unwrap();
        store.put_acl("alice/gone", None).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.load_messages().unwrap(), vec![msg(1, 7, 2)]);
    assert_eq!(store.chunk(7, 1).unwrap().as_deref(), Some(&b"def"[..]));
    let acls = store.load_acls().unwrap();
    assert_eq!(acls.len(), 1);
    assert_eq!(acls["alice/files"].0, vec!["bob", "SHA256:xyz"]);
    store.remove_message(1, 7).unwrap();
    assert!(store.load_messages().unwrap().is_empty());
    assert_eq!(store.chunk(7, 0).unwrap(), None);
}

#[test]
fn unlinked_chunks_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.put_chunk(3, 0, b"kept").unwrap();
        store.link(&msg(1, 3, 1)).unwrap();
        store.put_chunk(4, 0, b"orphan").unwrap();
        store.put_chunk(4, 1, b"orphan").unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.chunk(4, 0).unwrap(), None);
    assert_eq!(store.chunk(3, 0).unwrap().as_deref(), Some(&b"kept"[..]));
}

#[test]
fn a_garbage_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FILE_NAME), vec![0x5a; 10_000]).unwrap();
    let err = Store::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains(FILE_NAME), "{err}");
}
