-- docker compose: the worker's role (data privileges are granted by
-- `stockworker migrate --grant-to stockworker_app`). Local development credentials only.
CREATE ROLE stockworker_app LOGIN PASSWORD 'app-local-secret';
