-- Approve in Telegram at the portal's login: the transaction of the approval the login asked
-- for, held with the login in progress so that the page's answer never trusts the client.
ALTER TABLE portal_logins ADD COLUMN approval_transaction TEXT;
