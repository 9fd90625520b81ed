//! Precomputed exposition text and the per-scrape value formatter.
//!
//! A target's payload is a list of metric families (one `# HELP`/`# TYPE`
//! header each) and a list of blocks (one per node, pod, GPU...). Each block
//! keeps the static `name{labels} ` text of its series in one string, grouped
//! by family; a scrape only computes and formats the values. Rendering walks
//! family-major so every family's lines stay together, as the text format
//! requires.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Counter,
    Gauge,
    Summary,
    Untyped,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Summary => "summary",
            Type::Untyped => "untyped",
        }
    }
}

/// How a sample's value moves with (simulated) time.
#[derive(Debug, Clone, Copy)]
pub enum Model {
    Const(f64),
    /// `base + rate * age`; never decreases while the block lives.
    Counter {
        base: f64,
        rate: f64,
        int: bool,
    },
    /// `base + amp * sin(w * t + phase)`, clamped at 0.
    Gauge {
        base: f64,
        amp: f64,
        w: f64,
        phase: f64,
        int: bool,
    },
    /// Seconds since the epoch of the block's start (start_time gauges).
    StartTime,
    /// Seconds since the epoch now (node_time_seconds, container_last_seen).
    Now,
}

/// Metric family headers of one target, in output order.
#[derive(Default)]
pub struct Families {
    headers: Vec<String>,
    index: HashMap<String, usize>,
}

impl Families {
    fn get(&mut self, name: &str, typ: Type, help: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.headers.len();
        self.headers.push(format!(
            "# HELP {name} {help}\n# TYPE {name} {}\n",
            typ.as_str()
        ));
        self.index.insert(name.to_string(), i);
        i
    }

    pub fn len(&self) -> usize {
        self.headers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }
}

/// A piece of a block's `text`.
#[derive(Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

#[derive(Clone, Copy)]
struct Series {
    /// `name` + suffix.
    name: Span,
    /// `{labels} `, or just the space before the value.
    labels: Span,
    model: Model,
}

/// The series of one node, pod, GPU...: static text plus value models.
pub struct Block {
    /// Simulated second at which the block's counters were 0 / base.
    pub start: f64,
    /// Each distinct name and label set once: a pod's 20-40 series share a
    /// few long label sets, and a 26 M-series fleet's text would otherwise
    /// take most of the generator's memory.
    text: String,
    series: Vec<Series>,
    /// `series[off[f]..off[f + 1]]` belong to family `f`.
    off: Vec<u32>,
}

impl Block {
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    fn family(&self, f: usize) -> &[Series] {
        if f + 1 < self.off.len() {
            &self.series[self.off[f] as usize..self.off[f + 1] as usize]
        } else {
            &[]
        }
    }
}

/// Collects the series of one block; families are registered on first use.
pub struct BlockBuilder<'a> {
    fams: &'a mut Families,
    start: f64,
    text: String,
    interned: HashMap<String, Span>,
    per_family: Vec<Vec<Series>>,
    scratch: String,
}

impl<'a> BlockBuilder<'a> {
    pub fn new(fams: &'a mut Families, start: f64) -> Self {
        BlockBuilder {
            fams,
            start,
            text: String::with_capacity(1024),
            interned: HashMap::new(),
            per_family: Vec::new(),
            scratch: String::new(),
        }
    }

    /// Adds one series of family `name` (sample name `name` + `suffix`).
    pub fn add(
        &mut self,
        name: &str,
        typ: Type,
        help: &str,
        suffix: &str,
        labels: &[(&str, &str)],
        model: Model,
    ) {
        let f = self.fams.get(name, typ, help);
        if self.per_family.len() <= f {
            self.per_family.resize_with(f + 1, Vec::new);
        }
        let mut head = std::mem::take(&mut self.scratch);
        head.clear();
        head.push_str(name);
        head.push_str(suffix);
        let name = self.intern(&head);
        head.clear();
        if !labels.is_empty() {
            head.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    head.push(',');
                }
                head.push_str(k);
                head.push_str("=\"");
                for c in v.chars() {
                    match c {
                        '\\' => head.push_str("\\\\"),
                        '"' => head.push_str("\\\""),
                        '\n' => head.push_str("\\n"),
                        c => head.push(c),
                    }
                }
                head.push('"');
            }
            head.push('}');
        }
        head.push(' ');
        let labels = self.intern(&head);
        self.scratch = head;
        self.per_family[f].push(Series {
            name,
            labels,
            model,
        });
    }

    fn intern(&mut self, piece: &str) -> Span {
        if let Some(&span) = self.interned.get(piece) {
            return span;
        }
        let start = self.text.len() as u32;
        self.text.push_str(piece);
        let span = Span {
            start,
            end: self.text.len() as u32,
        };
        self.interned.insert(piece.to_string(), span);
        span
    }

    pub fn finish(self) -> Block {
        let mut series = Vec::new();
        let mut off = Vec::with_capacity(self.per_family.len() + 1);
        off.push(0u32);
        for fam in self.per_family {
            series.extend(fam);
            off.push(series.len() as u32);
        }
        let mut text = self.text;
        text.shrink_to_fit();
        series.shrink_to_fit();
        Block {
            start: self.start,
            text,
            series,
            off,
        }
    }
}

/// Time of one render: simulated seconds since the fleet started, and the
/// matching Unix time.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub t: f64,
    pub unix: f64,
}

/// Renders every family over `blocks` into `out`; returns the sample count.
pub fn render<'b>(
    fams: &Families,
    blocks: impl Iterator<Item = &'b Block> + Clone,
    now: Now,
    out: &mut Vec<u8>,
) -> usize {
    let mut samples = 0;
    for (f, header) in fams.headers.iter().enumerate() {
        let mut wrote_header = false;
        for b in blocks.clone() {
            let series = b.family(f);
            if series.is_empty() {
                continue;
            }
            if !wrote_header {
                out.extend_from_slice(header.as_bytes());
                wrote_header = true;
            }
            let age = (now.t - b.start).max(0.0);
            let text = b.text.as_bytes();
            for s in series {
                out.extend_from_slice(&text[s.name.start as usize..s.name.end as usize]);
                out.extend_from_slice(&text[s.labels.start as usize..s.labels.end as usize]);
                let (v, int) = value(s.model, now, b.start, age);
                push_value(out, v, int);
                out.push(b'\n');
            }
            samples += series.len();
        }
    }
    samples
}

/// Epoch of simulated second 0 (set by the fleet); keeps `value` free of state.
fn value(m: Model, now: Now, start: f64, age: f64) -> (f64, bool) {
    match m {
        Model::Const(v) => (v, false),
        Model::Counter { base, rate, int } => (base + rate * age, int),
        Model::Gauge {
            base,
            amp,
            w,
            phase,
            int,
        } => ((base + amp * (w * now.t + phase).sin()).max(0.0), int),
        Model::StartTime => ((now.unix - now.t + start).floor(), true),
        Model::Now => ((now.unix * 1000.0).floor() / 1000.0, false),
    }
}

/// Integers as integers, everything else with three decimals: cheap, and
/// monotone (so counters stay counters after rounding).
pub fn push_value(out: &mut Vec<u8>, v: f64, int: bool) {
    if !v.is_finite() || v.abs() >= 9.0e15 {
        use std::io::Write;
        let _ = write!(out, "{v:e}");
        return;
    }
    if int {
        push_int(out, v.floor() as i64);
        return;
    }
    let milli = (v * 1000.0).round() as i64;
    let (neg, m) = if milli < 0 {
        (true, milli.unsigned_abs())
    } else {
        (false, milli as u64)
    };
    if neg {
        out.push(b'-');
    }
    push_uint(out, m / 1000);
    let frac = m % 1000;
    if frac != 0 {
        out.push(b'.');
        out.push(b'0' + (frac / 100) as u8);
        let rest = frac % 100;
        if rest != 0 {
            out.push(b'0' + (rest / 10) as u8);
            if rest % 10 != 0 {
                out.push(b'0' + (rest % 10) as u8);
            }
        }
    }
}

fn push_int(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_uint(out, v.unsigned_abs());
}

fn push_uint(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(v: f64, int: bool) -> String {
        let mut out = Vec::new();
        push_value(&mut out, v, int);
        String::from_utf8(out).unwrap()
    }

    /// Series that share a label set share its text, and each still renders
    /// as its own full line, family by family.
    #[test]
    fn shared_label_sets_render_as_full_lines() {
        let mut fams = Families::default();
        let pod = [("namespace", "shop"), ("pod", "cart-7d\"x")];
        let mut b = BlockBuilder::new(&mut fams, 0.0);
        b.add(
            "mem_bytes",
            Type::Gauge,
            "Memory.",
            "",
            &pod,
            Model::Const(2.0),
        );
        b.add(
            "cpu_seconds",
            Type::Counter,
            "CPU.",
            "_total",
            &pod,
            Model::Const(1.5),
        );
        b.add(
            "mem_bytes",
            Type::Gauge,
            "Memory.",
            "",
            &[],
            Model::Const(3.0),
        );
        let block = b.finish();
        let mut out = Vec::new();
        let now = Now { t: 0.0, unix: 0.0 };
        assert_eq!(render(&fams, std::iter::once(&block), now, &mut out), 3);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# HELP mem_bytes Memory.\n# TYPE mem_bytes gauge\n\
             mem_bytes{namespace=\"shop\",pod=\"cart-7d\\\"x\"} 2\n\
             mem_bytes 3\n\
             # HELP cpu_seconds CPU.\n# TYPE cpu_seconds counter\n\
             cpu_seconds_total{namespace=\"shop\",pod=\"cart-7d\\\"x\"} 1.5\n"
        );
        let text_of_one_label_set = r#"{namespace="shop",pod="cart-7d\"x"} "#.len();
        assert!(block.text.len() < "mem_bytes".len() * 2 + text_of_one_label_set * 2);
    }

    #[test]
    fn values_format_compactly() {
        assert_eq!(fmt(0.0, false), "0");
        assert_eq!(fmt(1.5, false), "1.5");
        assert_eq!(fmt(12.345, false), "12.345");
        assert_eq!(fmt(12.305, false), "12.305");
        assert_eq!(fmt(-2.25, false), "-2.25");
        assert_eq!(fmt(1e9 + 0.7, true), "1000000000");
        assert_eq!(fmt(0.001, false), "0.001");
        assert_eq!(fmt(0.05, false), "0.05");
    }
}
