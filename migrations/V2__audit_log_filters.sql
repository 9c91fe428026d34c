-- The audit log is filtered by actor, user and resource; keep those filters fast.
CREATE INDEX audit_log_actor ON audit_log (actor, at);
CREATE INDEX audit_log_user ON audit_log (user_id, at) WHERE user_id IS NOT NULL;
CREATE INDEX audit_log_resource ON audit_log (resource_id, at) WHERE resource_id IS NOT NULL;
