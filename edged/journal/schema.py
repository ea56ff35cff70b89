"""Journal schema, migrated by ``PRAGMA user_version``.

Each entry of :data:`MIGRATIONS` moves the database from version ``n - 1`` to ``n`` inside
one transaction. Never edit a migration that has shipped: append a new one.
Versions 1-3 shipped as: 1 core (orders, events, cursors, outbox, kv), 2 printing,
3 bridges. Later ones are numbered in the order they land. 5 sheds AUTOINCREMENT where it
only cost a page per commit (see there).
"""

from __future__ import annotations

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE orders (
        id              INTEGER PRIMARY KEY,          -- Sinqro order id
        type            TEXT NOT NULL,
        status          TEXT NOT NULL,
        is_final        INTEGER NOT NULL,
        code            TEXT NOT NULL,
        execution_time  TEXT NOT NULL,
        payload         TEXT NOT NULL,                -- latest full JSON from Sinqro
        first_seen      REAL NOT NULL,                -- unix time the box first stored it
        updated         REAL NOT NULL,
        acknowledged    INTEGER NOT NULL DEFAULT 0    -- staff silenced its alert
    );
    CREATE INDEX orders_open ON orders (is_final, first_seen);
    CREATE INDEX orders_updated ON orders (updated);

    CREATE TABLE events (
        seq       INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after pruning
        ts        REAL NOT NULL,
        kind      TEXT NOT NULL,
        order_id  INTEGER,
        data      TEXT NOT NULL
    );
    CREATE INDEX events_order ON events (order_id);

    CREATE TABLE cursors (
        consumer  TEXT PRIMARY KEY,
        seq       INTEGER NOT NULL
    );

    CREATE TABLE outbox (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        key         TEXT UNIQUE,                      -- idempotency key from the requester
        order_id    INTEGER NOT NULL,
        kind        TEXT NOT NULL,                    -- accept | cancel | status
        params      TEXT NOT NULL,
        source      TEXT NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'done', 'failed')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        created     REAL NOT NULL,
        updated     REAL NOT NULL,
        error_code  TEXT,
        error       TEXT
    );
    CREATE INDEX outbox_pending ON outbox (state, id);

    CREATE TABLE kv (
        key    TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    """,
    2: """
    -- printing: one row per ticket to print, recorded in the same transaction as the
    -- spooler's cursor advance, before anything is sent.
    CREATE TABLE print_jobs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        printer     TEXT NOT NULL,                    -- printer whose queue holds the job
        origin      TEXT NOT NULL,                    -- printer it was planned for (failover)
        kind        TEXT NOT NULL,                    -- order reprint cancel status test text
        order_id    INTEGER,
        event_seq   INTEGER NOT NULL,                 -- journal event that asked for it
        params      TEXT NOT NULL,                    -- JSON: status, lines, source...
        state       TEXT NOT NULL
                    CHECK (state IN ('queued', 'sending', 'done', 'failed', 'skipped')),
        reprint     INTEGER NOT NULL DEFAULT 0,       -- an earlier send may have printed it
        attempts    INTEGER NOT NULL DEFAULT 0,
        created     REAL NOT NULL,
        updated     REAL NOT NULL,
        error       TEXT,
        UNIQUE (origin, event_seq, kind)
    );
    CREATE INDEX print_jobs_queue ON print_jobs (printer, state, id);
    CREATE INDEX print_jobs_order ON print_jobs (order_id, origin);
    """,
    3: """
    -- bridges: commands received from POS terminals (MQTT, serial), by the terminal's own
    -- command id, so a repeated command is applied once and answered with the same result.
    CREATE TABLE bridge_commands (
        bridge       TEXT NOT NULL,                   -- mqtt | serial
        request_id   TEXT NOT NULL,                   -- the terminal's command id
        name         TEXT NOT NULL,                   -- accept, cancel, status, reprint, ...
        digest       TEXT NOT NULL,                   -- hash of the request, to spot id reuse
        command_id   INTEGER,                         -- outbox id for commands sent to Sinqro
        response     TEXT NOT NULL,                   -- JSON of the first answer
        final        TEXT,                            -- JSON of the answer once Sinqro replied
        reply_to     TEXT,                            -- where the final answer goes (MQTT topic)
        correlation  BLOB,                            -- MQTT 5 correlation data of the request
        created      REAL NOT NULL,
        PRIMARY KEY (bridge, request_id)
    );
    CREATE INDEX bridge_commands_command ON bridge_commands (command_id);
    CREATE INDEX bridge_commands_created ON bridge_commands (created);
    """,
    4: """
    -- core, sparing the card: indexes no query uses cost a page write per change.
    DROP INDEX orders_updated;
    DROP INDEX events_order;
    -- digest of the payload as stored: a refresh that brings the same order writes nothing.
    ALTER TABLE orders ADD COLUMN digest TEXT;
    -- rows that could not be decoded, moved here instead of stopping the box.
    CREATE TABLE quarantine (
        id      INTEGER PRIMARY KEY,
        source  TEXT NOT NULL,                        -- table the row came from
        row_key TEXT NOT NULL,                        -- its key there
        row     TEXT NOT NULL,                        -- every column, as JSON
        error   TEXT NOT NULL,
        ts      REAL NOT NULL
    );
    -- random id of this journal: event ids start again in a new one.
    INSERT OR IGNORE INTO kv (key, value) VALUES ('journal.epoch', lower(hex(randomblob(8))));
    """,
    5: """
    -- sparing the card: AUTOINCREMENT rewrites the sqlite_sequence page in every commit that
    -- adds an event or a print job, one more page in the WAL (and later in the file) for
    -- nothing. A plain INTEGER PRIMARY KEY takes max + 1 and never hands a number out twice
    -- as long as the newest row stays: the newest event is never pruned (Journal.prune)
    -- and print jobs are never deleted. The outbox keeps AUTOINCREMENT: it can be pruned
    -- empty, and bridge commands refer to its ids.
    CREATE TABLE events_v5 (
        seq       INTEGER PRIMARY KEY,                -- never reused: the newest stays
        ts        REAL NOT NULL,
        kind      TEXT NOT NULL,
        order_id  INTEGER,
        data      TEXT NOT NULL
    );
    INSERT INTO events_v5 (seq, ts, kind, order_id, data)
        SELECT seq, ts, kind, order_id, data FROM events;
    -- A journal whose events were all pruned by an older edged: keep its numbering going
    -- with one marker event at the last number handed out (no consumer acts on its kind).
    INSERT INTO events_v5 (seq, ts, kind, order_id, data)
        SELECT seq, 0, 'journal.numbering', NULL, '{}' FROM sqlite_sequence
        WHERE name = 'events' AND seq > (SELECT COALESCE(MAX(seq), 0) FROM events);
    DROP TABLE events;
    ALTER TABLE events_v5 RENAME TO events;

    CREATE TABLE print_jobs_v5 (
        id          INTEGER PRIMARY KEY,              -- never reused: jobs are never deleted
        printer     TEXT NOT NULL,
        origin      TEXT NOT NULL,
        kind        TEXT NOT NULL,
        order_id    INTEGER,
        event_seq   INTEGER NOT NULL,
        params      TEXT NOT NULL,
        state       TEXT NOT NULL
                    CHECK (state IN ('queued', 'sending', 'done', 'failed', 'skipped')),
        reprint     INTEGER NOT NULL DEFAULT 0,
        attempts    INTEGER NOT NULL DEFAULT 0,
        created     REAL NOT NULL,
        updated     REAL NOT NULL,
        error       TEXT,
        UNIQUE (origin, event_seq, kind)
    );
    INSERT INTO print_jobs_v5 SELECT id, printer, origin, kind, order_id, event_seq, params,
        state, reprint, attempts, created, updated, error FROM print_jobs;
    DROP TABLE print_jobs;
    ALTER TABLE print_jobs_v5 RENAME TO print_jobs;
    CREATE INDEX print_jobs_queue ON print_jobs (printer, state, id);
    CREATE INDEX print_jobs_order ON print_jobs (order_id, origin);
    """,
    6: """
    -- the catalog: the last copy read from Sinqro per selling point, canonical JSON, so an
    -- unchanged read writes nothing (compared by digest before any write).
    CREATE TABLE catalog (
        selling_point_id  INTEGER PRIMARY KEY,
        digest            TEXT NOT NULL,              -- of payload
        payload           TEXT NOT NULL,              -- edged.sinqro.catalog.Catalog.to_json
        changed           REAL NOT NULL               -- unix time it last differed
    );
    -- sold out until a time: the box puts the item back on at ``until`` itself.
    CREATE TABLE availability_timers (
        selling_point_id  INTEGER NOT NULL,
        kind              TEXT NOT NULL CHECK (kind IN ('product', 'option')),
        item_id           INTEGER NOT NULL,
        category_id       INTEGER,                    -- an option's category
        until             REAL NOT NULL,              -- unix time
        PRIMARY KEY (selling_point_id, kind, item_id)
    );
    """,
}

LATEST = max(MIGRATIONS)
