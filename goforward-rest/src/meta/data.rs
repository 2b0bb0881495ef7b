//! Data export and import.
//!
//! Export (`GET /meta/v1/tables/{table}/export`) takes the REST query
//! grammar (`select`, filters, `order`, `limit`, `offset`) and streams CSV
//! (`Accept: text/csv`) or a JSON array: rows flow from a database cursor
//! through a small bounded channel, so memory stays flat whatever the size.
//!
//! Import (`POST /meta/v1/tables/{table}/import`) reads CSV (header row of
//! column names; an empty unquoted field is NULL) or NDJSON / a JSON array,
//! streamed in batches; every value is checked against its column's type.
//! `mode=atomic` (default) imports all rows in one transaction or none;
//! `mode=report` imports the good rows and reports each bad one.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, ResponseError, web, web::Bytes};
use futures_util::StreamExt;
use goforward_core::{
    Principal,
    filter::SqlBackend,
    sea_orm::{
        ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, QueryResult,
        Statement, TransactionTrait, sqlx,
    },
    sea_query::{
        Alias, PostgresQueryBuilder, Query, SqliteQueryBuilder, Value as SeaValue, Values,
    },
    token::Capability,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::MetaState;
use super::error::{MetaError, Result};
use super::require;
use crate::plan::{Decode, Target, read, values};
use crate::query::{Limits, parse_query};
use crate::schema::Table;

/// The table as the REST cache knows it (reloaded once when it is missing:
/// it may come from DDL run outside the meta API), hidden columns removed.
async fn resolve(state: &MetaState, name: &str) -> Result<(Arc<Table>, Arc<Table>, SqlBackend)> {
    let mut schema = state.cache.snapshot();
    if schema.table(name).is_none() {
        schema = state.cache.reload(state.ctx.db()).await?;
    }
    let table = schema
        .table(name)
        .cloned()
        .ok_or_else(|| MetaError::TableNotFound(name.to_owned()))?;
    let hidden = state.ctx.access().policies().hidden_columns(name);
    let visible = if hidden.is_empty() {
        Arc::clone(&table)
    } else {
        Arc::new(table.without(&hidden))
    };
    let backend = SqlBackend::try_from(state.ctx.db().get_database_backend())?;
    Ok((table, visible, backend))
}

fn bind_err(v: &SeaValue) -> MetaError {
    MetaError::Core(goforward_core::Error::Internal(format!(
        "export: unexpected bound value {v:?}"
    )))
}

macro_rules! bind_values {
    ($q:expr, $values:expr) => {{
        let mut q = $q;
        for v in $values.0 {
            q = match v {
                SeaValue::Bool(x) => q.bind(x),
                SeaValue::Int(x) => q.bind(x),
                SeaValue::SmallInt(x) => q.bind(x.map(i64::from)),
                SeaValue::Unsigned(x) => q.bind(x.map(i64::from)),
                SeaValue::BigUnsigned(x) => q.bind(x.map(|v| i64::try_from(v).unwrap_or(i64::MAX))),
                SeaValue::BigInt(x) => q.bind(x),
                SeaValue::Double(x) => q.bind(x),
                SeaValue::Float(x) => q.bind(x),
                SeaValue::String(x) => q.bind(x),
                other => return Err(bind_err(&other)),
            };
        }
        q
    }};
}

enum Format {
    Csv,
    Json,
}

fn csv_field(v: &Value) -> String {
    let text = match v {
        Value::Null => return String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.is_empty()
        || text.contains([',', '"', '\n', '\r'])
        || text.starts_with(' ')
        || text.ends_with(' ')
    {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// Encodes one row; `first` tells whether a separator is needed (JSON).
fn encode(format: &Format, names: &[String], row: Vec<Value>, first: bool, out: &mut Vec<u8>) {
    match format {
        Format::Csv => {
            let line: Vec<String> = row.iter().map(csv_field).collect();
            out.extend_from_slice(line.join(",").as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Format::Json => {
            if !first {
                out.push(b',');
            }
            let obj: Map<String, Value> = names.iter().cloned().zip(row).collect();
            out.extend_from_slice(Value::Object(obj).to_string().as_bytes());
        }
    }
}

type Chunk = std::result::Result<Bytes, std::io::Error>;

/// `GET /meta/v1/tables/{table}/export`.
pub(super) async fn export(
    state: web::Data<MetaState>,
    req: HttpRequest,
    p: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    require(&p, Capability::ManageTables)?;
    let name = path.into_inner();
    let (table, visible, backend) = resolve(&state, &name).await?;
    let format = match req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
    {
        a if a.contains("text/csv") => Format::Csv,
        _ => Format::Json,
    };
    let query = parse_query(req.query_string(), &Limits::default())?;
    let target = Target {
        table: &table,
        visible: &visible,
        backend,
        alias: None,
    };
    let cols = target.select_list(query.select.as_deref())?;
    if cols.iter().any(|c| c.shape.is_some()) {
        return Err(MetaError::InvalidRequest(
            "export does not embed related tables".into(),
        ));
    }
    let cond = read::where_cond(&target, &query.filters, None)?;
    let stmt = read::select(
        &target,
        &cols,
        cond,
        &query.order,
        query.limit,
        query.offset.unwrap_or(0),
    )?;
    let names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
    let decodes: Vec<Decode> = cols.iter().map(|c| c.decode).collect();
    let (sql, values) = match backend {
        SqlBackend::Postgres => stmt.build(PostgresQueryBuilder),
        SqlBackend::Sqlite => stmt.build(SqliteQueryBuilder),
    };

    // Refuse before the 200 goes out, not mid-stream.
    if let Some(v) = values.0.iter().find(|v| {
        !matches!(
            v,
            SeaValue::Bool(_)
                | SeaValue::Int(_)
                | SeaValue::SmallInt(_)
                | SeaValue::Unsigned(_)
                | SeaValue::BigUnsigned(_)
                | SeaValue::BigInt(_)
                | SeaValue::Double(_)
                | SeaValue::Float(_)
                | SeaValue::String(_)
        )
    }) {
        return Err(bind_err(v));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(8);
    let db = state.ctx.db().clone();
    let mut head = Vec::new();
    match format {
        Format::Csv => {
            let header: Vec<String> = names
                .iter()
                .map(|n| csv_field(&Value::String(n.clone())))
                .collect();
            head.extend_from_slice(header.join(",").as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        Format::Json => head.push(b'['),
    }
    let content_type = match format {
        Format::Csv => "text/csv; charset=utf-8",
        Format::Json => "application/json",
    };
    tokio::spawn(async move {
        let result = pump(
            &db, backend, sql, values, &format, &names, &decodes, head, &tx,
        )
        .await;
        if let Err(e) = result {
            // The status is already sent: end the body with an error so the
            // client sees a truncated transfer, and log the cause.
            tracing::error!(error = %e, "meta: export failed mid-stream");
            let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .streaming(body))
}

const CHUNK: usize = 64 * 1024;

#[allow(clippy::too_many_arguments)]
async fn pump(
    db: &DatabaseConnection,
    backend: SqlBackend,
    sql: String,
    values: Values,
    format: &Format,
    names: &[String],
    decodes: &[Decode],
    mut buf: Vec<u8>,
    tx: &tokio::sync::mpsc::Sender<Chunk>,
) -> Result<()> {
    let mut first = true;
    let mut handle = |row: QueryResult, buf: &mut Vec<u8>| -> Result<()> {
        let values = read::decode_row(&row, decodes, backend)?;
        encode(format, names, values, first, buf);
        first = false;
        Ok(())
    };
    macro_rules! drain {
        ($stream:expr, $into:expr) => {{
            let mut stream = $stream;
            while let Some(row) = stream.next().await {
                let row = row.map_err(MetaError::from_sqlx)?;
                handle($into(row), &mut buf)?;
                if buf.len() >= CHUNK {
                    let chunk = Bytes::from(std::mem::take(&mut buf));
                    if tx.send(Ok(chunk)).await.is_err() {
                        // The client went away: stop reading.
                        return Ok(());
                    }
                }
            }
        }};
    }
    match backend {
        SqlBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            let q = bind_values!(sqlx::query(sqlx::AssertSqlSafe(sql)), values);
            drain!(q.fetch(pool), QueryResult::from);
        }
        SqlBackend::Postgres => {
            #[cfg(feature = "postgres")]
            {
                let pool = db.get_postgres_connection_pool();
                let q = bind_values!(sqlx::query(sqlx::AssertSqlSafe(sql)), values);
                drain!(q.fetch(pool), QueryResult::from);
            }
            #[cfg(not(feature = "postgres"))]
            {
                let _ = (sql, values);
                return Err(MetaError::Unsupported(
                    "export on PostgreSQL needs goforward-rest's `postgres` feature".into(),
                ));
            }
        }
    }
    if matches!(format, Format::Json) {
        buf.push(b']');
    }
    if !buf.is_empty() {
        let _ = tx.send(Ok(Bytes::from(buf))).await;
    }
    Ok(())
}

/// Import options.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct ImportQuery {
    /// `atomic` (default) or `report`.
    mode: Option<String>,
}

/// Rows per INSERT.
const BATCH: usize = 500;
/// Bad rows listed in a report (the count keeps going).
const MAX_REPORTED: usize = 100;

/// A streaming CSV record splitter (RFC 4180: quotes, doubled quotes, CRLF).
#[derive(Default)]
struct CsvReader {
    field: Vec<u8>,
    record: Vec<Option<String>>,
    in_quotes: bool,
    quoted: bool,
    after_quote: bool,
}

impl CsvReader {
    fn end_field(&mut self) -> Result<()> {
        let text = String::from_utf8(std::mem::take(&mut self.field))
            .map_err(|_| MetaError::InvalidRequest("CSV is not valid UTF-8".into()))?;
        self.record.push(if text.is_empty() && !self.quoted {
            None
        } else {
            Some(text)
        });
        self.quoted = false;
        self.after_quote = false;
        Ok(())
    }

    /// Feeds bytes; complete records are pushed to `out`.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<Vec<Option<String>>>) -> Result<()> {
        for &b in bytes {
            if self.in_quotes {
                if b == b'"' {
                    self.in_quotes = false;
                    self.after_quote = true;
                } else {
                    self.field.push(b);
                }
                continue;
            }
            match b {
                b'"' if self.after_quote => {
                    // A doubled quote inside a quoted field.
                    self.field.push(b'"');
                    self.in_quotes = true;
                    self.after_quote = false;
                }
                b'"' if self.field.is_empty() && !self.quoted => {
                    self.in_quotes = true;
                    self.quoted = true;
                }
                b',' => self.end_field()?,
                b'\n' => {
                    self.end_field()?;
                    let record = std::mem::take(&mut self.record);
                    // Skip blank lines.
                    if !(record.len() == 1 && record[0].is_none()) {
                        out.push(record);
                    }
                }
                b'\r' => {}
                _ if self.after_quote => {
                    return Err(MetaError::InvalidRequest(
                        "CSV: characters after a closing quote".into(),
                    ));
                }
                _ => self.field.push(b),
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Vec<Option<String>>>) -> Result<()> {
        if self.in_quotes {
            return Err(MetaError::InvalidRequest("CSV: unterminated quote".into()));
        }
        if !self.field.is_empty() || !self.record.is_empty() || self.quoted {
            self.feed(b"\n", out)?;
        }
        Ok(())
    }
}

/// One bad row in a report.
fn bad(row: usize, message: String) -> Value {
    json!({"row": row, "message": message})
}

struct Importer<'a> {
    table: &'a Table,
    backend: SqlBackend,
    db_backend: DbBackend,
    columns: Vec<String>,
    atomic: bool,
    batch: Vec<(usize, Vec<Value>)>,
    imported: u64,
    errors: Vec<Value>,
    error_count: u64,
}

impl Importer<'_> {
    /// Type-checks one row (`row` counts data rows from 1).
    fn add(&mut self, row: usize, values: Vec<Value>) -> Result<()> {
        if values.len() != self.columns.len() {
            return self.reject(
                row,
                format!(
                    "expected {} values, got {}",
                    self.columns.len(),
                    values.len()
                ),
            );
        }
        let mut coerced = Vec::with_capacity(values.len());
        for (name, v) in self.columns.iter().zip(values) {
            let Some(col) = self.table.column(name) else {
                continue;
            };
            match values::coerce(&self.table.name, col, &v, self.backend) {
                Ok(v) => coerced.push(v),
                Err(e) => return self.reject(row, e.to_string()),
            }
        }
        self.batch.push((row, coerced));
        Ok(())
    }

    fn reject(&mut self, row: usize, message: String) -> Result<()> {
        if self.atomic {
            return Err(MetaError::ImportRejected { row, message });
        }
        self.error_count += 1;
        if self.errors.len() < MAX_REPORTED {
            self.errors.push(bad(row, message));
        }
        Ok(())
    }

    fn insert(&self, rows: &[(usize, Vec<Value>)]) -> Result<Statement> {
        let mut q = Query::insert();
        q.into_table(Alias::new(self.table.name.as_str()))
            .columns(self.columns.iter().map(|c| Alias::new(c.as_str())));
        for (_, values) in rows {
            let exprs: Vec<_> = self
                .columns
                .iter()
                .zip(values)
                .filter_map(|(name, v)| {
                    self.table
                        .column(name)
                        .map(|col| values::bind_expr(col, v, self.backend))
                })
                .collect();
            q.values(exprs)
                .map_err(|e| MetaError::Core(goforward_core::Error::Internal(e.to_string())))?;
        }
        let (sql, values) = match self.db_backend {
            DbBackend::Postgres => q.build(PostgresQueryBuilder),
            _ => q.build(SqliteQueryBuilder),
        };
        Ok(Statement::from_sql_and_values(self.db_backend, sql, values))
    }

    /// Writes the pending batch.
    async fn flush(&mut self, txn: &DatabaseTransaction) -> Result<()> {
        let rows = std::mem::take(&mut self.batch);
        if rows.is_empty() {
            return Ok(());
        }
        if self.atomic {
            match txn.execute_raw(self.insert(&rows)?).await {
                Ok(done) => self.imported += done.rows_affected(),
                Err(e) => {
                    let first = rows.first().map(|(r, _)| *r).unwrap_or(0);
                    let last = rows.last().map(|(r, _)| *r).unwrap_or(0);
                    let err = MetaError::from_db(e);
                    if err.status_code().is_server_error() {
                        return Err(err);
                    }
                    return Err(MetaError::ImportRejected {
                        row: first,
                        message: format!("rows {first}-{last}: {err}"),
                    });
                }
            }
            return Ok(());
        }
        // Report mode: each row under its own savepoint.
        for (row, values) in rows {
            let sp = txn.begin().await?;
            match sp.execute_raw(self.insert(&[(row, values)])?).await {
                Ok(done) => {
                    sp.commit().await?;
                    self.imported += done.rows_affected();
                }
                Err(e) => {
                    sp.rollback().await?;
                    let err = MetaError::from_db(e);
                    if err.status_code().is_server_error() {
                        return Err(err);
                    }
                    self.reject(row, err.to_string())?;
                }
            }
        }
        Ok(())
    }
}

/// `POST /meta/v1/tables/{table}/import`.
pub(super) async fn import(
    state: web::Data<MetaState>,
    req: HttpRequest,
    p: Principal,
    path: web::Path<String>,
    q: web::Query<ImportQuery>,
    mut payload: web::Payload,
) -> Result<HttpResponse> {
    require(&p, Capability::ManageTables)?;
    let name = path.into_inner();
    let (_, visible, backend) = resolve(&state, &name).await?;
    let atomic = match q.mode.as_deref() {
        None | Some("atomic") => true,
        Some("report") => false,
        Some(_) => {
            return Err(MetaError::InvalidRequest(
                "mode: `atomic` or `report`".into(),
            ));
        }
    };
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let csv = content_type.starts_with("text/csv");
    let ndjson = content_type.starts_with("application/x-ndjson");
    if !csv && !ndjson && !content_type.starts_with("application/json") {
        return Err(MetaError::InvalidRequest(
            "Content-Type: text/csv, application/json or application/x-ndjson".into(),
        ));
    }
    let limit = state.import_max_bytes;
    let db = state.ctx.db();
    let txn = db.begin().await?;
    let mut imp = Importer {
        table: &visible,
        backend,
        db_backend: db.get_database_backend(),
        columns: Vec::new(),
        atomic,
        batch: Vec::new(),
        imported: 0,
        errors: Vec::new(),
        error_count: 0,
    };
    let mut received = 0usize;
    let mut row_no = 0usize;
    let mut csv_reader = CsvReader::default();
    let mut header: Option<Vec<String>> = None;
    let mut pending: Vec<u8> = Vec::new();
    let mut whole_json: Vec<u8> = Vec::new();
    let mut records: Vec<Record> = Vec::new();
    let mut csv_records: Vec<Vec<Option<String>>> = Vec::new();

    let check_columns = |names: &[String]| -> Result<()> {
        for n in names {
            if visible.column(n).is_none() {
                return Err(MetaError::ColumnNotFound {
                    table: name.clone(),
                    column: n.clone(),
                });
            }
        }
        Ok(())
    };

    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| MetaError::InvalidRequest(format!("body: {e}")))?;
        received += chunk.len();
        if received > limit {
            return Err(MetaError::InvalidRequest(format!(
                "the import body exceeds {limit} bytes"
            )));
        }
        if csv {
            csv_reader.feed(&chunk, &mut csv_records)?;
            records.extend(csv_records.drain(..).map(Record::Csv));
        } else if ndjson {
            pending.extend_from_slice(&chunk);
            while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=pos).collect();
                push_json_line(&line, &mut records)?;
            }
        } else {
            whole_json.extend_from_slice(&chunk);
        }
        for record in records.drain(..) {
            feed_record(&mut imp, &mut header, &mut row_no, record, &check_columns)?;
        }
        if imp.batch.len() >= BATCH {
            imp.flush(&txn).await?;
        }
    }
    if csv {
        csv_reader.finish(&mut csv_records)?;
        records.extend(csv_records.drain(..).map(Record::Csv));
    } else if ndjson {
        let rest = std::mem::take(&mut pending);
        push_json_line(&rest, &mut records)?;
    } else {
        let doc: Value = serde_json::from_slice(&whole_json)
            .map_err(|e| MetaError::InvalidRequest(format!("invalid JSON: {e}")))?;
        let Value::Array(items) = doc else {
            return Err(MetaError::InvalidRequest(
                "a JSON import is an array of objects".into(),
            ));
        };
        for item in items {
            records.push(json_record(item)?);
        }
    }
    for record in records.drain(..) {
        feed_record(&mut imp, &mut header, &mut row_no, record, &check_columns)?;
        if imp.batch.len() >= BATCH {
            imp.flush(&txn).await?;
        }
    }
    imp.flush(&txn).await?;
    txn.commit().await?;
    Ok(HttpResponse::Ok().json(json!({
        "imported": imp.imported,
        "rejected": imp.error_count,
        "errors": imp.errors,
    })))
}

/// A record: CSV fields, or a JSON object's (column, value) pairs.
enum Record {
    Csv(Vec<Option<String>>),
    Json(Map<String, Value>),
}

fn json_record(item: Value) -> Result<Record> {
    match item {
        Value::Object(o) => Ok(Record::Json(o)),
        _ => Err(MetaError::InvalidRequest(
            "each JSON row must be an object".into(),
        )),
    }
}

fn push_json_line(line: &[u8], out: &mut Vec<Record>) -> Result<()> {
    let text = std::str::from_utf8(line)
        .map_err(|_| MetaError::InvalidRequest("NDJSON is not valid UTF-8".into()))?
        .trim();
    if text.is_empty() {
        return Ok(());
    }
    let v: Value = serde_json::from_str(text)
        .map_err(|e| MetaError::InvalidRequest(format!("invalid NDJSON line: {e}")))?;
    out.push(json_record(v)?);
    Ok(())
}

fn feed_record(
    imp: &mut Importer<'_>,
    header: &mut Option<Vec<String>>,
    row_no: &mut usize,
    record: Record,
    check: &dyn Fn(&[String]) -> Result<()>,
) -> Result<()> {
    match record {
        Record::Csv(fields) => {
            if header.is_none() {
                let names: Vec<String> =
                    fields.into_iter().map(Option::unwrap_or_default).collect();
                check(&names)?;
                imp.columns = names.clone();
                *header = Some(names);
                return Ok(());
            }
            *row_no += 1;
            let values = fields
                .into_iter()
                .map(|f| f.map_or(Value::Null, Value::String))
                .collect();
            imp.add(*row_no, values)
        }
        Record::Json(obj) => {
            *row_no += 1;
            if header.is_none() {
                // The first object fixes the column list.
                let names: Vec<String> = obj.keys().cloned().collect();
                check(&names)?;
                imp.columns = names.clone();
                *header = Some(names);
            }
            let columns = imp.columns.clone();
            if obj.keys().any(|k| !columns.contains(k)) {
                return imp.reject(*row_no, "keys differ from the first row's".into());
            }
            let values = columns
                .iter()
                .map(|c| obj.get(c).cloned().unwrap_or(Value::Null))
                .collect();
            imp.add(*row_no, values)
        }
    }
}
