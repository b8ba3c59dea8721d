-- Parking: an outbox row the broker refuses for a reason of its own (too large for the
-- topic, an invalid topic name) is set aside with the reason, instead of holding back
-- every event behind it. A parked row is not published and not deleted by retention
-- until an operator re-queues it (`stockworker outbox retry ID`).
ALTER TABLE outbox
    ADD COLUMN parked_at     timestamptz,
    ADD COLUMN parked_reason text;

-- Existing rows have neither, so there is nothing to check now (NOT VALID skips the scan).
ALTER TABLE outbox
    ADD CONSTRAINT outbox_parked_with_reason
        CHECK ((parked_at IS NULL) = (parked_reason IS NULL)) NOT VALID,
    ADD CONSTRAINT outbox_parked_unpublished
        CHECK (parked_at IS NULL OR published_at IS NULL) NOT VALID;

-- The relay's scan (published_at IS NULL AND parked_at IS NULL) keeps using the partial
-- index outbox_unpublished; the few parked rows in it are skipped.
