//! Prometheus / OpenMetrics export of the connector's counters (feature `prometheus`).
//!
//! # Why `prometheus-client`
//!
//! The counters already exist: each I/O thread bumps its own relaxed atomics and
//! [`Server::metrics`] sums them into a [`Metrics`] snapshot on demand. Exporting them is
//! therefore a scrape-time job only: nothing here runs on an I/O thread, and the hot paths
//! are the same instructions with or without the feature. `prometheus-client` (the
//! Prometheus project's Rust client) fits that shape: a [`Collector`] is asked for its
//! values on each scrape, there is no global registry, and it ships both text encoders
//! (OpenMetrics 1.0 and the classic Prometheus 0.0.4 format). The `metrics` facade with its
//! Prometheus exporter is built the other way round: a process-wide recorder that every
//! increment goes through, plus its own HTTP server and runtime; we would have to mirror our
//! counters into it (a second set of atomics, or a global on the hot path) for no gain.
//!
//! # What is exported
//!
//! Every figure of [`Metrics`], named `gatehouse_…`; counters end in `_total` and byte
//! counters carry the `bytes` unit:
//!
//! | name | type | from |
//! | --- | --- | --- |
//! | `gatehouse_sessions` | gauge | [`Metrics::sessions`] |
//! | `gatehouse_bound_uids` | gauge | [`Metrics::bound_uids`] |
//! | `gatehouse_connections_accepted_total` | counter | [`Metrics::accepted`] |
//! | `gatehouse_connections_refused_total` | counter | [`Metrics::refused`] |
//! | `gatehouse_received_bytes_total` | counter | [`Metrics::bytes_in`] |
//! | `gatehouse_sent_bytes_total` | counter | [`Metrics::bytes_out`] |
//! | `gatehouse_packages_received_total` | counter | [`Metrics::packages_in`] |
//! | `gatehouse_frames_queued_total` | counter | [`Metrics::frames_out`] |
//! | `gatehouse_frames_dropped_total` | counter | [`Metrics::frames_dropped`] |
//! | `gatehouse_write_calls_total` | counter | [`Metrics::write_calls`] |
//! | `gatehouse_compactions_total` | counter | [`Metrics::compactions`] |
//! | `gatehouse_tls_handshakes_total` | counter | [`Metrics::tls_handshakes`] |
//! | `gatehouse_tls_handshake_failures_total` | counter | [`Metrics::tls_handshake_failures`] |
//! | `gatehouse_closes_total{reason}` | counter | [`CloseCounts`], one `reason` per field |
//! | `gatehouse_inbox_depth{shard}` | gauge | commands queued in each I/O thread's inbox |
//! | `gatehouse_inbox_capacity{shard}` | gauge | that inbox's capacity |
//! | `gatehouse_inbox_refused_total{shard}` | counter | sends refused because it was full |
//!
//! | `gatehouse_inbox_high_water{shard}` | gauge | the most commands that I/O thread found queued when it came to drain ([`Metrics::inbox_high_water`] is the highest of them) |
//! | `gatehouse_handler_duration_seconds` | histogram | [`Metrics::handler_time`]: handler calls, 1 µs to about 1 s in powers of two; only with [`ServerBuilder::time_handlers`] on |
//!
//! The inbox high-water mark costs the I/O thread one length read per drain (not per
//! command) and the threads that push nothing. Handler timing reads the clock twice per
//! handler call, so it is opt-in; without it the histogram is left out rather than shown
//! empty.
//!
//! # Serving it
//!
//! [`Server::metrics_exporter`] hands out a cheap, cloneable [`MetricsExporter`] that any
//! thread can render from; [`MetricsEndpoint`] is a minimal HTTP/1.1 responder (one std
//! thread, `GET /metrics` only) for programs that have no HTTP server of their own, such as
//! the example gate's `--metrics IP:PORT`. **Bind it to loopback or a private admin network,
//! never to a public address**: it has no authentication, and the figures describe the load.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use gatehouse::server::{Handler, MetricsEndpoint, Request, Response, Server};
//! use std::sync::Arc;
//!
//! struct Echo;
//! impl Handler for Echo {
//!     fn request(&self, req: Request<'_>) -> Response {
//!         Response::Json(req.json().clone())
//!     }
//! }
//!
//! let server = Server::builder().start(Arc::new(Echo))?;
//! // Scrape http://127.0.0.1:9100/metrics
//! let endpoint = MetricsEndpoint::start("127.0.0.1:9100".parse()?, server.metrics_exporter())?;
//! println!("{}", server.metrics_exporter().render(gatehouse::server::MetricsFormat::OpenMetrics));
//! # drop(endpoint);
//! # Ok(())
//! # }
//! ```
//!
//! [`Server::metrics`]: super::Server::metrics
//! [`ServerBuilder::time_handlers`]: super::ServerBuilder::time_handlers
//! [`Server::metrics_exporter`]: super::Server::metrics_exporter

use super::metrics::{CloseCounts, HandlerTime, Metrics};
use super::Shared;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::fmt;
use std::sync::Arc;

mod endpoint;

pub use endpoint::MetricsEndpoint;

/// The text format a scrape is answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricsFormat {
    /// OpenMetrics 1.0 text (`# UNIT` lines, ends with `# EOF`); what Prometheus asks for.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4 (what `promtool check metrics` reads).
    PrometheusText,
}

impl MetricsFormat {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            MetricsFormat::OpenMetrics => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            }
            MetricsFormat::PrometheusText => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// The format an HTTP `Accept` header value asks for: OpenMetrics if it names
    /// `application/openmetrics-text`, the classic text format otherwise.
    pub fn from_accept(accept: &str) -> MetricsFormat {
        if accept
            .to_ascii_lowercase()
            .contains("application/openmetrics-text")
        {
            MetricsFormat::OpenMetrics
        } else {
            MetricsFormat::PrometheusText
        }
    }
}

// === impl MetricsExporter ===

/// One I/O thread's inbox, sampled at scrape time.
#[derive(Debug, Clone, Copy)]
struct InboxSample {
    depth: usize,
    capacity: usize,
    refused: u64,
    high_water: u64,
}

/// Renders the connector's figures on demand. Cloneable and `Send + Sync`: hand it to the
/// thread that answers scrapes. Each render takes a fresh [`Metrics`] snapshot (one relaxed
/// load per counter per I/O thread) and encodes it; the I/O threads are not involved.
#[derive(Clone)]
pub struct MetricsExporter {
    shared: Arc<Shared>,
}

impl fmt::Debug for MetricsExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsExporter").finish_non_exhaustive()
    }
}

impl MetricsExporter {
    pub(crate) fn new(shared: Arc<Shared>) -> MetricsExporter {
        MetricsExporter { shared }
    }

    /// The current counters, as [`Server::metrics`](super::Server::metrics) returns them.
    pub fn snapshot(&self) -> Metrics {
        self.shared.snapshot()
    }

    /// The current figures in `format`. Allocates the text (a few KiB); never fails.
    pub fn render(&self, format: MetricsFormat) -> String {
        let inboxes = self
            .shared
            .metrics
            .iter()
            .enumerate()
            .filter_map(|(shard, thread)| {
                let inbox = self.shared.service.inbox(shard)?;
                Some(InboxSample {
                    depth: inbox.len(),
                    capacity: inbox.capacity(),
                    refused: inbox.refused(),
                    high_water: thread.inbox_high_water(),
                })
            })
            .collect();
        let snapshot = Snapshot {
            metrics: self.snapshot(),
            inboxes,
            handler_time: self.shared.conn.time_handlers,
        };
        let mut registry = Registry::with_prefix("gatehouse");
        registry.register_collector(Box::new(snapshot));
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail, and our collector returns only the writer's errors.
        let _ = match format {
            MetricsFormat::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &registry)
            }
            MetricsFormat::PrometheusText => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            }
        };
        out
    }
}

/// The collector registered for one scrape: a snapshot taken just before encoding.
#[derive(Debug)]
struct Snapshot {
    metrics: Metrics,
    inboxes: Vec<InboxSample>,
    /// Handler calls are timed ([`ServerBuilder::time_handlers`](super::ServerBuilder::time_handlers)): export the histogram.
    handler_time: bool,
}

/// [`HandlerTime`] as a Prometheus histogram in seconds (`_bucket{le}`, `_sum`, `_count`).
struct HandlerHistogram<'a>(&'a HandlerTime);

impl fmt::Debug for HandlerHistogram<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl EncodeMetric for HandlerHistogram<'_> {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> fmt::Result {
        let h = self.0;
        let mut buckets = [(0.0, 0); super::metrics::HANDLER_TIME_BUCKETS];
        for (i, (bucket, &count)) in buckets.iter_mut().zip(&h.buckets).enumerate() {
            let bound = HandlerTime::bucket_bound(i).map_or(f64::INFINITY, |d| d.as_secs_f64());
            *bucket = (bound, count);
        }
        let sum = h.total_ns as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, h.calls, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// `(label value, count)` for each close reason, in [`CloseCounts`]' field order.
fn close_reasons(c: &CloseCounts) -> [(&'static str, u64); 10] {
    [
        ("kicked", c.kicked),
        ("peer_closed", c.peer_closed),
        ("heartbeat_timeout", c.heartbeat_timeout),
        ("handshake_timeout", c.handshake_timeout),
        ("protocol_violation", c.protocol_violation),
        ("slow_consumer", c.slow_consumer),
        ("io_error", c.io_error),
        ("shutdown", c.shutdown),
        ("handler_panic", c.handler_panic),
        ("tls", c.tls),
    ]
}

// === impl Snapshot ===

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
        let m = &self.metrics;
        let e = &mut e;
        gauge(
            e,
            "sessions",
            "Live sessions (connected clients, handshaken or not).",
            m.sessions as u64,
        )?;
        gauge(
            e,
            "bound_uids",
            "Uids with at least one bound session.",
            m.bound_uids as u64,
        )?;
        counter(
            e,
            "connections_accepted",
            "Connections accepted.",
            None,
            m.accepted,
        )?;
        counter(
            e,
            "connections_refused",
            "Connections closed at accept (max_connections reached or out of file descriptors).",
            None,
            m.refused,
        )?;
        counter(
            e,
            "received",
            "Bytes read from clients.",
            Some(&Unit::Bytes),
            m.bytes_in,
        )?;
        counter(
            e,
            "sent",
            "Bytes written to clients.",
            Some(&Unit::Bytes),
            m.bytes_out,
        )?;
        counter(
            e,
            "packages_received",
            "Packages received from clients.",
            None,
            m.packages_in,
        )?;
        counter(
            e,
            "frames_queued",
            "Frames (packages) queued to clients.",
            None,
            m.frames_out,
        )?;
        counter(
            e,
            "frames_dropped",
            "Frames dropped: the session had closed or had not finished the handshake.",
            None,
            m.frames_dropped,
        )?;
        counter(
            e,
            "write_calls",
            "write system calls made.",
            None,
            m.write_calls,
        )?;
        counter(
            e,
            "compactions",
            "Connection table compactions after a peak.",
            None,
            m.compactions,
        )?;
        counter(
            e,
            "tls_handshakes",
            "TLS handshakes completed.",
            None,
            m.tls_handshakes,
        )?;
        counter(
            e,
            "tls_handshake_failures",
            "TLS handshakes that did not complete.",
            None,
            m.tls_handshake_failures,
        )?;

        let closes = ConstCounter::new(0u64);
        let mut family = e.encode_descriptor(
            "closes",
            "Connections closed, by reason.",
            None,
            closes.metric_type(),
        )?;
        for (reason, n) in close_reasons(&m.closes) {
            let labels = [("reason", reason)];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }

        let shards: Vec<String> = (0..self.inboxes.len()).map(|i| i.to_string()).collect();
        let per_shard = |e: &mut DescriptorEncoder<'_>,
                         name: &str,
                         help: &str,
                         counter: bool,
                         value: &dyn Fn(&InboxSample) -> u64|
         -> fmt::Result {
            let kind = if counter {
                ConstCounter::new(0u64).metric_type()
            } else {
                ConstGauge::new(0u64).metric_type()
            };
            let mut family = e.encode_descriptor(name, help, None, kind)?;
            for (shard, inbox) in shards.iter().zip(&self.inboxes) {
                let labels = [("shard", shard.as_str())];
                let metric = family.encode_family(&labels)?;
                if counter {
                    ConstCounter::new(value(inbox)).encode(metric)?;
                } else {
                    ConstGauge::new(value(inbox)).encode(metric)?;
                }
            }
            Ok(())
        };
        per_shard(
            e,
            "inbox_depth",
            "Commands queued in an I/O thread's inbox, at scrape time.",
            false,
            &|i| i.depth as u64,
        )?;
        per_shard(
            e,
            "inbox_capacity",
            "Capacity of an I/O thread's inbox.",
            false,
            &|i| i.capacity as u64,
        )?;
        per_shard(
            e,
            "inbox_refused",
            "Sends refused because an I/O thread's inbox was full.",
            true,
            &|i| i.refused,
        )?;
        per_shard(
            e,
            "inbox_high_water",
            "The most commands an I/O thread found queued in its inbox when it came to drain it.",
            false,
            &|i| i.high_water,
        )?;
        if self.handler_time {
            let histogram = HandlerHistogram(&m.handler_time);
            histogram.encode(e.encode_descriptor(
                "handler_duration",
                "Time spent in handler calls (handshake, request, notify) on the I/O threads.",
                Some(&Unit::Seconds),
                histogram.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
