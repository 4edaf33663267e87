//! Small pieces of markup the pages share: badges, progress, copyable text, times, the latency
//! chart. No inline styles: sizes are SVG attributes, colours are classes of the stylesheet.

use crate::http::api::types::Operation;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use toygres_activities::metadata::HealthSampleRecord;

/// The look of a state or status: `good`, `bad`, `busy` or plain.
fn tone(word: &str) -> &'static str {
    match word {
        "running" | "healthy" | "succeeded" | "ok" => "good",
        "failed" | "unhealthy" | "canceled" | "failing" => "bad",
        "deleted" | "unknown" | "stopped" | "none" => "",
        _ => "busy",
    }
}

/// A badge for an instance state, a health or an operation status.
pub fn badge(word: &str) -> Markup {
    let tone = tone(word);
    html! {
        span.badge.good[tone == "good"].bad[tone == "bad"].busy[tone == "busy"] { (word) }
    }
}

/// Steps done out of all, as a `<progress>` and words.
pub fn progress(done: u32, total: u32) -> Markup {
    html! {
        progress value=(done) max=(total.max(1)) aria-label=(format!("{done} of {total} steps done")) {}
        " " span.muted { (done) "/" (total) }
    }
}

/// An operation's step and progress while it runs, or its status when finished.
pub fn operation_state(operation: &Operation) -> Markup {
    let finished = matches!(
        operation.status.as_str(),
        "succeeded" | "failed" | "canceled"
    );
    html! {
        (badge(&operation.status))
        @if !finished {
            " " @if let Some(step) = &operation.step { code { (step) } " " }
            (progress(operation.progress.done, operation.progress.total))
        }
    }
}

/// `text` in a `<code>` with the id `id`, and a button that copies it.
pub fn copyable(id: &str, text: &str, what: &str) -> Markup {
    html! {
        span.copyable {
            code #(id) { (text) }
            button.copy type="button" data-copy=(id) aria-label=(format!("Copy the {what}")) { "Copy" }
        }
    }
}

/// A time as "3 min ago" with the exact time in its `datetime` and title.
pub fn ago(at: DateTime<Utc>) -> Markup {
    let exact = at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    html! {
        time datetime=(at.to_rfc3339()) title=(exact) { (relative(Utc::now() - at)) }
    }
}

/// "12 s ago", "4 min ago", "3 h ago", "2 d ago".
fn relative(elapsed: chrono::Duration) -> String {
    let seconds = elapsed.num_seconds().max(0);
    match seconds {
        0..60 => format!("{seconds} s ago"),
        60..3600 => format!("{} min ago", seconds / 60),
        3600..86400 => format!("{} h ago", seconds / 3600),
        _ => format!("{} d ago", seconds / 86400),
    }
}

/// How long an operation took (or has been running).
pub fn duration(operation: &Operation) -> String {
    let start = operation.started_at.unwrap_or(operation.created_at);
    let end = operation.finished_at.unwrap_or_else(Utc::now);
    let millis = (end - start).num_milliseconds().max(0);
    if millis < 10_000 {
        format!("{:.1} s", millis as f64 / 1000.0)
    } else if millis < 120_000 {
        format!("{} s", millis / 1000)
    } else {
        format!("{} min {} s", millis / 60_000, (millis / 1000) % 60)
    }
}

/// The first characters of an operation id (the rest adds nothing on screen).
pub fn short_id(id: &str) -> &str {
    id.get(..11).unwrap_or(id)
}

/// The latency of recent checks as bars (failed checks in red, full height), with a text
/// summary for screen readers and for anyone who prefers numbers.
pub fn latency_chart(samples: &[HealthSampleRecord]) -> Markup {
    const WIDTH: i32 = 300;
    const HEIGHT: i32 = 80;
    if samples.is_empty() {
        return html! { p.muted { "No health check yet: the first comes within a check interval of the instance running." } };
    }
    let slowest = samples
        .iter()
        .filter(|sample| sample.ok)
        .map(|sample| sample.latency_ms)
        .max()
        .unwrap_or(1)
        .max(1);
    let slot = WIDTH / samples.len().max(30) as i32;
    let failed = samples.iter().filter(|sample| !sample.ok).count();
    let last = &samples[samples.len() - 1];
    let summary = format!(
        "Last {} checks: {} failed; latest {} in {} ms; slowest success {} ms.",
        samples.len(),
        failed,
        if last.ok { "succeeded" } else { "failed" },
        last.latency_ms,
        slowest
    );
    html! {
        figure {
            svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(summary) preserveAspectRatio="none" {
                line.axis x1="0" y1=(HEIGHT - 1) x2=(WIDTH) y2=(HEIGHT - 1) {}
                @for (index, sample) in samples.iter().enumerate() {
                    @let height = if sample.ok { (sample.latency_ms * (HEIGHT - 4) / slowest).max(2) } else { HEIGHT - 4 };
                    rect class=(if sample.ok { "ok" } else { "failed" })
                        x=(index as i32 * slot + 1) y=(HEIGHT - 1 - height) width=((slot - 2).max(1)) height=(height) {
                        title { (sample.checked_at.format("%H:%M:%S")) ": " (if sample.ok { "ok" } else { "failed" }) ", " (sample.latency_ms) " ms" }
                    }
                }
            }
            figcaption.muted { (summary) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        assert_eq!(relative(chrono::Duration::seconds(5)), "5 s ago");
        assert_eq!(relative(chrono::Duration::seconds(-5)), "0 s ago");
        assert_eq!(relative(chrono::Duration::seconds(125)), "2 min ago");
        assert_eq!(relative(chrono::Duration::hours(5)), "5 h ago");
        assert_eq!(relative(chrono::Duration::days(3)), "3 d ago");
    }

    #[test]
    fn badges_escape_and_tone() {
        let markup = badge("<script>").into_string();
        assert!(markup.contains("&lt;script&gt;") && markup.contains("busy"));
        assert!(badge("running").into_string().contains("good"));
        assert!(badge("failed").into_string().contains("bad"));
    }

    #[test]
    fn the_chart_has_one_bar_per_check() {
        let samples: Vec<HealthSampleRecord> = (0..5)
            .map(|index| HealthSampleRecord {
                checked_at: Utc::now(),
                ok: index != 3,
                latency_ms: 10 + index,
            })
            .collect();
        let markup = latency_chart(&samples).into_string();
        assert_eq!(markup.matches("<rect").count(), 5);
        assert_eq!(markup.matches("class=\"failed\"").count(), 1);
        assert!(markup.contains("1 failed") && !markup.contains("style="));
    }
}
