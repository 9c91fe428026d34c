//! Counters and histograms in the Prometheus text format, kept in memory.
//!
//! Small on purpose: a registry of named counter families and latency histogram families,
//! with labels. Features add their own families through [`Metrics::inc`] and
//! [`Metrics::observe`].

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

impl Histogram {
    fn record(&mut self, seconds: f64) {
        for (slot, bound) in self.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *slot += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// A histogram family: its help and one histogram per set of labels.
#[derive(Default)]
struct Histograms {
    help: &'static str,
    values: BTreeMap<String, Histogram>,
}

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<&'static str, Family>>,
    histograms: Mutex<BTreeMap<&'static str, Histograms>>,
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
        self.count_request(route, method, status);
        self.observe(
            "otpgate_http_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            &[("route", route)],
            elapsed,
        );
    }

    /// Records one HTTP request that asked to wait for a person's decision (the API's `wait`
    /// for an approval): counted with the others, timed apart, so that people slow to press a
    /// button do not look like a slow server.
    pub fn observe_approval_wait(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.count_request(route, method, status);
        self.observe(
            "otpgate_http_approval_wait_duration_seconds",
            "Time to answer an HTTP request that waited for an approval, by route.",
            &[("route", route)],
            elapsed,
        );
    }

    fn count_request(&self, route: &str, method: &str, status: u16) {
        let status = status.to_string();
        self.inc(
            "otpgate_http_requests_total",
            "HTTP requests by route, method and status.",
            &[("route", route), ("method", method), ("status", &status)],
        );
    }

    /// Adds one duration to the latency histogram `name` with these labels.
    pub fn observe(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        elapsed: Duration,
    ) {
        let mut key = String::with_capacity(64);
        write_labels(&mut key, labels);
        let seconds = elapsed.as_secs_f64();
        if let Ok(mut histograms) = self.histograms.lock() {
            let family = histograms.entry(name).or_default();
            family.help = help;
            match family.values.get_mut(&key) {
                Some(histogram) => histogram.record(seconds),
                None => {
                    let mut histogram = Histogram::default();
                    histogram.record(seconds);
                    family.values.insert(key, histogram);
                }
            }
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
        if let Ok(histograms) = self.histograms.lock() {
            for (name, family) in histograms.iter() {
                let _ = writeln!(out, "# HELP {name} {}", family.help);
                let _ = writeln!(out, "# TYPE {name} histogram");
                for (label, histogram) in &family.values {
                    let comma = if label.is_empty() { "" } else { "," };
                    for (count, bound) in histogram.buckets.iter().zip(BUCKETS) {
                        let _ =
                            writeln!(out, "{name}_bucket{{{label}{comma}le=\"{bound}\"}} {count}");
                    }
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{{label}{comma}le=\"+Inf\"}} {}",
                        histogram.count
                    );
                    let _ = writeln!(out, "{name}_sum{{{label}}} {}", histogram.sum);
                    let _ = writeln!(out, "{name}_count{{{label}}} {}", histogram.count);
                }
            }
        }
        out
    }
}

/// A gauge family in the text format, from values read elsewhere (the store) at each scrape.
pub fn write_gauges(
    out: &mut String,
    name: &str,
    help: &str,
    samples: &[(Vec<(&str, &str)>, f64)],
) {
    if samples.is_empty() {
        return;
    }
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (labels, value) in samples {
        let mut line = String::new();
        write_labels(&mut line, labels);
        let _ = writeln!(out, "{name}{{{line}}} {value}");
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
    fn a_histogram_family_with_two_labels_keeps_one_histogram_per_pair() {
        let metrics = Metrics::default();
        let name = "otpgate_test_duration_seconds";
        let observe = |client: &str, result: &str, millis: u64| {
            metrics.observe(
                name,
                "A test.",
                &[("client", client), ("result", result)],
                Duration::from_millis(millis),
            );
        };
        observe("nas", "accepted", 3);
        observe("nas", "accepted", 30);
        observe("nas", "rejected", 1);
        let text = metrics.render();
        assert!(text.contains("# TYPE otpgate_test_duration_seconds histogram"));
        assert!(text.contains(
            "otpgate_test_duration_seconds_bucket{client=\"nas\",result=\"accepted\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "otpgate_test_duration_seconds_bucket{client=\"nas\",result=\"accepted\",le=\"+Inf\"} 2"
        ));
        assert!(
            text.contains(
                "otpgate_test_duration_seconds_count{client=\"nas\",result=\"rejected\"} 1"
            )
        );
    }

    #[test]
    fn gauges_render_with_their_labels_and_an_empty_family_not_at_all() {
        let mut out = String::new();
        write_gauges(&mut out, "otpgate_x", "X.", &[]);
        assert!(out.is_empty());
        write_gauges(
            &mut out,
            "otpgate_x",
            "X.",
            &[(vec![("directory", "a\"b")], 1.5)],
        );
        assert_eq!(
            out,
            "# HELP otpgate_x X.\n# TYPE otpgate_x gauge\notpgate_x{directory=\"a\\\"b\"} 1.5\n"
        );
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
