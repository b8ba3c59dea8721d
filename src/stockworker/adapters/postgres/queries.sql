-- The statements written by hand, by name; queries.py loads them once at import and
-- names each (`-- lock --` is queries.LOCK). The `--` lines right under a name describe
-- the statement and are not sent. The statements that follow a table's columns are
-- built in queries.py from the declarations in tables.py. All are parameterised.

-- lock --
-- Transaction-scoped advisory locks, taken in the order of the (sorted) array, so two
-- writers never wait on each other in a cycle. They also cover rows not created yet.
-- $2 says which are taken in shared mode (readers of an item, ports.SHARED_LOCK).
SELECT CASE WHEN s THEN pg_advisory_xact_lock_shared(k) ELSE pg_advisory_xact_lock(k) END
FROM unnest($1::bigint[], $2::boolean[]) AS t(k, s)

-- reservation_owners --
SELECT reservation_id, sku, location FROM stock_reservation
WHERE reservation_id = ANY($1::text[])

-- delete_reservations --
DELETE FROM stock_reservation WHERE reservation_id = ANY($1::text[])

-- delete_holdings --
-- Serial numbers or lots no longer held, by (sku, location, id).
DELETE FROM stock_holding
WHERE (sku, location, id) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))

-- serial_locations --
-- Where serial numbers named by a batch are in stock, by (sku, serial).
SELECT sku, id, location FROM stock_holding
WHERE kind = 'serial' AND (sku, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))

-- stocked_positions --
-- The positions of these SKUs that hold stock (a ConfigureItem changing tracking).
SELECT sku, location FROM stock_position WHERE sku = ANY($1::text[]) AND on_hand > 0

-- due_reservations --
-- Keyset pages: a page that could not expire some of its rows never hides the next one.
SELECT reservation_id, sku, location, expires_at, sequence FROM stock_reservation
WHERE expires_at <= $1
  AND ($3::timestamptz IS NULL OR (expires_at, reservation_id) > ($3, $4::text))
ORDER BY expires_at, reservation_id
LIMIT $2

-- due_lots --
-- Keyset pages over lots not expired yet: past their date ($1 = today, stage expired),
-- or not reported and within the warning window ($2 = the last date it covers, never
-- before today). The bound stands on its own, outside the OR, so that the index scan
-- stops at the window's end instead of reading every dated lot in stock.
SELECT sku, location, id, expires_on, sequence,
       CASE WHEN expires_on < $1 THEN 'expired' ELSE 'expiring' END AS stage
FROM stock_holding
WHERE kind = 'lot' AND expires_on IS NOT NULL AND NOT expired
  AND expires_on <= $2 AND (expires_on < $1 OR NOT warned)
  AND ($4::date IS NULL OR (expires_on, sku, location, id) > ($4, $5::text, $6::text, $7::text))
ORDER BY expires_on, sku, location, id
LIMIT $3

-- try_expiry_leadership --
-- Only one worker sweeps expired reservations at a time (released at commit).
SELECT pg_try_advisory_xact_lock(7372021)

-- notify_outbox --
SELECT pg_notify($1, '')

-- fetch_unpublished --
-- Parked rows (refused by the broker for a reason of their own) wait for an operator.
SELECT id, event_id, topic, key, value, header_keys, header_values
FROM outbox
WHERE published_at IS NULL AND parked_at IS NULL
ORDER BY id
LIMIT $1

-- delete_published --
-- Acknowledged by the broker: gone from the outbox (Kafka keeps the event).
DELETE FROM outbox WHERE id = ANY($1::bigint[])

-- park --
UPDATE outbox SET parked_at = now(), parked_reason = $2
WHERE id = $1 AND published_at IS NULL

-- parked --
SELECT id, event_id, topic, key, value, header_keys, header_values, parked_reason, parked_at
FROM outbox
WHERE parked_at IS NOT NULL
ORDER BY id

-- requeue_parked --
UPDATE outbox SET parked_at = NULL, parked_reason = NULL
WHERE id = $1 AND parked_at IS NOT NULL
RETURNING id

-- delete_old_inbox --
-- Retention, in bounded chunks so no sweep holds long locks or a huge transaction.
DELETE FROM processed_command WHERE command_id IN (
    SELECT command_id FROM processed_command
    WHERE processed_at < now() - make_interval(secs => $1)
    LIMIT $2)

-- delete_old_outbox --
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox
    WHERE published_at < now() - make_interval(secs => $1)
    ORDER BY id
    LIMIT $2)

-- try_retention_leadership --
-- Only one worker sweeps old rows at a time (released at commit).
SELECT pg_try_advisory_xact_lock(7372022)

-- try_relay_leadership --
SELECT pg_try_advisory_lock($1)

-- create_migrations_table --
CREATE TABLE IF NOT EXISTS schema_migration (
    version    text        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- applied_migrations --
SELECT version FROM schema_migration

-- migrations_table_exists --
-- Whether the migrations table exists (the worker's start-up check runs no DDL).
SELECT to_regclass('schema_migration') IS NOT NULL

-- lock_table_slots --
-- Slots of PostgreSQL's shared lock table: every session's locks must fit in it together.
SELECT current_setting('max_locks_per_transaction')::bigint
     * (current_setting('max_connections')::bigint
        + current_setting('max_prepared_transactions')::bigint)

-- record_migration --
INSERT INTO schema_migration (version) VALUES ($1)

-- worker_grants --
-- The worker role's privileges: data only, and the ledger is append-only (read and insert;
-- the REVOKE also takes back what an earlier `migrate --grant-to` granted). Statements run
-- in order, in the migration's transaction. Role names cannot be bind parameters, so the
-- statements are built by PostgreSQL's format() with %I (identifier quoting).
SELECT ARRAY[
    'REVOKE CREATE ON SCHEMA public FROM PUBLIC',
    format('GRANT USAGE ON SCHEMA public TO %I', $1::text),
    format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %I', $1::text),
    format('REVOKE UPDATE, DELETE, TRUNCATE ON stock_ledger FROM %I', $1::text),
    format('REVOKE UPDATE, DELETE, TRUNCATE ON ops_audit FROM %I', $1::text),
    format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %I', $1::text)
]

-- migration_lock --
-- Serialises concurrent `migrate` runs.
SELECT pg_advisory_xact_lock(7372019)

-- record_operation --
-- One operator action, written when it ends (a dry run too).
INSERT INTO ops_audit (operator, operation, arguments, plan_fingerprint, executed, counts,
                       result, started_at)
VALUES ($1, $2, $3::jsonb, $4, $5, $6::jsonb, $7, $8)
RETURNING id

-- may_record_operations --
-- Checked before an operation starts, so none runs that could not be recorded.
SELECT has_table_privilege('ops_audit', 'INSERT')

-- recent_operations --
SELECT id, operator, operation, arguments, plan_fingerprint, executed, counts, result,
       started_at, finished_at
FROM ops_audit
ORDER BY id DESC
LIMIT $1

-- dead_letter_resolutions --
-- The resolutions of these dead letters (one topic, arrays of partition and offset).
SELECT r.dlq_partition, r.dlq_offset, r.resolution, r.command_id, r.audit_id, r.resolved_at
FROM dead_letter_resolution r
JOIN unnest($2::integer[], $3::bigint[]) AS k (dlq_partition, dlq_offset)
  ON r.dlq_partition = k.dlq_partition AND r.dlq_offset = k.dlq_offset
WHERE r.dlq_topic = $1

-- resolve_dead_letter --
-- Records (or, when forced, re-records) how a dead letter was dealt with.
INSERT INTO dead_letter_resolution (dlq_topic, dlq_partition, dlq_offset, resolution,
                                    command_id, audit_id)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (dlq_topic, dlq_partition, dlq_offset) DO UPDATE SET
    resolution = EXCLUDED.resolution, command_id = EXCLUDED.command_id,
    audit_id = EXCLUDED.audit_id, resolved_at = now()

-- replay_in_inbox --
-- Which of these command ids the inbox holds.
SELECT command_id FROM processed_command WHERE command_id = ANY($1::uuid[])

-- rebuild_target_rows --
-- What a rebuild's target holds already (it must hold no positions, inbox or ledger).
SELECT (SELECT count(*) FROM stock_position) AS positions,
       (SELECT count(*) FROM processed_command) AS inbox,
       (SELECT count(*) FROM stock_ledger) AS ledger

-- rebuild_expiries --
-- The reservation and lot expiries the worker's sweepers applied (they are not on the
-- commands topic), each with the command that made the version before it on its position.
SELECT e.sku, e.location, e.version, e.command_id, e.occurred_at,
       p.command_id AS after_command_id
FROM stock_ledger e
JOIN stock_ledger p
  ON p.sku = e.sku AND p.location = e.location AND p.version = e.version - 1
WHERE e.command_type IN ('ExpireReservation', 'ExpireLot')
ORDER BY e.sku, e.location, e.version

-- replay_relay_running --
-- Whether some session holds the outbox relay's leadership lock in this database (a
-- relay runs, so what a replay writes to the outbox gets published).
SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND ((classid::bigint << 32) | objid::bigint) = $1
)

-- snapshot_position_keys --
-- Subscribers (`events snapshot`): the selected positions' keys, a page after a key.
SELECT sku, location FROM stock_position
WHERE ($1::text[] IS NULL OR sku = ANY($1::text[]))
  AND ($2::text IS NULL OR location = $2::text)
  AND ($3::text IS NULL OR (sku, location) > ($3::text, $4::text))
ORDER BY sku, location
LIMIT $5

-- outbox_stats --
-- Metrics and readiness, once a second per worker, so bounded however large the backlog
-- grows while the brokers are away: the backlog counted up to $1 rows (the primary key,
-- in the relay's order), the age of the next row the relay will publish (0 when there is
-- none), and the parked rows (their partial index).
SELECT (SELECT count(*) FROM (SELECT 1 FROM outbox
                              WHERE published_at IS NULL AND parked_at IS NULL
                              LIMIT $1) AS counted) AS backlog,
       coalesce(extract(epoch FROM clock_timestamp()
                - (SELECT created_at FROM outbox
                   WHERE published_at IS NULL AND parked_at IS NULL
                   ORDER BY id LIMIT 1)), 0)::float8 AS oldest_age_seconds,
       (SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL) AS parked

-- readiness_probe --
-- Readiness: the database answers, and takes writes (a standby in recovery does not).
SELECT pg_is_in_recovery() AS in_recovery
