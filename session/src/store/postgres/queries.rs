//! The store's SQL, built once from validated schema and table names.

use std::time::SystemTime;

use serde_json::{Map, Value};
use tokio_postgres::types::{Json, Type};

use super::{shared::Single, statements::Query, RECORD_COLUMNS};
use crate::{ChangeSet, StorageKey};

/// SQL text, built once from validated names.
pub(super) struct Queries {
    pub(super) table: String,
    pub(super) create_table: String,
    pub(super) add_columns: String,
    pub(super) create_indexes: String,
    pub(super) load: Query,
    pub(super) create: Query,
    pub(super) update: Query,
    pub(super) update_returning: Query,
    pub(super) touch: Query,
    pub(super) take: Query,
    pub(super) retire: Query,
    pub(super) put: Query,
    pub(super) delete: Query,
    pub(super) delete_expired: Query,
    pub(super) list_owned: Query,
    pub(super) delete_owned: Query,
    pub(super) delete_all_owned: Query,
}

/// The columns added after the first release of the table, with their definitions. Rows written
/// before the upgrade (or by an instance still running the previous version during a rolling
/// deploy) get `NULL` / `false`: `last_seen` is read as `created_at` until the row is written.
pub(super) const ADDED_COLUMNS: [(&str, &str); 4] = [
    ("last_seen", "timestamptz NULL"),
    ("owner", "text NULL"),
    ("retired", "boolean NOT NULL DEFAULT false"),
    // A session renewed with a grace window: the `id_hash` of its retired copy, which a delete
    // of the session ends too.
    ("predecessor", "bytea NULL"),
];

/// How many of the columns `$2` the table `$1` lacks. `migrate` alters the table only then: an
/// `ALTER TABLE` waits for an exclusive lock, and every load would queue behind it.
pub(super) const MISSING_COLUMNS: &str = "SELECT count(*) FROM unnest($2::text[]) AS wanted(name)
     WHERE NOT EXISTS (
         SELECT 1 FROM pg_attribute
         WHERE attrelid = to_regclass($1) AND attname = wanted.name
           AND attnum > 0 AND NOT attisdropped)";

impl Queries {
    pub(super) fn single(&self, which: Single) -> &Query {
        match which {
            Single::Load => &self.load,
            Single::Create => &self.create,
            Single::Update => &self.update,
            Single::UpdateReturning => &self.update_returning,
            Single::Touch => &self.touch,
            Single::Delete => &self.delete,
        }
    }

    pub(super) fn new(schema: &str, table: &str) -> Self {
        let t = format!("\"{schema}\".\"{table}\"");
        let columns: Vec<String> = ADDED_COLUMNS
            .iter()
            .map(|(name, definition)| format!("{name} {definition}"))
            .collect();
        // The retired copies the session `$1` was renewed from, each naming the one before it
        // (a few at most): deleting a session deletes them too.
        let copies = format!(
            "WITH RECURSIVE copies(id_hash, depth) AS (
                 SELECT predecessor, 1 FROM {t} WHERE id_hash = $1 AND predecessor IS NOT NULL
                 UNION ALL
                 SELECT s.predecessor, c.depth + 1 FROM {t} s JOIN copies c USING (id_hash)
                 WHERE s.retired AND s.predecessor IS NOT NULL AND c.depth < 8)"
        );
        // The writes that overwrite columns of a live row (update, idle refresh) take the
        // client's deadline as their last parameter and change nothing once the database's clock
        // is past it (see `PostgresStore::deadline`): a statement held up at the server beyond
        // its client's patience (a stalled backend) cannot land later over newer writes. The
        // CTE reads the clock once (a CTE with a volatile function is evaluated once, never
        // inlined) and the answer says whether the statement was in time.
        let in_time = |deadline: &str| {
            format!("WITH clock AS (SELECT clock_timestamp() <= ${deadline} AS in_time)")
        };
        let update = format!(
            "UPDATE {t} SET
                 data = CASE WHEN $2 THEN $4::jsonb ELSE (data - $3::text[]) || $4::jsonb END,
                 owner = CASE WHEN $7 THEN $8::text ELSE owner END,
                 expires_at = $5,
                 last_seen = $6
             FROM clock
             WHERE id_hash = $1 AND expires_at > $6 AND NOT retired AND clock.in_time"
        );
        Self {
            create_table: format!(
                "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
                 CREATE TABLE IF NOT EXISTS {t} (
                     id_hash bytea PRIMARY KEY CHECK (octet_length(id_hash) = 32),
                     data jsonb NOT NULL,
                     created_at timestamptz NOT NULL,
                     expires_at timestamptz NOT NULL,
                     {}
                 );",
                columns.join(",\n                     ")
            ),
            add_columns: format!(
                "ALTER TABLE {t} {}",
                columns
                    .iter()
                    .map(|c| format!("ADD COLUMN IF NOT EXISTS {c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            create_indexes: format!(
                "CREATE INDEX IF NOT EXISTS \"{table}_expires_at_idx\" ON {t} (expires_at);
                 CREATE INDEX IF NOT EXISTS \"{table}_owner_idx\" ON {t} (owner)
                     WHERE owner IS NOT NULL;"
            ),
            load: query(
                &[Type::BYTEA, Type::TIMESTAMPTZ],
                format!(
                "SELECT {RECORD_COLUMNS} FROM {t} WHERE id_hash = $1 AND expires_at > $2"
            ),
            ),
            create: query(
                &[Type::BYTEA, Type::JSONB, Type::TIMESTAMPTZ, Type::TIMESTAMPTZ, Type::TIMESTAMPTZ, Type::TEXT, Type::BOOL],
                format!(
                "INSERT INTO {t} (id_hash, data, created_at, expires_at, last_seen, owner, retired)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (id_hash) DO NOTHING"
            ),
            ),
            update_returning: query(
                UPDATE,
                format!(
                "{}, written AS ({update} RETURNING {RECORD_COLUMNS})
                 SELECT written.*, clock.in_time FROM clock LEFT JOIN written ON true",
                in_time("9")
            ),
            ),
            update: query(
                UPDATE,
                format!(
                "{}, written AS ({update} RETURNING 1)
                 SELECT (SELECT count(*) FROM written), clock.in_time FROM clock",
                in_time("9")
            ),
            ),
            touch: query(
                &[Type::BYTEA, Type::TIMESTAMPTZ, Type::TIMESTAMPTZ, Type::TIMESTAMPTZ],
                format!(
                "{}, written AS (
                     UPDATE {t} SET expires_at = $2, last_seen = $3 FROM clock
                     WHERE id_hash = $1 AND expires_at > $3 AND NOT retired AND clock.in_time
                     RETURNING 1)
                 SELECT (SELECT count(*) FROM written), clock.in_time FROM clock",
                in_time("4")
            ),
            ),
            take: query(
                &[Type::BYTEA, Type::TIMESTAMPTZ],
                format!(
                "DELETE FROM {t} WHERE id_hash = $1 AND expires_at > $2 AND NOT retired
                 RETURNING data, created_at, owner, predecessor"
            ),
            ),
            // Only `retired` and the expiry change: the copy keeps the data and owner it had.
            retire: query(
                &[Type::BYTEA, Type::TIMESTAMPTZ, Type::TIMESTAMPTZ],
                format!(
                "UPDATE {t} SET retired = true, expires_at = LEAST(expires_at, $3)
                 WHERE id_hash = $1 AND expires_at > $2 AND NOT retired
                 RETURNING data, created_at, owner, predecessor"
            ),
            ),
            put: query(
                &[Type::BYTEA, Type::JSONB, Type::BOOL, Type::TEXT_ARRAY, Type::JSONB, Type::TIMESTAMPTZ, Type::TIMESTAMPTZ, Type::TIMESTAMPTZ, Type::TEXT, Type::BYTEA],
                format!(
                "INSERT INTO {t} (id_hash, data, created_at, expires_at, last_seen, owner,
                                  predecessor)
                 VALUES ($1, CASE WHEN $3 THEN $5::jsonb ELSE ($2::jsonb - $4::text[]) || $5::jsonb END,
                         $6, $7, $8, $9, $10)
                 ON CONFLICT (id_hash) DO NOTHING"
            ),
            ),
            // The session and the retired copies it was renewed from (each naming the one before
            // it), a few at most: a logout in their grace window must not leave them readable.
            delete: query(
                &[Type::BYTEA],
                format!(
                "{copies} DELETE FROM {t} WHERE id_hash = $1
                     OR (retired AND id_hash IN (SELECT id_hash FROM copies))"
            ),
            ),
            delete_expired: query(
                &[Type::TIMESTAMPTZ, Type::INT8],
                format!(
                "DELETE FROM {t} WHERE id_hash = ANY(ARRAY(
                     SELECT id_hash FROM {t} WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED))"
            ),
            ),
            list_owned: query(
                &[Type::TEXT, Type::TIMESTAMPTZ],
                format!(
                "SELECT id_hash, created_at, COALESCE(last_seen, created_at), expires_at,
                        data->'__session_device' FROM {t}
                 WHERE owner = $1 AND NOT retired AND expires_at > $2"
            ),
            ),
            // Ended with its retired copies, as by `delete`, when it is the owner's.
            // (The row count is the owned row's: 1 when it was the owner's.)
            delete_owned: query(
                &[Type::BYTEA, Type::TEXT],
                format!(
                "{copies}, gone AS (
                     DELETE FROM {t} WHERE retired AND id_hash IN (SELECT id_hash FROM copies)
                         AND EXISTS (SELECT 1 FROM {t}
                                     WHERE id_hash = $1 AND owner = $2 AND NOT retired))
                 DELETE FROM {t} WHERE id_hash = $1 AND owner = $2 AND NOT retired"
            ),
            ),
            delete_all_owned: query(
                &[Type::TEXT, Type::BYTEA],
                format!(
                "DELETE FROM {t} WHERE owner = $1 AND id_hash IS DISTINCT FROM $2
                 RETURNING id_hash, retired"
            ),
            ),
            table: t,
        }
    }
}

/// The parameters of the `update` and `update_returning` queries.
pub(super) struct UpdateArgs<'a> {
    key: &'a [u8],
    cleared: bool,
    removed: Vec<&'a str>,
    patch: Json<&'a Map<String, Value>>,
    expires_at: SystemTime,
    now: SystemTime,
    sets_owner: bool,
    owner: Option<&'a str>,
    deadline: SystemTime,
}

impl<'a> UpdateArgs<'a> {
    pub(super) fn new(
        key: &'a StorageKey,
        changes: &'a ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
        deadline: SystemTime,
    ) -> Self {
        Self {
            key: key.as_bytes().as_slice(),
            cleared: changes.is_cleared(),
            removed: removed(changes),
            patch: Json(changes.patch()),
            expires_at,
            now,
            sets_owner: changes.owner().is_some(),
            owner: changes.owner().flatten(),
            deadline,
        }
    }

    pub(super) fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 9] {
        [
            &self.key,
            &self.cleared,
            &self.removed,
            &self.patch,
            &self.expires_at,
            &self.now,
            &self.sets_owner,
            &self.owner,
            &self.deadline,
        ]
    }
}

pub(super) fn removed(changes: &ChangeSet) -> Vec<&str> {
    changes.removed().collect()
}

/// The parameter types of `update` and `update_returning`, in the order of
/// [`UpdateArgs::params`].
const UPDATE: &[Type] = &[
    Type::BYTEA,
    Type::BOOL,
    Type::TEXT_ARRAY,
    Type::JSONB,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::BOOL,
    Type::TEXT,
    Type::TIMESTAMPTZ,
];

fn query(types: &'static [Type], text: String) -> Query {
    Query { text, types }
}
