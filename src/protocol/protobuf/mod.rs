//! STUB for integration type-checking only (replaced by helper A's module at merge).
#![allow(missing_docs, dead_code, unused_variables)]
use serde_json::Value;
use std::fmt;
#[derive(Debug)]
pub struct Protos;
#[derive(Debug)]
pub struct Message;
#[derive(Debug)]
pub struct ProtosError;
impl fmt::Display for ProtosError { fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str("stub") } }
impl std::error::Error for ProtosError {}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoEncodeError;
impl fmt::Display for ProtoEncodeError { fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str("stub") } }
impl std::error::Error for ProtoEncodeError {}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoDecodeError;
impl fmt::Display for ProtoDecodeError { fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str("stub") } }
impl std::error::Error for ProtoDecodeError {}
impl Protos {
    pub fn from_json(server: &str, client: &str) -> Result<Protos, ProtosError> { Err(ProtosError) }
    pub fn load_dir(dir: &std::path::Path) -> Result<Protos, ProtosError> { Err(ProtosError) }
    pub fn version(&self) -> &str { "" }
    pub fn handshake_json(&self) -> &str { "" }
    pub fn server(&self, route: &str) -> Option<&Message> { None }
    pub fn client(&self, route: &str) -> Option<&Message> { None }
}
impl Message {
    pub fn encoded_len(&self, value: &Value) -> Result<usize, ProtoEncodeError> { Err(ProtoEncodeError) }
    pub fn encode(&self, value: &Value, out: &mut Vec<u8>) -> Result<(), ProtoEncodeError> { Err(ProtoEncodeError) }
    pub fn decode(&self, bytes: &[u8]) -> Result<Value, ProtoDecodeError> { Err(ProtoDecodeError) }
}
