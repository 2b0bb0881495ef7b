//! Creates the trigger function that announces row changes with `pg_notify`
//! (PostgreSQL only; nothing on SQLite, which has no other writers to capture).
//!
//! sea-query has no builder for PL/pgSQL functions: the statement is a constant
//! with no interpolated input.

use goforward_core::sea_orm::{ConnectionTrait, DbBackend};
use goforward_core::sea_orm_migration::prelude::*;

/// `m20261124_000001_create_notify_function`.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000001_create_notify_function"
    }
}

/// `goforward_realtime_notify()`: one JSON notification per changed row, sent at
/// commit, with the table's primary key columns and whether its replica identity
/// is `FULL` (the listener shows only the key of old rows otherwise, as Supabase
/// does). A payload over NOTIFY's 8000-byte limit carries only the primary key
/// (`"key"`) and `"too_large": true`; the listener then reads the row itself.
const CREATE: &str = r#"
CREATE OR REPLACE FUNCTION goforward_realtime_notify() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  payload jsonb;
  body text;
  pk text[];
  row_json jsonb;
BEGIN
  SELECT array_agg(a.attname::text) INTO pk
    FROM pg_index i
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
   WHERE i.indrelid = TG_RELID AND i.indisprimary;
  payload := jsonb_build_object(
    'schema', TG_TABLE_SCHEMA,
    'table', TG_TABLE_NAME,
    'type', TG_OP,
    'commit_timestamp', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'record', CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END,
    'old_record', CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END,
    'primary_key', to_jsonb(coalesce(pk, ARRAY[]::text[])),
    'replica_identity_full', (SELECT relreplident = 'f' FROM pg_class WHERE oid = TG_RELID)
  );
  body := payload::text;
  IF octet_length(body) > 7900 THEN
    row_json := CASE WHEN TG_OP = 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END;
    body := jsonb_build_object(
      'schema', TG_TABLE_SCHEMA,
      'table', TG_TABLE_NAME,
      'type', TG_OP,
      'commit_timestamp', payload->'commit_timestamp',
      'too_large', true,
      'key', (SELECT coalesce(jsonb_object_agg(k, v), '{}'::jsonb) FROM jsonb_each(row_json) AS e(k, v) WHERE k = ANY(pk))
    )::text;
  END IF;
  PERFORM pg_notify('goforward_realtime', body);
  RETURN NULL;
END
$fn$;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(CREATE).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            // CASCADE also drops the per-table triggers using it.
            db.execute_unprepared("DROP FUNCTION IF EXISTS goforward_realtime_notify() CASCADE")
                .await?;
        }
        Ok(())
    }
}
