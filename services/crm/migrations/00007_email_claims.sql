-- A mailer that dies between claiming a batch (SENDING, committed) and recording what the
-- server took leaves those rows in SENDING: whether each went out is unknown, and at most
-- once forbids sending it again. claimed_at lets any replica's mailer turn such a claim,
-- once it is older than the longest a batch can take, into UNCERTAIN with the reason,
-- the state an e-mail whose answer was lost already has. Rows claimed before this
-- migration count from now; a claim by a replica still on the previous release has no
-- claimed_at and stays SENDING, as before.

-- +goose Up
ALTER TABLE emails ADD COLUMN claimed_at timestamptz;
UPDATE emails SET claimed_at = now() WHERE status = 'SENDING';
CREATE INDEX emails_sending ON emails (claimed_at) WHERE status = 'SENDING';

-- +goose Down
DROP INDEX emails_sending;
ALTER TABLE emails DROP COLUMN claimed_at;
