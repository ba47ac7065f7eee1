//! HTTP tokens (SPEC §11.1): the SHA-256 of each secret, never the secret,
//! with its record as JSON. The table is created on first write, so stores
//! made before tokens existed open unchanged.

use redb::{ReadableTable, TableError};

use super::{Store, StoreError, TOKENS};
use crate::tokens::TokenStore;

impl TokenStore for Store {
    fn load_tokens(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.read(|txn| {
            let table = match txn.open_table(TOKENS) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for row in table.iter()? {
                let (hash, json) = row?;
                out.push((hash.value().to_string(), json.value().to_string()));
            }
            Ok(out)
        })
    }

    /// One node: `Tokens` checks the bound under its lock.
    fn put_token(
        &self,
        hash: &str,
        json: &str,
        _user: &str,
        _limit: usize,
    ) -> Result<bool, StoreError> {
        self.write(|txn| {
            txn.open_table(TOKENS)?.insert(hash, json)?;
            Ok(())
        })?;
        Ok(true)
    }

    fn remove_token(&self, hash: &str, _user: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(TOKENS)?.remove(hash)?;
            Ok(())
        })
    }
}
