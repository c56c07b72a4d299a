-- The stall service's tables (schema stall). Secrets (sign-in links, session tokens) are kept
-- only as their SHA-256: a copy of this database signs nobody in.

-- One-time sign-in links: opened once (used_time set in the same statement that checks it),
-- before expire_time, or revoked.
CREATE TABLE stall.sign_in_links (
    token_sha256 bytea PRIMARY KEY,
    merchant_id uuid NOT NULL,
    created_by text NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    expire_time timestamptz NOT NULL,
    used_time timestamptz,
    revoke_time timestamptz
);
CREATE INDEX sign_in_links_by_merchant ON stall.sign_in_links (merchant_id)
    WHERE used_time IS NULL AND revoke_time IS NULL;

-- A browser's session on a vendor's stall page (the HttpOnly cookie holds the token).
CREATE TABLE stall.sessions (
    token_sha256 bytea PRIMARY KEY,
    merchant_id uuid NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    expire_time timestamptz NOT NULL,
    revoke_time timestamptz,
    revoke_reason text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_by_merchant ON stall.sessions (merchant_id) WHERE revoke_time IS NULL;

-- Sound boxes: each payment event of the merchant is published to every box's topic.
CREATE TABLE stall.sound_boxes (
    merchant_id uuid NOT NULL,
    terminal_id text NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, terminal_id)
);

-- How far the publisher got in each merchant's payment stream: the cursor of the last event
-- every box of the merchant acknowledged (PUBACK). Events after it are published again after
-- a restart (at least once; a box drops a payment id it announced already). No row yet: the
-- publisher follows the merchant from when it first watches it (within stall.mqtt_poll_ms of
-- the first box being added).
CREATE TABLE stall.sound_box_cursors (
    merchant_id uuid PRIMARY KEY,
    event_cursor bigint NOT NULL,
    update_time timestamptz NOT NULL DEFAULT now()
);
