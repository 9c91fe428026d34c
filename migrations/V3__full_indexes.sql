-- Partial indexes make SQLite recompile a prepared statement whenever a bound parameter
-- changes that was compared against the index's WHERE clause: on the authentication path that
-- was every query on tokens. Full indexes index the same rows (a UNIQUE index already allows
-- any number of NULLs) without that cost.
DROP INDEX tokens_activation;
CREATE UNIQUE INDEX tokens_activation ON tokens (activation_code_hash);
DROP INDEX audit_log_user;
CREATE INDEX audit_log_user ON audit_log (user_id, at);
DROP INDEX audit_log_resource;
CREATE INDEX audit_log_resource ON audit_log (resource_id, at);
