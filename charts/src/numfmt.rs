//! Number formatting for labels: short SI-style values and grouped integers.

/// `1234` → `"1,234"`; negative numbers keep their sign.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// About three significant digits with a k/M/G suffix: `950` → `"950"`, `12345` → `"12.3k"`,
/// `2.5e6` → `"2.5M"`, `0.123` → `"0.123"`.
pub fn short(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let a = v.abs();
    let (scaled, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    format!("{}{suffix}", sig3(scaled))
}

/// Three significant digits without trailing zeros: `12.30` → `"12.3"`, `1234.5` → `"1235"`.
fn sig3(v: f64) -> String {
    let a = v.abs();
    let decimals = if a >= 100.0 || a == 0.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A latency given in µs, in the unit that keeps it short: `276 µs`, `51.1 ms`, `2.32 s`.
pub fn duration_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{} s", sig3(us / 1e6))
    } else if us >= 1e3 {
        format!("{} ms", sig3(us / 1e3))
    } else {
        format!("{} µs", sig3(us))
    }
}

/// A client count as a file-name suffix: `10000` → `"10k"`, `1500` → `"1500"`.
pub fn count_suffix(n: u64) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_and_short_forms() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1234567), "1,234,567");
        assert_eq!(short(950.0), "950");
        assert_eq!(short(12345.0), "12.3k");
        assert_eq!(short(2.5e6), "2.5M");
        assert_eq!(short(0.1234), "0.123");
        assert_eq!(short(12.0), "12");
        assert_eq!(count_suffix(10000), "10k");
        assert_eq!(duration_us(276.4), "276 µs");
        assert_eq!(duration_us(51_120.0), "51.1 ms");
        assert_eq!(duration_us(2_317_000.0), "2.32 s");
        assert_eq!(count_suffix(1500), "1500");
    }
}
