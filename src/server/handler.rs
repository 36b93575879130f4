//! [`Handler`]: what the game implements — handshake checks, requests, notifies — and
//! [`Responder`], for answering a request later from any thread.

use crate::error::{SendError, SendErrorKind};
use crate::frame::Frame;
use crate::id::Sid;
use crate::protocol::protobuf::{Message as ProtoMessage, ProtoDecodeError, ProtoEncodeError};
use crate::protocol::{encode_response, EncodeError, Protos};
use crate::service::SessionService;
use crate::sessions::Sessions;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// The application side of the connector. One instance serves every I/O thread, so it is
/// `Send + Sync`; methods run on the I/O thread that owns the connection, so keep them short
/// and hand long work to your own threads (answering later through a [`Responder`]).
///
/// A panic in any method (a game's `unwrap()` on a field the client left out) is caught: it
/// costs that connection only, closed with [`CloseReason::HandlerPanic`](crate::CloseReason)
/// (logged with the panic's message, at most one line per 5 s per I/O thread, and counted in
/// [`CloseCounts::handler_panic`](crate::server::CloseCounts)); the I/O thread, its other
/// connections and accepting go on. A request is never left unanswered by the connector: a route
/// it cannot resolve (unknown dictionary code, no server type) is answered
/// `{"code":500,"error":…}`, and a [`Responder`] dropped without an answer answers
/// `{"code":500,"error":"no response"}`.
///
/// # Examples
///
/// ```
/// use gatehouse::server::{Handler, Request, Response, Server};
/// use serde_json::json;
/// use std::sync::Arc;
///
/// struct Echo;
/// impl Handler for Echo {
///     fn request(&self, req: Request<'_>) -> Response {
///         Response::Json(json!({"code": 200, "route": req.route(), "body": req.json()}))
///     }
/// }
///
/// let addr = "127.0.0.1:0".parse().unwrap();
/// let server = Server::builder().addr(addr).io_threads(1).start(Arc::new(Echo)).unwrap();
/// assert_ne!(server.local_addr().port(), 0);
/// server.shutdown(None);
/// ```
pub trait Handler: Send + Sync + 'static {
    /// pomelo's `checkClient(type, version)`: `false` answers the handshake with code 501 and
    /// closes the connection. A field the client left out is passed as `""`.
    fn check_client(&self, client_type: &str, version: &str) -> bool {
        let _ = (client_type, version);
        true
    }

    /// pomelo's user `handshake` hook: `Ok(Some(v))` puts `v` in the reply's `user` field,
    /// `Ok(None)` leaves it out, `Err(())` answers code 500 and closes the connection.
    /// `handshake` is the whole JSON the client sent.
    #[allow(clippy::result_unit_err)]
    fn handshake(&self, sid: Sid, handshake: &Value) -> Result<Option<Value>, ()> {
        let _ = (sid, handshake);
        Ok(None)
    }

    /// A request (a message with an id): return the response now, or [`Response::Deferred`]
    /// after taking a [`Responder`] with [`Request::responder`].
    fn request(&self, req: Request<'_>) -> Response;

    /// A notify (no id, no response).
    fn notify(&self, req: Request<'_>) {
        let _ = req;
    }
}

/// What a [`Handler::request`] answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// A JSON body (serialised once, sent as the RESPONSE message's body).
    Json(Value),
    /// A body already encoded (for example protobuf or pre-serialised JSON).
    Bytes(Vec<u8>),
    /// The handler took a [`Responder`] and will answer later (if it drops the responder
    /// unanswered, a warning is logged and the client gets `{"code":500,"error":"no response"}`).
    Deferred,
}

/// One incoming request or notify, borrowed from the connection's read buffer.
pub struct Request<'a> {
    pub(crate) sid: Sid,
    pub(crate) id: u32,
    pub(crate) route: &'a str,
    pub(crate) body: &'a [u8],
    /// The client proto of the route, when protobuf is on and the route has one.
    pub(crate) proto: Option<&'a ProtoMessage>,
    pub(crate) service: &'a Sessions,
}

/// Why [`Request::try_json`] could not read a body.
#[derive(Debug)]
#[non_exhaustive]
pub enum BodyError {
    /// The route has no client proto and the body is not JSON.
    Json(serde_json::Error),
    /// The route has a client proto and the body does not decode with it.
    Protobuf(ProtoDecodeError),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Json(err) => write!(f, "body is not JSON: {err}"),
            BodyError::Protobuf(err) => {
                write!(f, "body does not decode with its client proto: {err}")
            }
        }
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BodyError::Json(err) => Some(err),
            BodyError::Protobuf(err) => Some(err),
        }
    }
}

impl<'a> Request<'a> {
    /// The session this came from.
    pub fn sid(&self) -> Sid {
        self.sid
    }

    /// The request id (0 for a notify).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The route, e.g. `connector.entryHandler.entry` (dictionary codes already resolved).
    pub fn route(&self) -> &'a str {
        self.route
    }

    /// The raw body bytes (protobuf bytes when [`is_protobuf`](Self::is_protobuf)).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// True when the route has a client proto ([`ServerBuilder::protos`]): the body is
    /// protobuf, and [`json`](Self::json) decodes it with that proto.
    ///
    /// [`ServerBuilder::protos`]: crate::server::ServerBuilder::protos
    pub fn is_protobuf(&self) -> bool {
        self.proto.is_some()
    }

    /// The body as a JSON value: decoded with the route's client proto when it has one, else
    /// parsed as JSON. As in pomelo, a body that does not decode reads as `{}`; use
    /// [`try_json`](Self::try_json) to see why.
    pub fn json(&self) -> Value {
        self.try_json()
            .unwrap_or_else(|_| Value::Object(Default::default()))
    }

    /// The body as a JSON value, or why it could not be read (see [`json`](Self::json)).
    ///
    /// # Errors
    ///
    /// [`BodyError`]: not JSON, or not a message of the route's client proto.
    pub fn try_json(&self) -> Result<Value, BodyError> {
        match self.proto {
            Some(proto) => proto.decode(self.body).map_err(BodyError::Protobuf),
            None => serde_json::from_slice(self.body).map_err(BodyError::Json),
        }
    }

    /// The game's handle on the session service: bind the session, push to users, kick…
    /// (see [`Sessions`]). Clone it (two reference counts) to keep it beyond the call.
    pub fn service(&self) -> &'a Sessions {
        self.service
    }

    /// A handle to answer this request later, from any thread. Return [`Response::Deferred`].
    /// Allocates only when the route has a server proto (the responder keeps the route's name
    /// to encode with it).
    pub fn responder(&self) -> Responder {
        let proto = self
            .service
            .protos()
            .filter(|p| p.server(self.route).is_some())
            .map(|p| (p.clone(), Box::from(self.route)));
        Responder {
            service: self.service.raw().clone(),
            sid: self.sid,
            id: self.id,
            proto,
            done: false,
        }
    }
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("sid", &self.sid)
            .field("id", &self.id)
            .field("route", &self.route)
            .field("body_len", &self.body.len())
            .field("protobuf", &self.proto.is_some())
            .finish()
    }
}

/// Answers one request later, from any thread: `Send`, one reference-count increment to
/// create (plus the route's name when it has a server proto). The client matches the response
/// by request id, so responses may go out in any order. Sending allocates only the encoded
/// response.
pub struct Responder {
    service: Arc<SessionService>,
    sid: Sid,
    id: u32,
    /// The protos and the request's route, when that route has a server proto: a JSON
    /// answer is encoded with it.
    proto: Option<(Arc<Protos>, Box<str>)>,
    done: bool,
}

impl Responder {
    /// The session the answer goes to.
    pub fn sid(&self) -> Sid {
        self.sid
    }

    /// Sends a JSON response — in protobuf when the request's route has a server proto (as
    /// [`Response::Json`]). A value that does not fit that proto is logged and answered with an
    /// empty message, which the client decodes as `{}` (pinus does the same, silently).
    ///
    /// # Errors
    ///
    /// [`SendError`] if the session closed meanwhile, its inbox is full, or the body does not
    /// fit one package ([`SendErrorKind::TooLarge`]).
    pub fn respond_json(self, body: &Value) -> Result<(), SendError> {
        let proto = self.proto.as_ref();
        let message = proto.and_then(|(protos, route)| protos.server(route));
        let (bytes, failed) = json_response_body(message, body);
        if let (Some(err), Some((_, route))) = (failed, proto) {
            log::error!(
                "gatehouse: session {}: the response to request {} on {route:?} does not fit \
                 its server proto ({err}); sent an empty message instead",
                self.sid,
                self.id
            );
        }
        self.respond(&bytes)
    }

    /// Sends a response whose body is already encoded.
    ///
    /// # Errors
    ///
    /// [`SendError`] if the session closed meanwhile, its inbox is full, or the body does not
    /// fit one package ([`SendErrorKind::TooLarge`]).
    pub fn respond(mut self, body: &[u8]) -> Result<(), SendError> {
        self.done = true;
        let frame = encode_response_frame(self.id, body).map_err(|_| SendError {
            kind: SendErrorKind::TooLarge,
            frame: Frame::from_static(b""),
        })?;
        self.service.send_message(self.sid, frame)
    }
}

impl Drop for Responder {
    /// A responder dropped without an answer (the code that held it forgot, returned early or
    /// panicked) answers `{"code":500,"error":"no response"}` (an empty message on a route
    /// with a server proto): the client must not wait for its own timeout. Logged as a
    /// warning.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // On a route with a server proto the client decodes the answer as protobuf: an
        // empty message (it reads `{}`), not JSON text it would misread.
        let body: &[u8] = if self.proto.is_some() {
            b""
        } else {
            NO_RESPONSE
        };
        let sent = encode_response_frame(self.id, body)
            .ok()
            .is_some_and(|frame| self.service.send_message(self.sid, frame).is_ok());
        log::warn!(
            "gatehouse: responder for request {} of session {} dropped without an answer{}",
            self.id,
            self.sid,
            if sent { "; answered with code 500" } else { "" }
        );
    }
}

/// What a dropped [`Responder`] answers.
const NO_RESPONSE: &[u8] = br#"{"code":500,"error":"no response"}"#;

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("sid", &self.sid)
            .field("id", &self.id)
            .finish()
    }
}

/// The body of a JSON response: encoded with the request route's server proto when it has one
/// — a value that does not fit becomes an empty message, which the client reads as `{}`, and
/// the error is handed back for the caller to log (JSON text would be misread: the client
/// decodes that route's responses as protobuf) — else JSON text.
pub(crate) fn json_response_body(
    proto: Option<&ProtoMessage>,
    value: &Value,
) -> (Vec<u8>, Option<ProtoEncodeError>) {
    match proto {
        Some(message) => {
            let mut body = Vec::new();
            match message.encode(value, &mut body) {
                Ok(()) => (body, None),
                Err(err) => (Vec::new(), Some(err)),
            }
        }
        None => (
            serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec()),
            None,
        ),
    }
}

/// Encodes a RESPONSE DATA package as a frame (one allocation: the bytes; a frame sent to one
/// session is never cloned, so `Bytes::from(Vec)` needs no shared header).
pub(crate) fn encode_response_frame(id: u32, body: &[u8]) -> Result<Frame, EncodeError> {
    let mut out = Vec::new();
    encode_response(id, body, &mut out)?;
    Ok(Frame::from(bytes::Bytes::from(out)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SessionConfig;

    #[test]
    fn oversized_response_is_too_large_and_queues_nothing() {
        let service = Arc::new(SessionService::new(SessionConfig::default().shards(1)).unwrap());
        let sid = service.create(None).unwrap();
        let responder = Responder {
            service: service.clone(),
            sid,
            id: 1,
            proto: None,
            done: false,
        };
        let err = responder.respond(&vec![b'x'; 1 << 24]).unwrap_err();
        assert_eq!(err.kind, SendErrorKind::TooLarge);
        assert!(err.frame.is_empty());
        assert_eq!(service.inbox(0).unwrap().drain(|_| {}), 0);

        let responder = Responder {
            service: service.clone(),
            sid,
            id: 2,
            proto: None,
            done: false,
        };
        responder.respond(b"{}").unwrap();
        assert_eq!(service.inbox(0).unwrap().drain(|_| {}), 1);
    }
}
