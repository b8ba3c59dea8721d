-- Metrics and readiness read the outbox once a second per worker: how many rows are
-- parked must not scan a backlog that grows while the brokers are away. Parked rows are
-- few, so this index costs nothing on the relay's path (rows enter it only when parked).
CREATE INDEX outbox_parked ON outbox (id) WHERE parked_at IS NOT NULL;
