-- The dashboard counts authentications per hour and lists recent failures, and the audit log
-- is filtered by action: both walk this index instead of the whole log.
CREATE INDEX audit_log_action ON audit_log (action, at, result);
