-- A resource's Self-Service setting "Users may remove their last second factor": when on,
-- Disable Token and Unassign Token may take away a user's last active token in the resource
-- (the user then logs in without a second factor). Off by default, like every other setting.
ALTER TABLE self_service ADD COLUMN allow_remove_last INTEGER NOT NULL DEFAULT 0
    CHECK (allow_remove_last IN (0, 1));
