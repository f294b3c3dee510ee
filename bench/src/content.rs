//! File contents that compress like a real flow repository: Python source, CSV and
//! JSON data, Markdown docs, and incompressible blobs. Each generator returns
//! exactly the requested number of bytes.

use std::fmt::Write as _;

use crate::rng::Rng;

const WORDS: &[&str] = &[
    "account",
    "batch",
    "customer",
    "daily",
    "event",
    "feature",
    "geo",
    "hourly",
    "invoice",
    "job",
    "key",
    "ledger",
    "metric",
    "node",
    "order",
    "payment",
    "query",
    "record",
    "session",
    "table",
    "user",
    "value",
    "window",
    "export",
    "yield",
    "zone",
    "amount",
    "bucket",
    "client",
    "delta",
    "entry",
    "filter",
    "group",
    "header",
    "index",
    "join",
    "kafka",
    "label",
    "merge",
    "normalize",
    "offset",
    "parse",
    "quota",
    "refund",
    "schema",
    "tenant",
    "upload",
    "vendor",
    "warehouse",
    "extract",
    "transform",
    "load",
    "report",
    "summary",
    "status",
    "region",
    "product",
    "price",
    "stock",
    "signal",
    "model",
    "score",
    "train",
    "predict",
];
const TYPES: &[&str] = &["int", "str", "float", "bool", "dict[str, Any]", "list[str]", "pd.DataFrame", "Path"];
const IMPORTS: &[&str] = &[
    "import json",
    "import logging",
    "import os",
    "from pathlib import Path",
    "from typing import Any",
    "import pandas as pd",
    "from datetime import datetime, timedelta",
    "from prefect import flow, task",
    "import httpx",
    "from dataclasses import dataclass, field",
];
const REGIONS: &[&str] = &["eu-west", "eu-central", "us-east", "us-west", "ap-south", "ap-northeast"];
const STATUSES: &[&str] = &["pending", "paid", "shipped", "refunded", "cancelled"];

/// The kinds of file in a generated tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Python,
    Csv,
    Json,
    Markdown,
    Blob,
}

impl Kind {
    pub fn extension(self) -> &'static str {
        match self {
            Kind::Python => "py",
            Kind::Csv => "csv",
            Kind::Json => "json",
            Kind::Markdown => "md",
            Kind::Blob => "bin",
        }
    }
}

/// Exactly `size` bytes of content of `kind`.
pub fn generate(kind: Kind, rng: &mut Rng, size: usize) -> Vec<u8> {
    if kind == Kind::Blob {
        let mut buf = vec![0u8; size];
        rng.fill(&mut buf);
        return buf;
    }
    let mut out = String::with_capacity(size + 512);
    match kind {
        Kind::Python => python(rng, size, &mut out),
        Kind::Csv => csv(rng, size, &mut out),
        Kind::Json => json(rng, size, &mut out),
        Kind::Markdown | Kind::Blob => markdown(rng, size, &mut out),
    }
    let mut bytes = out.into_bytes();
    bytes.truncate(size);
    bytes
}

fn ident(rng: &mut Rng) -> String {
    format!("{}_{}", rng.pick(WORDS), rng.pick(WORDS))
}

fn class_name(rng: &mut Rng) -> String {
    let mut name = String::new();
    for word in [rng.pick(WORDS), rng.pick(WORDS)] {
        name.push_str(&word[..1].to_uppercase());
        name.push_str(&word[1..]);
    }
    name
}

fn sentence(rng: &mut Rng, words: u64, out: &mut String) {
    for i in 0..words {
        let word = rng.pick(WORDS);
        if i == 0 {
            out.push_str(&word[..1].to_uppercase());
            out.push_str(&word[1..]);
        } else {
            out.push(' ');
            out.push_str(word);
        }
    }
    out.push('.');
}

fn python(rng: &mut Rng, size: usize, out: &mut String) {
    out.push_str("\"\"\"");
    sentence(rng, 8, out);
    out.push_str("\"\"\"\n\nfrom __future__ import annotations\n\n");
    for _ in 0..3 + rng.below(4) {
        out.push_str(rng.pick(IMPORTS));
        out.push('\n');
    }
    out.push_str("\nlog = logging.getLogger(__name__)\n");
    while out.len() < size {
        if rng.below(4) == 0 {
            let _ = write!(out, "\n\n@dataclass\nclass {}:\n    \"\"\"", class_name(rng));
            let words = 6 + rng.below(8);
            sentence(rng, words, out);
            out.push_str("\"\"\"\n\n");
            for _ in 0..2 + rng.below(5) {
                let _ = writeln!(out, "    {}: {} = field(default=None)", ident(rng), rng.pick(TYPES));
            }
            continue;
        }
        let (name, a, b) = (ident(rng), ident(rng), ident(rng));
        let _ = write!(
            out,
            "\n\n@task(retries={})\ndef {name}({a}: {}, {b}: {} = {}) -> {}:\n    \"\"\"",
            rng.below(4),
            rng.pick(TYPES),
            rng.pick(TYPES),
            rng.below(1000),
            rng.pick(TYPES)
        );
        let words = 5 + rng.below(10);
        sentence(rng, words, out);
        out.push_str("\"\"\"\n");
        let var = ident(rng);
        let _ = writeln!(out, "    {var} = {{}}\n    log.info(\"{name} %s\", {a})");
        for _ in 0..1 + rng.below(5) {
            match rng.below(3) {
                0 => {
                    let _ = writeln!(
                        out,
                        "    for item in {a}:\n        if item.get(\"{}\") > {}:\n            {var}[item[\"{}\"]] = item",
                        rng.pick(WORDS),
                        rng.below(500),
                        rng.pick(WORDS)
                    );
                }
                1 => {
                    let _ =
                        writeln!(out, "    {var}[\"{}\"] = {}({b}, {})", rng.pick(WORDS), ident(rng), rng.below(100));
                }
                _ => {
                    let _ = writeln!(
                        out,
                        "    if not {var}:\n        raise ValueError(f\"no {} for {{{b}!r}}\")",
                        rng.pick(WORDS)
                    );
                }
            }
        }
        let _ = writeln!(out, "    return {var}");
    }
}

fn csv(rng: &mut Rng, size: usize, out: &mut String) {
    out.push_str("id,date,customer,region,product,amount,quantity,status\n");
    let mut id = rng.below(1_000_000);
    while out.len() < size {
        id += 1 + rng.below(3);
        let _ = writeln!(
            out,
            "{id},2024-{:02}-{:02},{}_{},{},{},{}.{:02},{},{}",
            1 + rng.below(12),
            1 + rng.below(28),
            rng.pick(WORDS),
            rng.below(5000),
            rng.pick(REGIONS),
            rng.pick(WORDS),
            rng.below(10_000),
            rng.below(100),
            1 + rng.below(20),
            rng.pick(STATUSES)
        );
    }
}

fn json(rng: &mut Rng, size: usize, out: &mut String) {
    out.push_str("[\n");
    let mut first = true;
    while out.len() < size {
        if !first {
            out.push_str(",\n");
        }
        first = false;
        let _ = write!(
            out,
            "  {{\n    \"id\": {},\n    \"name\": \"{}\",\n    \"region\": \"{}\",\n    \"score\": {:.4},\n    \"active\": {},\n    \"tags\": [\"{}\", \"{}\"]\n  }}",
            rng.below(10_000_000),
            ident(rng),
            rng.pick(REGIONS),
            rng.unit() * 100.0,
            rng.below(2) == 0,
            rng.pick(WORDS),
            rng.pick(WORDS)
        );
    }
    out.push_str("\n]\n");
}

fn markdown(rng: &mut Rng, size: usize, out: &mut String) {
    out.push_str("# ");
    sentence(rng, 4, out);
    out.push('\n');
    while out.len() < size {
        out.push('\n');
        for _ in 0..2 + rng.below(5) {
            let words = 6 + rng.below(14);
            sentence(rng, words, out);
            out.push(' ');
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_gives_exactly_the_size_asked() {
        for kind in [Kind::Python, Kind::Csv, Kind::Json, Kind::Markdown, Kind::Blob] {
            for size in [0, 1, 17, 4096, 100_000] {
                assert_eq!(generate(kind, &mut Rng::new(3), size).len(), size, "{kind:?} {size}");
            }
        }
    }

    #[test]
    fn same_seed_gives_the_same_bytes() {
        let a = generate(Kind::Python, &mut Rng::new(9), 5000);
        let b = generate(Kind::Python, &mut Rng::new(9), 5000);
        let c = generate(Kind::Python, &mut Rng::new(10), 5000);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
