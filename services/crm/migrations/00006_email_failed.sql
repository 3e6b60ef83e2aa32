-- An e-mail the mail server refused for good (a 5xx reply to its recipient or to the
-- message) is FAILED: sending it again would be refused again, so it is not retried.
-- Refusals that may pass later (4xx, an unreachable server, a refused sender, which is
-- crm's own configuration) stay PENDING and are retried with backoff.

-- +goose Up
ALTER TABLE emails DROP CONSTRAINT emails_status_check;
ALTER TABLE emails ADD CONSTRAINT emails_status_check
    CHECK (status IN ('PENDING', 'SENDING', 'SENT', 'UNCERTAIN', 'FAILED'));

-- +goose Down
UPDATE emails SET status = 'PENDING', next_attempt_at = now() WHERE status = 'FAILED';
ALTER TABLE emails DROP CONSTRAINT emails_status_check;
ALTER TABLE emails ADD CONSTRAINT emails_status_check
    CHECK (status IN ('PENDING', 'SENDING', 'SENT', 'UNCERTAIN'));
