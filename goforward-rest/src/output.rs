//! Response bodies: JSON arrays / objects with keys in select order, and CSV.

use serde_json::Value;

/// One row as a JSON object, keys in the given order.
pub fn object(names: &[String], values: &[Value]) -> String {
    let keys = keys(names);
    let mut out = Vec::with_capacity(64);
    write_object(&mut out, &keys, values);
    into_string(out)
}

/// Rows as a JSON array.
pub fn array(names: &[String], rows: &[Vec<Value>]) -> String {
    let keys = keys(names);
    let mut out = Vec::with_capacity(2 + rows.len() * 64);
    out.push(b'[');
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_object(&mut out, &keys, r);
    }
    out.push(b']');
    into_string(out)
}

/// The names as escaped JSON keys with their colon (`"name":`), once per response.
fn keys(names: &[String]) -> Vec<Vec<u8>> {
    names
        .iter()
        .map(|n| {
            let mut k = Vec::with_capacity(n.len() + 3);
            // Writing a string into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut k, n.as_str());
            k.push(b':');
            k
        })
        .collect()
}

fn write_object(out: &mut Vec<u8>, keys: &[Vec<u8>], values: &[Value]) {
    out.push(b'{');
    for (i, (k, v)) in keys.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(k);
        // Serializing a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, v);
    }
    out.push(b'}');
}

/// serde_json writes UTF-8 only.
fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_default()
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
        assert_eq!(array(&names, &[]), "[]");
        let odd = vec!["q\"k".to_owned()];
        assert_eq!(
            object(&odd, &[json!({"x": [1, "é\n"]})]),
            r#"{"q\"k":{"x":[1,"é\n"]}}"#
        );
    }
}
