-- Retention: the worker deletes inbox rows and published outbox rows past their age.
CREATE INDEX processed_command_processed_at ON processed_command (processed_at);
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;
