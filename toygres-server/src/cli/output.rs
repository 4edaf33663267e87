//! What goes to stdout: aligned tables, key/value details, or JSON. Progress and errors go to
//! stderr, so `-o json` output can be piped as is.

use super::exit::CliError;
use clap::ValueEnum;
use serde_json::Value;
use serde_json::value::RawValue;
use std::io::Write as _;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable tables.
    Table,
    /// The server's JSON, pretty-printed.
    Json,
}

/// Rows under a header, each column as wide as its widest cell.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column headers.
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are blank, extra cells are dropped).
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// The table as text, one line per row, with a trailing newline.
    pub fn render(&self) -> String {
        let cell = |row: &[String], column: usize| row.get(column).cloned().unwrap_or_default();
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|column| {
                self.rows
                    .iter()
                    .map(|row| cell(row, column).chars().count())
                    .chain([self.headers[column].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        let mut text = String::new();
        for row in std::iter::once(&header).chain(&self.rows) {
            let cells: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(column, width)| format!("{:<width$}", cell(row, column)))
                .collect();
            text.push_str(cells.join("  ").trim_end());
            text.push('\n');
        }
        text
    }
}

/// `key: value` lines with aligned values, for one resource.
#[derive(Debug, Clone, Default)]
pub struct Details {
    rows: Vec<(String, String)>,
}

impl Details {
    /// No lines yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a line.
    pub fn field(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.rows.push((key.into(), value.into()));
        self
    }

    /// Adds a line when `value` is present.
    pub fn optional(&mut self, key: impl Into<String>, value: Option<String>) -> &mut Self {
        if let Some(value) = value {
            self.field(key, value);
        }
        self
    }

    /// The lines as text, with a trailing newline.
    pub fn render(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|(key, _)| key.chars().count() + 1)
            .max()
            .unwrap_or(0);
        self.rows
            .iter()
            .map(|(key, value)| format!("{:<width$}  {value}\n", format!("{key}:")))
            .collect()
    }
}

/// Writes `text` to stdout. A reader that went away (`| head`) is not an error.
pub fn emit(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(source) => Err(CliError::Io {
            context: "cannot write the output",
            source,
        }),
    }
}

/// Writes a JSON text to stdout as it is (the server's own bytes, or [`json_object`] /
/// [`json_array`] of them), on one line.
pub fn emit_json(text: &str) -> Result<(), CliError> {
    emit(&format!("{}\n", text.trim_end()))
}

/// A JSON object of `fields`, each value a JSON text kept as it is (so that the server's JSON
/// keeps its key order and formatting).
pub fn json_object(fields: &[(&str, &str)]) -> String {
    let members: Vec<String> = fields
        .iter()
        .map(|(key, value)| format!("{}:{}", Value::from(*key), value.trim()))
        .collect();
    format!("{{{}}}", members.join(","))
}

/// A JSON array of JSON texts kept as they are.
pub fn json_array(items: &[Box<RawValue>]) -> String {
    let items: Vec<&str> = items.iter().map(|item| item.get()).collect();
    format!("[{}]", items.join(","))
}

/// `{"items": [...], "next_cursor": null}`: every page of a list as one page.
pub fn json_page(items: &[Box<RawValue>]) -> String {
    json_object(&[("items", &json_array(items)), ("next_cursor", "null")])
}

/// Writes one line to stderr (notes and progress lines); a closed stderr is ignored.
pub fn note(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let mut table = Table::new(&["NAME", "STATE"]);
        table.push(vec!["orders-db".into(), "running".into()]);
        table.push(vec!["a".into()]);
        assert_eq!(table.render(), "NAME       STATE\norders-db  running\na\n");
    }

    #[test]
    fn json_keeps_the_servers_text() -> Result<(), serde_json::Error> {
        let items = vec![
            RawValue::from_string(r#"{"name":"b","state":"x"}"#.to_string())?,
            RawValue::from_string("{\"name\":\"a\"}".to_string())?,
        ];
        let page = json_page(&items);
        assert_eq!(
            page,
            r#"{"items":[{"name":"b","state":"x"},{"name":"a"}],"next_cursor":null}"#
        );
        let parsed: Value = serde_json::from_str(&page)?;
        assert_eq!(parsed["items"][1]["name"], "a");
        assert_eq!(json_page(&[]), r#"{"items":[],"next_cursor":null}"#);
        assert_eq!(
            json_object(&[("password", r#""a\"b""#), ("instance", " {} ")]),
            r#"{"password":"a\"b","instance":{}}"#
        );
        Ok(())
    }

    #[test]
    fn details_align_values() {
        let mut details = Details::new();
        details
            .field("name", "orders-db")
            .optional("error", None)
            .optional("port", Some("15432".into()));
        assert_eq!(details.render(), "name:  orders-db\nport:  15432\n");
    }
}
