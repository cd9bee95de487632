-- Journal entries written in the same transaction as the change they describe, and
-- deleted once NATS JetStream acknowledged them: a crash between commit and publish
-- loses nothing (the next run publishes what is left, with the same Nats-Msg-Id).

-- migrate:up
CREATE TABLE secmaster_outbox (
    id {{id}},
    subject TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- migrate:down
DROP TABLE secmaster_outbox;
