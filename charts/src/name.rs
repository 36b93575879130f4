//! Run names: what a result file's stem says about the run.
//!
//! `bench/compare.sh` names its files `<server>-<what>.json`: `gate-1k`, `gate-1k-t1`,
//! `pinus-10k`, and for the scaling sweep `gate-scale-300`, `pinus-scale-10000`. The server is
//! the stem's prefix before the first `-`; a stem `<server>-scale-<N>` is one point of the
//! scaling sweep at N clients.

/// The server a run measured, from the stem's prefix.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Server {
    /// Prefix `gate`: the gatehouse example gate.
    Gatehouse,
    /// Prefix `pinus`: pinus 1.7.4 (bench/pinus-app).
    Pinus,
    /// Any other prefix, shown as it is.
    Other(String),
}

impl Server {
    /// The server for a stem prefix.
    pub fn from_prefix(prefix: &str) -> Server {
        match prefix {
            "gate" => Server::Gatehouse,
            "pinus" => Server::Pinus,
            other => Server::Other(other.to_string()),
        }
    }

    /// The name shown in legends: "gatehouse", "pinus 1.7.4", or the prefix itself.
    pub fn display(&self) -> &str {
        match self {
            Server::Gatehouse => "gatehouse",
            Server::Pinus => "pinus 1.7.4",
            Server::Other(s) => s,
        }
    }
}

/// A parsed run name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunName {
    /// The file stem, unchanged.
    pub stem: String,
    /// The server, from the prefix before the first `-` (the whole stem if there is none).
    pub server: Server,
    /// `Some(N)` for a scaling run named `<server>-scale-<N>` (N > 0).
    pub scale: Option<u64>,
}

impl RunName {
    /// Parses a file stem; every stem is a valid name.
    ///
    /// ```
    /// use gatehouse_charts::name::{RunName, Server};
    /// let n = RunName::parse("gate-scale-300");
    /// assert_eq!((n.server, n.scale), (Server::Gatehouse, Some(300)));
    /// assert_eq!(RunName::parse("pinus-1k").server.display(), "pinus 1.7.4");
    /// ```
    pub fn parse(stem: &str) -> RunName {
        let (prefix, rest) = match stem.split_once('-') {
            Some((p, r)) if !p.is_empty() => (p, Some(r)),
            _ => (stem, None),
        };
        let scale = rest
            .and_then(|r| r.strip_prefix("scale-"))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|&n| n > 0);
        RunName {
            stem: stem.to_string(),
            server: Server::from_prefix(prefix),
            scale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_scale_runs() {
        let g = RunName::parse("gate-1k-t1");
        assert_eq!(g.server, Server::Gatehouse);
        assert_eq!(g.scale, None);
        assert_eq!(RunName::parse("pinus-10k").server, Server::Pinus);
        assert_eq!(RunName::parse("pinus-scale-10000").scale, Some(10000));
        assert_eq!(RunName::parse("gate-scale-0").scale, None);
        assert_eq!(RunName::parse("gate-scale-").scale, None);
        assert_eq!(RunName::parse("gate-scale-12x").scale, None);
        assert_eq!(RunName::parse("gate-scale-+5").scale, None);
        assert_eq!(
            RunName::parse("gate-scale-99999999999999999999999").scale,
            None
        );
        let o = RunName::parse("nginx-1k");
        assert_eq!(o.server.display(), "nginx");
        // No dash, or a leading dash: the whole stem names the server.
        assert_eq!(RunName::parse("results").server.display(), "results");
        assert_eq!(RunName::parse("-x").server.display(), "-x");
    }
}
