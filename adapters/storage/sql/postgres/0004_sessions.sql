-- A session keeps the member's name (or email) from the id token, when it gives one.
ALTER TABLE sso_sessions ADD COLUMN user_name text;
