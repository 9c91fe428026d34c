//! Counters and histograms in the Prometheus text format, kept in memory.
//!
//! Small on purpose: a registry of named counter families with labels, and one latency
//! histogram per route. Later features add their own families through [`Metrics::inc`].

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Family {
    help: &'static str,
    values: BTreeMap<String, u64>,
}

#[derive(Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<&'static str, Family>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

/// Appends `name="value",…` to `out`, escaping the values as the text format wants.
fn write_labels(out: &mut String, labels: &[(&str, &str)]) {
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

impl Metrics {
    /// Adds one to the counter `name` with these labels.
    pub fn inc(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)]) {
        // Built before the lock is taken; looked up by reference, so a counter that exists
        // already costs no second copy.
        let mut key = String::with_capacity(96);
        write_labels(&mut key, labels);
        if let Ok(mut counters) = self.counters.lock() {
            let family = counters.entry(name).or_default();
            family.help = help;
            match family.values.get_mut(&key) {
                Some(value) => *value += 1,
                None => {
                    family.values.insert(key, 1);
                }
            }
        }
    }

    /// Records one HTTP request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        self.inc(
            "otpgate_http_requests_total",
            "HTTP requests by route, method and status.",
            &[("route", route), ("method", method), ("status", &status)],
        );
        let seconds = elapsed.as_secs_f64();
        if let Ok(mut latency) = self.latency.lock() {
            if !latency.contains_key(route) {
                latency.insert(route.to_string(), Histogram::default());
            }
            let Some(histogram) = latency.get_mut(route) else {
                return;
            };
            for (slot, bound) in histogram.buckets.iter_mut().zip(BUCKETS) {
                if seconds <= bound {
                    *slot += 1;
                }
            }
            histogram.sum += seconds;
            histogram.count += 1;
        }
    }

    /// The whole registry in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(counters) = self.counters.lock() {
            for (name, family) in counters.iter() {
                let _ = writeln!(out, "# HELP {name} {}", family.help);
                let _ = writeln!(out, "# TYPE {name} counter");
                for (labels, value) in &family.values {
                    let _ = writeln!(out, "{name}{{{labels}}} {value}");
                }
            }
        }
        let name = "otpgate_http_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to answer an HTTP request, by route."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        if let Ok(latency) = self.latency.lock() {
            for (route, histogram) in latency.iter() {
                let mut label = String::new();
                write_labels(&mut label, &[("route", route)]);
                for (count, bound) in histogram.buckets.iter().zip(BUCKETS) {
                    let _ = writeln!(out, "{name}_bucket{{{label},le=\"{bound}\"}} {count}");
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{label},le=\"+Inf\"}} {}",
                    histogram.count
                );
                let _ = writeln!(out, "{name}_sum{{{label}}} {}", histogram.sum);
                let _ = writeln!(out, "{name}_count{{{label}}} {}", histogram.count);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_the_text_format() {
        let metrics = Metrics::default();
        metrics.observe_request("/healthz", "GET", 200, Duration::from_millis(2));
        metrics.observe_request("/healthz", "GET", 200, Duration::from_millis(2));
        let text = metrics.render();
        assert!(text.contains(
            "otpgate_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "otpgate_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.0025\"} 2"
        ));
        assert!(text.contains(
            "otpgate_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.001\"} 0"
        ));
        assert!(text.contains("otpgate_http_request_duration_seconds_count{route=\"/healthz\"} 2"));
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::default();
        metrics.inc(
            "otpgate_test_total",
            "A test.",
            &[("why", "a \"quoted\"\nvalue")],
        );
        assert!(
            metrics
                .render()
                .contains("why=\"a \\\"quoted\\\"\\nvalue\"")
        );
    }
}
