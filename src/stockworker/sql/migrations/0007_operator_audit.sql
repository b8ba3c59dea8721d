-- What operators did with the `stockworker` CLI: one row per operation that writes (or
-- would, in a dry run), whether it ran, what it was given and what it counted. The
-- worker's role may add rows but not change or remove them (see worker_grants).
CREATE TABLE ops_audit (
    id               bigserial   PRIMARY KEY,
    operator         text        NOT NULL,
    operation        text        NOT NULL,
    arguments        jsonb       NOT NULL DEFAULT '{}',
    plan_fingerprint text,
    executed         boolean     NOT NULL,
    counts           jsonb       NOT NULL DEFAULT '{}',
    result           text        NOT NULL,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ops_audit_result CHECK (result IN ('ok', 'refused', 'failed')),
    CONSTRAINT ops_audit_objects
        CHECK (jsonb_typeof(arguments) = 'object' AND jsonb_typeof(counts) = 'object')
);

CREATE INDEX ops_audit_by_time ON ops_audit (started_at);

-- A dead letter an operator has dealt with (redriven as it was, redriven edited, or
-- discarded), by its place in the dead-letter topic: redriving it again is refused
-- unless forced, and `dlq list` can tell open dead letters from resolved ones.
CREATE TABLE dead_letter_resolution (
    dlq_topic     text        NOT NULL,
    dlq_partition integer     NOT NULL,
    dlq_offset    bigint      NOT NULL,
    resolution    text        NOT NULL,
    command_id    uuid,
    audit_id      bigint      NOT NULL REFERENCES ops_audit (id),
    resolved_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dlq_topic, dlq_partition, dlq_offset),
    CONSTRAINT dead_letter_resolution_kind
        CHECK (resolution IN ('redriven', 'redriven-edited', 'discarded'))
);
