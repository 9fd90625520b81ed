//! Prometheus series selectors: `metric{label="v", other=~"re.*", x!="y"}`.
//!
//! Selectors are matched in Rust against parsed label sets; they never
//! become SQL.

use std::collections::BTreeMap;

use regex::Regex;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad selector at column {column}: {reason}")]
pub struct SelectorError {
    pub column: usize,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub enum MatchOp {
    Equal(String),
    NotEqual(String),
    Regex(Regex),
    NotRegex(Regex),
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
}

impl Matcher {
    /// An absent label matches as the empty string, as in Prometheus.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let v = value.unwrap_or("");
        match &self.op {
            MatchOp::Equal(s) => v == s,
            MatchOp::NotEqual(s) => v != s,
            MatchOp::Regex(r) => r.is_match(v),
            MatchOp::NotRegex(r) => !r.is_match(v),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub matchers: Vec<Matcher>,
}

impl Selector {
    /// The metric name when the selector pins one with `name{...}` or `__name__="x"`.
    pub fn metric_name(&self) -> Option<&str> {
        self.matchers
            .iter()
            .find_map(|m| match (&m.op, m.name.as_str()) {
                (MatchOp::Equal(v), "__name__") => Some(v.as_str()),
                _ => None,
            })
    }

    pub fn matches(&self, metric: &str, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|m| {
            if m.name == "__name__" {
                m.matches(Some(metric))
            } else {
                m.matches(labels.get(&m.name).map(String::as_str))
            }
        })
    }

    pub fn push_equal(&mut self, name: &str, value: &str) {
        self.matchers.push(Matcher {
            name: name.to_string(),
            op: MatchOp::Equal(value.to_string()),
        });
    }

    pub fn parse(input: &str) -> Result<Selector, SelectorError> {
        let mut p = Cursor { s: input, pos: 0 };
        let mut matchers = Vec::new();
        p.skip_ws();
        let name = p.ident(true);
        if !name.is_empty() {
            matchers.push(Matcher {
                name: "__name__".into(),
                op: MatchOp::Equal(name.to_string()),
            });
        }
        p.skip_ws();
        if p.eat('{') {
            loop {
                p.skip_ws();
                if p.eat('}') {
                    break;
                }
                // PromQL 3 quotes names that are not identifiers:
                // `{"http.server.duration", "url.scheme"="https"}`.
                let label = if p.rest().starts_with(['"', '\'', '`']) {
                    let quoted = p.quoted()?;
                    p.skip_ws();
                    if p.rest().starts_with([',', '}']) {
                        if matchers.iter().any(|m| m.name == "__name__") {
                            return Err(p.error("metric name is already set"));
                        }
                        matchers.push(Matcher {
                            name: "__name__".into(),
                            op: MatchOp::Equal(quoted),
                        });
                        if !p.eat(',') {
                            p.eat('}');
                            break;
                        }
                        continue;
                    }
                    quoted
                } else {
                    p.ident(false).to_string()
                };
                if label.is_empty() {
                    return Err(p.error("expected a label name"));
                }
                p.skip_ws();
                let op = if p.eat_str("=~") {
                    "=~"
                } else if p.eat_str("!~") {
                    "!~"
                } else if p.eat_str("!=") {
                    "!="
                } else if p.eat('=') {
                    "="
                } else {
                    return Err(p.error("expected one of =, !=, =~, !~"));
                };
                p.skip_ws();
                let value = p.quoted()?;
                let op = match op {
                    "=" => MatchOp::Equal(value),
                    "!=" => MatchOp::NotEqual(value),
                    _ => {
                        let re = Regex::new(&format!("^(?:{value})$"))
                            .map_err(|e| p.error(&format!("bad regex: {e}")))?;
                        if op == "=~" {
                            MatchOp::Regex(re)
                        } else {
                            MatchOp::NotRegex(re)
                        }
                    }
                };
                matchers.push(Matcher { name: label, op });
                p.skip_ws();
                if p.eat(',') {
                    continue;
                }
                if p.eat('}') {
                    break;
                }
                return Err(p.error("expected , or }"));
            }
        }
        p.skip_ws();
        if p.pos != p.s.len() {
            return Err(p.error("unexpected trailing text"));
        }
        if matchers.is_empty() {
            return Err(SelectorError {
                column: 1,
                reason: "empty selector".into(),
            });
        }
        Ok(Selector { matchers })
    }
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
    fn error(&self, reason: &str) -> SelectorError {
        SelectorError {
            column: self.s[..self.pos].chars().count() + 1,
            reason: reason.to_string(),
        }
    }
    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.s.len() - trimmed.len();
    }
    fn eat(&mut self, c: char) -> bool {
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }
    fn eat_str(&mut self, t: &str) -> bool {
        if self.rest().starts_with(t) {
            self.pos += t.len();
            true
        } else {
            false
        }
    }
    fn ident(&mut self, allow_colon: bool) -> &'a str {
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|(i, c)| {
                let ok = c.is_ascii_alphabetic()
                    || *c == '_'
                    || (allow_colon && *c == ':')
                    || (*i > 0 && c.is_ascii_digit());
                !ok
            })
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }
    fn quoted(&mut self) -> Result<String, SelectorError> {
        let quote = match self.rest().chars().next() {
            Some(q @ ('"' | '\'' | '`')) => q,
            _ => return Err(self.error("expected a quoted value")),
        };
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                self.pos += i + 1;
                return Ok(out);
            }
            if c == '\\' && quote != '`' {
                match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, e)) => out.push(e),
                    None => break,
                }
            } else {
                out.push(c);
            }
        }
        Err(self.error("unterminated quoted value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn parses_and_matches() {
        let s = Selector::parse(r#"node_cpu_seconds_total{mode!="idle", cpu=~"0|1", job="node"}"#)
            .unwrap();
        assert_eq!(s.metric_name(), Some("node_cpu_seconds_total"));
        let l = labels(&[("mode", "user"), ("cpu", "1"), ("job", "node")]);
        assert!(s.matches("node_cpu_seconds_total", &l));
        let l = labels(&[("mode", "idle"), ("cpu", "1"), ("job", "node")]);
        assert!(!s.matches("node_cpu_seconds_total", &l));
        let l = labels(&[("mode", "user"), ("cpu", "10"), ("job", "node")]);
        assert!(
            !s.matches("node_cpu_seconds_total", &l),
            "regex is anchored"
        );
    }

    #[test]
    fn quoted_values_keep_special_characters() {
        let s = Selector::parse(r#"{path="a,b}=\"c\"", __name__="m"}"#).unwrap();
        assert_eq!(s.metric_name(), Some("m"));
        assert!(s.matches("m", &labels(&[("path", "a,b}=\"c\"")])));
    }

    #[test]
    fn quoted_names_of_promql_3() {
        let s = Selector::parse(r#"{"http.server.duration", "url.scheme"=~"https?"}"#).unwrap();
        assert_eq!(s.metric_name(), Some("http.server.duration"));
        assert!(s.matches("http.server.duration", &labels(&[("url.scheme", "https")])));
        assert!(!s.matches("http_server_duration", &labels(&[("url.scheme", "https")])));
        let s = Selector::parse(r#"{job="a", "dotted.m"}"#).unwrap();
        assert_eq!(s.metric_name(), Some("dotted.m"));
        let e = Selector::parse(r#"m{"other"}"#).unwrap_err();
        assert!(e.reason.contains("already set"), "{e}");
    }

    #[test]
    fn errors_have_columns() {
        let e = Selector::parse("m{a=\"x\"").unwrap_err();
        assert!(e.reason.contains(", or }"), "{e}");
        let e = Selector::parse("m{a~\"x\"}").unwrap_err();
        assert_eq!(e.column, 4);
        assert!(Selector::parse("m{a=~\"(\"}").is_err());
        assert!(Selector::parse("").is_err());
    }
}
