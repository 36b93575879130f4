//! The handshake (spec §5.3): the client's JSON request, the server's JSON reply.
//!
//! [`process_handshake`] is pinus's `HandshakeCommand.handle` as a pure function: it parses the
//! body, runs the client check and the user hook in pinus's order, and builds the reply body.
//! Sending it, waiting for the ack and closing after an error reply are the connector's job.

use super::dictionary::Dictionary;
use super::json;
use super::package::{encode_package, PackageType};
use super::protobuf::Protos;
use super::PackageError;
use serde_json::{Map, Value};
use std::fmt;
use std::num::NonZeroU32;

/// The handshake reply code (`code` in the reply JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandshakeCode {
    /// 200: accepted; the client must answer with a HANDSHAKE_ACK.
    Ok,
    /// 500: the handshake failed (not JSON, no `sys` object, or the user hook refused).
    Failed,
    /// 501: the client check refused the client's type or version ("client too old").
    OldClient,
}

impl HandshakeCode {
    /// The numeric code: 200, 500 or 501.
    pub const fn as_u16(self) -> u16 {
        match self {
            HandshakeCode::Ok => 200,
            HandshakeCode::Failed => 500,
            HandshakeCode::OldClient => 501,
        }
    }
}

/// Why a handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The body is not JSON (code 500).
    InvalidJson,
    /// The JSON has no `sys` object (code 500). pinus only refuses a *missing or falsy* `sys`
    /// and would go on with `"sys": 1`; a non-object `sys` is refused here too.
    MissingSys,
    /// The client check returned false (code 501).
    ClientRejected,
    /// The user hook returned an error (code 500), or its value could not be serialized.
    HookFailed,
}

impl HandshakeError {
    /// The reply code for this refusal.
    pub const fn code(self) -> HandshakeCode {
        match self {
            HandshakeError::ClientRejected => HandshakeCode::OldClient,
            _ => HandshakeCode::Failed,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeError::InvalidJson => "handshake is not json",
            HandshakeError::MissingSys => "handshake has no sys object",
            HandshakeError::ClientRejected => "client type or version refused",
            HandshakeError::HookFailed => "handshake hook failed",
        })
    }
}

impl std::error::Error for HandshakeError {}

/// A parsed client handshake: the whole JSON value, with accessors for the `sys` fields.
///
/// The official JS client sends
/// `{"sys":{"type":"js-websocket","version":"0.0.1","rsa":{},"protoVersion":0},"user":{…}}`.
/// The accessors return `None` for a field that is missing **or not a string**.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientHandshake {
    /// The whole JSON object; `value["sys"]` is an object (checked by `parse`).
    value: Value,
}

impl ClientHandshake {
    /// Parses a handshake body: JSON whose top level is an object with a `sys` object.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::InvalidJson`] or [`HandshakeError::MissingSys`].
    pub fn parse(body: &[u8]) -> Result<ClientHandshake, HandshakeError> {
        let value: Value = serde_json::from_slice(body).map_err(|_| HandshakeError::InvalidJson)?;
        if !value.get("sys").is_some_and(Value::is_object) {
            return Err(HandshakeError::MissingSys);
        }
        Ok(ClientHandshake { value })
    }

    /// The `sys` object.
    pub fn sys(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        match self.value.get("sys") {
            Some(Value::Object(sys)) => sys,
            // Unreachable: `parse` checked it. Kept total rather than panicking.
            _ => EMPTY.get_or_init(Map::new),
        }
    }

    fn sys_str(&self, key: &str) -> Option<&str> {
        self.sys().get(key).and_then(Value::as_str)
    }

    /// `sys.type`, the client kind (`js-websocket` for the official JS client).
    pub fn client_type(&self) -> Option<&str> {
        self.sys_str("type")
    }

    /// `sys.version`, the client version (`0.0.1` for the official JS client).
    pub fn client_version(&self) -> Option<&str> {
        self.sys_str("version")
    }

    /// `sys.dictVersion`: the dictionary version the client has cached.
    pub fn dict_version(&self) -> Option<&str> {
        self.sys_str("dictVersion")
    }

    /// `sys.protoVersion`: the protobuf version the client has cached (often the number 0).
    pub fn proto_version(&self) -> Option<&Value> {
        self.sys().get("protoVersion")
    }

    /// `user`: the application's free-form part, if present.
    pub fn user(&self) -> Option<&Value> {
        self.value.get("user")
    }

    /// The whole parsed handshake.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Takes the whole parsed handshake.
    pub fn into_value(self) -> Value {
        self.value
    }
}

/// What the server offers in the handshake reply.
///
/// # Examples
///
/// ```
/// use gatehouse::protocol::{Dictionary, HandshakeConfig};
///
/// let dict = Dictionary::new(["chat.chatHandler.say"], ["onChat"]).unwrap();
/// let cfg = HandshakeConfig::new().with_heartbeat(10).with_dictionary(&dict);
/// assert_eq!(cfg.heartbeat(), Some(10));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct HandshakeConfig<'a> {
    heartbeat: Option<NonZeroU32>,
    dictionary: Option<&'a Dictionary>,
    protos: Option<&'a Protos>,
}

impl<'a> HandshakeConfig<'a> {
    /// No heartbeat, no dictionary: the reply is `{"code":200,"sys":{}}`.
    pub const fn new() -> HandshakeConfig<'a> {
        HandshakeConfig {
            heartbeat: None,
            dictionary: None,
            protos: None,
        }
    }

    /// Announces a heartbeat interval in seconds (`sys.heartbeat`). 0 means none, as in pinus
    /// (which tests the option for truthiness).
    pub const fn with_heartbeat(mut self, secs: u32) -> HandshakeConfig<'a> {
        self.heartbeat = NonZeroU32::new(secs);
        self
    }

    /// Turns on route compression (`useDict`) with this dictionary.
    pub const fn with_dictionary(mut self, dict: &'a Dictionary) -> HandshakeConfig<'a> {
        self.dictionary = Some(dict);
        self
    }

    /// Turns on protobuf bodies (`useProto`) with these protos (pinus `useProtobuf`).
    pub const fn with_protos(mut self, protos: &'a Protos) -> HandshakeConfig<'a> {
        self.protos = Some(protos);
        self
    }

    /// The protos, if protobuf bodies are on.
    pub fn protos(&self) -> Option<&'a Protos> {
        self.protos
    }

    /// The announced heartbeat interval in seconds, if any.
    pub fn heartbeat(&self) -> Option<u32> {
        self.heartbeat.map(NonZeroU32::get)
    }

    /// The dictionary, if route compression is on.
    pub fn dictionary(&self) -> Option<&'a Dictionary> {
        self.dictionary
    }
}

/// The outcome of [`process_handshake`]: the code, the reply body to send in a HANDSHAKE
/// package, and either the parsed client handshake or why it was refused.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HandshakeReply {
    /// 200, 500 or 501.
    pub code: HandshakeCode,
    /// The reply JSON. Refusals carry only the code: `{"code":500}` / `{"code":501}`.
    pub body: Vec<u8>,
    /// The parsed handshake, when it parsed (even if later refused).
    pub client: Option<ClientHandshake>,
    /// Why the handshake was refused; `None` for 200.
    pub error: Option<HandshakeError>,
}

impl HandshakeReply {
    fn refused(error: HandshakeError, client: Option<ClientHandshake>) -> HandshakeReply {
        let code = error.code();
        HandshakeReply {
            code,
            body: format!(r#"{{"code":{}}}"#, code.as_u16()).into_bytes(),
            client,
            error: Some(error),
        }
    }

    /// True for code 200. After a refusal the server sends the reply and closes (pinus sends
    /// it in any socket state but closed, then disconnects on the next tick).
    pub fn is_ok(&self) -> bool {
        self.code == HandshakeCode::Ok
    }

    /// Appends the reply as a whole HANDSHAKE package.
    ///
    /// # Errors
    ///
    /// [`PackageError::TooLarge`] if the body exceeds 2^24 − 1 bytes (a huge dictionary or user
    /// value).
    pub fn encode_package(&self, out: &mut Vec<u8>) -> Result<(), PackageError> {
        encode_package(PackageType::Handshake, &self.body, out)
    }
}

/// JavaScript truthiness of a JSON value: pinus omits a falsy `user` reply.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Processes a client handshake body the way pinus does, as a pure function.
///
/// In order:
/// 1. The body must be JSON with a `sys` object, else **500**.
/// 2. `check_client(type, version)` must return true, else **501**. A missing or non-string
///    `sys.type` / `sys.version` is passed as `""` (pinus passes `undefined` and leaves the
///    decision to `checkClient`; `""` keeps that: a check that requires a version refuses it,
///    `|_, _| true` accepts it). Use [`ClientHandshake::client_type`] in the hook to tell a
///    missing field from an empty one.
/// 3. `user_hook(&handshake)`: `Err` gives **500** (the error is dropped: log it in the hook);
///    `Ok(Some(value))` becomes the reply's `user` unless the value is JavaScript-falsy
///    (`null`, `false`, `0`, `""`), which pinus omits, as it does `Ok(None)`.
/// 4. **200** with `{"code":200,"sys":{…}[,"user":…]}`. `sys` holds, in pinus's key order,
///    `heartbeat` when configured, then with a dictionary `dict` and `dictVersion` (only when
///    the client's `sys.dictVersion` differs from [`Dictionary::version`]) and
///    `"useDict":true`.
///
///    With protos ([`HandshakeConfig::with_protos`]), then `protos` (`{server, client,
///    version}`, only when the client's `sys.protoVersion` is not the string
///    [`Protos::version`]) and `"useProto":true` — always, as pinus does.
///
/// Refusals carry only the code (`{"code":500}`), as in pinus. RSA (`sys.rsa`) is not
/// supported: no key is sent for it, and `sys.rsa` is available to the hook through
/// [`ClientHandshake::sys`].
///
/// # Examples
///
/// ```
/// use gatehouse::protocol::{process_handshake, HandshakeCode, HandshakeConfig};
///
/// let body = br#"{"sys":{"type":"js-websocket","version":"0.0.1"},"user":{"name":"x"}}"#;
/// let reply = process_handshake(
///     body,
///     &HandshakeConfig::new().with_heartbeat(2),
///     |_type, version| version >= "0.0.1",
///     |_hs| Ok::<_, ()>(Some(serde_json::json!({"welcome": 1}))),
/// );
/// assert_eq!(reply.code, HandshakeCode::Ok);
/// assert_eq!(reply.body, br#"{"code":200,"sys":{"heartbeat":2},"user":{"welcome":1}}"#);
/// ```
pub fn process_handshake<E>(
    body: &[u8],
    cfg: &HandshakeConfig<'_>,
    check_client: impl FnOnce(&str, &str) -> bool,
    user_hook: impl FnOnce(&ClientHandshake) -> Result<Option<Value>, E>,
) -> HandshakeReply {
    let client = match ClientHandshake::parse(body) {
        Ok(client) => client,
        Err(error) => return HandshakeReply::refused(error, None),
    };
    let client_type = client.client_type().unwrap_or_default();
    let client_version = client.client_version().unwrap_or_default();
    if !check_client(client_type, client_version) {
        return HandshakeReply::refused(HandshakeError::ClientRejected, Some(client));
    }
    let user = match user_hook(&client) {
        Ok(user) => user.filter(truthy),
        Err(_) => return HandshakeReply::refused(HandshakeError::HookFailed, Some(client)),
    };
    let user_json = match user.as_ref().map(serde_json::to_vec).transpose() {
        Ok(json) => json,
        Err(_) => return HandshakeReply::refused(HandshakeError::HookFailed, Some(client)),
    };

    let dict = cfg.dictionary;
    let send_dict = dict.filter(|d| client.dict_version() != Some(d.version()));
    // pinus sends the protos unless the client's `sys.protoVersion` is the current version
    // (the official client sends the number 0 before it has any).
    let send_protos = cfg
        .protos
        .filter(|p| client.proto_version().and_then(Value::as_str) != Some(p.version()));
    let mut out = Vec::with_capacity(
        64 + send_dict.map_or(0, |d| d.json().len() + d.version().len() + 32)
            + send_protos.map_or(0, |p| p.handshake_json().len() + 12)
            + user_json.as_ref().map_or(0, Vec::len),
    );
    out.extend_from_slice(br#"{"code":200,"sys":{"#);
    let mut first = true;
    let mut field = |out: &mut Vec<u8>, name: &[u8]| {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(name);
    };
    if let Some(secs) = cfg.heartbeat {
        field(&mut out, br#""heartbeat":"#);
        out.extend_from_slice(secs.to_string().as_bytes());
    }
    if let Some(d) = send_dict {
        field(&mut out, br#""dict":"#);
        out.extend_from_slice(d.json().as_bytes());
        field(&mut out, br#""dictVersion":"#);
        json::write_str(d.version(), &mut out);
    }
    if dict.is_some() {
        field(&mut out, br#""useDict":true"#);
    }
    if let Some(p) = send_protos {
        field(&mut out, br#""protos":"#);
        out.extend_from_slice(p.handshake_json().as_bytes());
    }
    if cfg.protos.is_some() {
        field(&mut out, br#""useProto":true"#);
    }
    out.push(b'}');
    if let Some(user_json) = user_json {
        out.extend_from_slice(br#","user":"#);
        out.extend_from_slice(&user_json);
    }
    out.push(b'}');
    HandshakeReply {
        code: HandshakeCode::Ok,
        body: out,
        client: Some(client),
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testutil::hex;
    use crate::protocol::{decode_package, MAX_BODY_LEN};
    use serde_json::json;

    const JS_CLIENT: &[u8] = br#"{"sys":{"type":"js-websocket","version":"0.0.1","rsa":{},"protoVersion":0},"user":{"name":"x"}}"#;

    fn accept(_: &str, _: &str) -> bool {
        true
    }

    fn no_hook(_: &ClientHandshake) -> Result<Option<Value>, ()> {
        Ok(None)
    }

    #[test]
    fn observed_client_handshake_parses() {
        let wire = [&hex("01 00005f")[..], JS_CLIENT].concat();
        let (p, n) = decode_package(&wire, MAX_BODY_LEN).unwrap().unwrap();
        assert_eq!((p.kind, n), (PackageType::Handshake, wire.len()));
        let hs = ClientHandshake::parse(p.body).unwrap();
        assert_eq!(hs.client_type(), Some("js-websocket"));
        assert_eq!(hs.client_version(), Some("0.0.1"));
        assert_eq!(hs.dict_version(), None);
        assert_eq!(hs.proto_version(), Some(&json!(0)));
        assert_eq!(hs.sys().get("rsa"), Some(&json!({})));
        assert_eq!(hs.user(), Some(&json!({"name": "x"})));
        let mut again = Vec::new();
        encode_package(PackageType::Handshake, p.body, &mut again).unwrap();
        assert_eq!(again, wire);
    }

    #[test]
    fn observed_server_reply_byte_exact() {
        let mut seen = None;
        let reply = process_handshake(
            JS_CLIENT,
            &HandshakeConfig::new().with_heartbeat(2),
            |t, v| {
                seen = Some((t.to_owned(), v.to_owned()));
                true
            },
            |hs| {
                assert_eq!(hs.user(), Some(&json!({"name": "x"})));
                Ok::<_, ()>(Some(json!({"welcome": 1})))
            },
        );
        assert_eq!(seen, Some(("js-websocket".into(), "0.0.1".into())));
        assert!(reply.is_ok());
        assert_eq!(reply.error, None);
        let mut wire = Vec::new();
        reply.encode_package(&mut wire).unwrap();
        let expected = [
            &hex("01 000037")[..],
            br#"{"code":200,"sys":{"heartbeat":2},"user":{"welcome":1}}"#,
        ]
        .concat();
        assert_eq!(wire, expected);
        assert_eq!(reply.client.unwrap().client_type(), Some("js-websocket"));
    }

    #[test]
    fn minimal_success_without_heartbeat_or_user() {
        let reply = process_handshake(br#"{"sys":{}}"#, &HandshakeConfig::new(), accept, no_hook);
        assert_eq!(reply.code.as_u16(), 200);
        assert_eq!(reply.body, br#"{"code":200,"sys":{}}"#);
        // Heartbeat 0 means none, as in pinus.
        let reply = process_handshake(
            br#"{"sys":{}}"#,
            &HandshakeConfig::new().with_heartbeat(0),
            accept,
            no_hook,
        );
        assert_eq!(reply.body, br#"{"code":200,"sys":{}}"#);
    }

    #[test]
    fn falsy_user_values_are_omitted() {
        for user in [json!(null), json!(false), json!(0), json!(0.0), json!("")] {
            let reply =
                process_handshake(br#"{"sys":{}}"#, &HandshakeConfig::new(), accept, |_| {
                    Ok::<_, ()>(Some(user.clone()))
                });
            assert_eq!(reply.body, br#"{"code":200,"sys":{}}"#, "{user}");
        }
        for user in [json!(1), json!("ok"), json!([]), json!({}), json!(true)] {
            let reply =
                process_handshake(br#"{"sys":{}}"#, &HandshakeConfig::new(), accept, |_| {
                    Ok::<_, ()>(Some(user.clone()))
                });
            let v: Value = serde_json::from_slice(&reply.body).unwrap();
            assert_eq!(v["user"], user);
        }
    }

    #[test]
    fn protos_sent_unless_cached_and_use_proto_always_in_pinus_key_order() {
        let protos = Protos::from_json(r#"{"onMove": {"required uInt32 id": 1}}"#, "{}").unwrap();
        let cfg = HandshakeConfig::new()
            .with_heartbeat(3)
            .with_protos(&protos);

        // The official client's first handshake sends `protoVersion: 0`.
        let reply = process_handshake(JS_CLIENT, &cfg, accept, no_hook);
        let expected = format!(
            r#"{{"code":200,"sys":{{"heartbeat":3,"protos":{},"useProto":true}}}}"#,
            protos.handshake_json()
        );
        assert_eq!(String::from_utf8(reply.body).unwrap(), expected);

        let cached = format!(r#"{{"sys":{{"protoVersion":"{}"}}}}"#, protos.version());
        let reply = process_handshake(cached.as_bytes(), &cfg, accept, no_hook);
        assert_eq!(
            reply.body,
            br#"{"code":200,"sys":{"heartbeat":3,"useProto":true}}"#
        );

        // With a dictionary too: the dictionary's keys first, as pinus writes them.
        let dict = Dictionary::new(["a.b.c"], ["onMove"]).unwrap();
        let cfg = cfg.with_dictionary(&dict);
        let reply = process_handshake(cached.as_bytes(), &cfg, accept, no_hook);
        let text = String::from_utf8(reply.body).unwrap();
        let dict_at = text.find(r#""useDict":true"#).expect("useDict");
        let proto_at = text.find(r#""useProto":true"#).expect("useProto");
        assert!(dict_at < proto_at, "{text}");
        // Refusals stay bare.
        let refused = process_handshake(b"nope", &cfg, accept, no_hook);
        assert_eq!(refused.body, br#"{"code":500}"#);
    }

    #[test]
    fn dictionary_sent_only_when_the_client_version_differs() {
        let dict = Dictionary::new(["chat.chatHandler.say"], ["onChat"]).unwrap();
        let cfg = HandshakeConfig::new()
            .with_heartbeat(10)
            .with_dictionary(&dict);

        let reply = process_handshake(JS_CLIENT, &cfg, accept, no_hook);
        let expected = format!(
            r#"{{"code":200,"sys":{{"heartbeat":10,"dict":{{"chat.chatHandler.say":1,"onChat":2}},"dictVersion":"{}","useDict":true}}}}"#,
            dict.version()
        );
        assert_eq!(String::from_utf8(reply.body).unwrap(), expected);

        let cached = format!(
            r#"{{"sys":{{"type":"t","version":"v","dictVersion":"{}"}}}}"#,
            dict.version()
        );
        let reply = process_handshake(cached.as_bytes(), &cfg, accept, no_hook);
        assert_eq!(
            reply.body,
            br#"{"code":200,"sys":{"heartbeat":10,"useDict":true}}"#
        );

        // A stale or non-string version gets the dictionary again.
        for stale in [r#""old""#, "1", "null"] {
            let body = format!(r#"{{"sys":{{"dictVersion":{stale}}}}}"#);
            let reply = process_handshake(body.as_bytes(), &cfg, accept, no_hook);
            let v: Value = serde_json::from_slice(&reply.body).unwrap();
            assert_eq!(v["sys"]["dictVersion"], json!(dict.version()), "{stale}");
            assert_eq!(v["sys"]["dict"]["onChat"], json!(2));
        }
    }

    #[test]
    fn code_500_for_bad_json_or_no_sys() {
        let cases: [(&[u8], HandshakeError); 9] = [
            (b"not json", HandshakeError::InvalidJson),
            (b"", HandshakeError::InvalidJson),
            (b"\xff\xfe", HandshakeError::InvalidJson),
            (br#"{"sys":{}"#, HandshakeError::InvalidJson),
            (b"null", HandshakeError::MissingSys),
            (b"[1]", HandshakeError::MissingSys),
            (br#"{"user":{}}"#, HandshakeError::MissingSys),
            (br#"{"sys":null}"#, HandshakeError::MissingSys),
            (br#"{"sys":"js"}"#, HandshakeError::MissingSys),
        ];
        for (body, error) in cases {
            let reply = process_handshake(
                body,
                &HandshakeConfig::new(),
                |_, _| unreachable!(),
                |_| -> Result<Option<Value>, ()> { unreachable!() },
            );
            assert_eq!(reply.code, HandshakeCode::Failed);
            assert_eq!(reply.body, br#"{"code":500}"#);
            assert_eq!(reply.error, Some(error));
            assert!(!reply.is_ok());
        }
    }

    #[test]
    fn code_501_when_the_client_check_refuses() {
        let reply = process_handshake(
            JS_CLIENT,
            &HandshakeConfig::new().with_heartbeat(2),
            |t, v| t == "js-websocket" && v >= "0.1.0",
            |_| -> Result<Option<Value>, ()> { panic!("the hook runs after the check") },
        );
        assert_eq!(reply.code.as_u16(), 501);
        assert_eq!(reply.body, br#"{"code":501}"#);
        assert_eq!(reply.error, Some(HandshakeError::ClientRejected));
        assert_eq!(reply.client.unwrap().client_version(), Some("0.0.1"));
        let mut wire = Vec::new();
        HandshakeReply::refused(HandshakeError::ClientRejected, None)
            .encode_package(&mut wire)
            .unwrap();
        assert_eq!(wire, [&hex("01 00000c")[..], br#"{"code":501}"#].concat());
    }

    #[test]
    fn missing_type_and_version_reach_the_check_as_empty() {
        for body in [
            &br#"{"sys":{}}"#[..],
            br#"{"sys":{"type":1,"version":null}}"#,
        ] {
            let mut seen = None;
            let reply = process_handshake(
                body,
                &HandshakeConfig::new(),
                |t, v| {
                    seen = Some((t.to_owned(), v.to_owned()));
                    !v.is_empty()
                },
                no_hook,
            );
            assert_eq!(seen, Some((String::new(), String::new())));
            assert_eq!(reply.code, HandshakeCode::OldClient);
            let hs = reply.client.unwrap();
            assert_eq!((hs.client_type(), hs.client_version()), (None, None));
        }
    }

    #[test]
    fn code_500_when_the_hook_fails() {
        let reply = process_handshake(
            JS_CLIENT,
            &HandshakeConfig::new().with_heartbeat(2),
            accept,
            |_| Err::<Option<Value>, _>("banned"),
        );
        assert_eq!(reply.code, HandshakeCode::Failed);
        assert_eq!(reply.body, br#"{"code":500}"#);
        assert_eq!(reply.error, Some(HandshakeError::HookFailed));
    }

    #[test]
    fn error_texts_are_lowercase() {
        assert_eq!(
            HandshakeError::InvalidJson.to_string(),
            "handshake is not json"
        );
        assert_eq!(
            HandshakeError::ClientRejected.code(),
            HandshakeCode::OldClient
        );
        assert_eq!(HandshakeError::MissingSys.code().as_u16(), 500);
    }
}
