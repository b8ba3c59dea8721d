-- The fingerprint of each processed command's canonical payload: a command_id reused for
-- another payload is refused (COMMAND_ID_REUSED) instead of getting the first one's result.
-- Rows written before this migration have none and are taken as the same command.
ALTER TABLE processed_command ADD COLUMN fingerprint bytea;
