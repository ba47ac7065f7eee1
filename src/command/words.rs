//! POSIX-shell-like splitting of the SSH exec string into words.
//!
//! OpenSSH sends the remote command as one string (`ssh host pub 'my topic'`
//! arrives as `pub 'my topic'`), and users expect it to be split the way a
//! shell on the server would split it. Only quoting is interpreted: no
//! variables, globs, comments, or operators; `$`, `*`, `#`, `|` are ordinary
//! characters.

use super::UsageError;

/// Splits `exec` into words like a POSIX shell:
///
/// - unquoted spaces, tabs, newlines (and carriage returns) separate words;
/// - `'...'` is literal (no escapes inside);
/// - `"..."` is literal except that `\"`, `\\`, `` \` `` and `\$` stand for
///   the second character, and backslash-newline is removed;
/// - an unquoted backslash makes the next character literal, backslash-newline
///   is removed, and a backslash at the very end stands for itself (as in
///   `sh -c`);
/// - quotes can produce empty words: `''` and `""` are one empty word.
///
/// An unterminated quote is [`UsageError::UnbalancedQuote`].
pub fn split_words(exec: &str) -> Result<Vec<String>, UsageError> {
    let mut words = Vec::new();
    let mut word = String::new();
    // True once the current word has begun, even if it is still empty (`''`).
    let mut in_word = false;
    let mut chars = exec.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => word.push(ch),
                        None => return Err(UsageError::UnbalancedQuote),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '`' | '$')) => word.push(ch),
                            Some('\n') => {}
                            Some(ch) => {
                                word.push('\\');
                                word.push(ch);
                            }
                            None => return Err(UsageError::UnbalancedQuote),
                        },
                        Some(ch) => word.push(ch),
                        None => return Err(UsageError::UnbalancedQuote),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(ch) => {
                    in_word = true;
                    word.push(ch);
                }
                None => {
                    in_word = true;
                    word.push('\\');
                }
            },
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}
