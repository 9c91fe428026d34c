-- The name of the Telegram user whose chat a BOT token is bound to ("Alice Smith (@alice)"), as
-- the bot saw it at the activation, so that the token's page shows whose chat gets its codes.
ALTER TABLE tokens ADD COLUMN bot_chat_name TEXT;
