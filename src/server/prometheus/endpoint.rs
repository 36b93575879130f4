//! [`MetricsEndpoint`]: the admin HTTP responder for scrapes (feature `prometheus`).

use super::{MetricsExporter, MetricsFormat};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest request head read; a longer one is answered 431 and closed.
const MAX_REQUEST: usize = 8 * 1024;
/// Read and write timeout per admin connection.
const IO_TIMEOUT: Duration = Duration::from_secs(1);

/// A minimal HTTP/1.1 endpoint answering `GET /metrics` from a [`MetricsExporter`]; every
/// other path is 404, every other method 405. One std thread, one connection at a time, a
/// bounded request read (8 KiB, within 1 s) and a 1 s write timeout, so a stuck or slow
/// client delays the next scrape by about a second. Dropping it stops the thread.
///
/// **Admin use only**: bind it to loopback or a private network, never a public address (no
/// authentication, no TLS).
pub struct MetricsEndpoint {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for MetricsEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsEndpoint")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl MetricsEndpoint {
    /// Binds `addr` (port 0 picks a free port) and starts answering scrapes.
    ///
    /// # Errors
    ///
    /// Binding the address or spawning the thread failed.
    pub fn start(addr: SocketAddr, exporter: MetricsExporter) -> io::Result<MetricsEndpoint> {
        let listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("gatehouse-metrics".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        match stream {
                            Ok(stream) => {
                                if let Err(err) = serve(stream, &exporter) {
                                    log::debug!("gatehouse: metrics endpoint: {err}");
                                }
                            }
                            // Out of descriptors, say: do not spin on it.
                            Err(_) => std::thread::sleep(Duration::from_millis(50)),
                        }
                    }
                })?
        };
        Ok(MetricsEndpoint {
            local_addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept; if connecting fails, the thread is left to the process.
        if TcpStream::connect_timeout(&self.local_addr, IO_TIMEOUT).is_ok() {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// Answers one request on `stream`, then closes it.
fn serve(mut stream: TcpStream, exporter: &MetricsExporter) -> io::Result<()> {
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    // One deadline for the whole request head, so a client trickling bytes cannot hold the
    // thread longer than a client sending nothing.
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut head = [0u8; MAX_REQUEST];
    let mut len = 0;
    let end = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        if let Some(end) = head[..len].windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if len == head.len() {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            );
        }
        let n = stream.read(&mut head[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
    };
    let head = String::from_utf8_lossy(&head[..end]);
    let mut lines = head.split("\r\n");
    let mut request = lines.next().unwrap_or("").split(' ');
    let (method, target) = (request.next().unwrap_or(""), request.next().unwrap_or(""));
    let accept = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("accept"))
        .map_or("", |(_, value)| value.trim());
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => {
            let format = MetricsFormat::from_accept(accept);
            respond(
                &mut stream,
                "200 OK",
                format.content_type(),
                &exporter.render(format),
            )
        }
        ("GET", _) => respond(&mut stream, "404 Not Found", "text/plain", "not found\n"),
        _ => respond(&mut stream, "405 Method Not Allowed", "text/plain", ""),
    }
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}
