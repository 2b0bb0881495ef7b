//! Response bodies: JSON arrays / objects with keys in select order, and CSV.

use serde_json::Value;

/// One row as a JSON object, keys in the given order.
pub fn object(names: &[String], values: &[Value]) -> String {
    let mut out = String::from("{");
    for (i, (n, v)) in names.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(n.clone()).to_string());
        out.push(':');
        out.push_str(&v.to_string());
    }
    out.push('}');
    out
}

/// Rows as a JSON array.
pub fn array(names: &[String], rows: &[Vec<Value>]) -> String {
    let mut out = String::from("[");
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&object(names, r));
    }
    out.push(']');
    out
}

fn csv_field(v: &Value) -> String {
    let s = match v {
        Value::Null => return String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Rows as CSV with a header line (RFC 4180 quoting).
pub fn csv(names: &[String], rows: &[Vec<Value>]) -> String {
    let mut out = names
        .iter()
        .map(|n| csv_field(&Value::String(n.clone())))
        .collect::<Vec<_>>()
        .join(",");
    for r in rows {
        out.push('\n');
        out.push_str(&r.iter().map(csv_field).collect::<Vec<_>>().join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_quotes_and_nulls() {
        let names = vec!["a".to_owned(), "b".to_owned()];
        let rows = vec![
            vec![json!("x,\"y\""), Value::Null],
            vec![json!(1), json!(true)],
        ];
        assert_eq!(csv(&names, &rows), "a,b\n\"x,\"\"y\"\"\",\n1,true");
        assert_eq!(array(&names, &rows[1..]), r#"[{"a":1,"b":true}]"#);
    }
}
