-- The same change as sql/postgres/0004_sessions.sql.
ALTER TABLE sso_sessions ADD COLUMN user_name TEXT;
