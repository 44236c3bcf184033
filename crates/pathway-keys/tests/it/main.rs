//! Integration tests of `pathway-keys`.

mod keys;
