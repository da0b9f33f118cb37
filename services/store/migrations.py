"""The store's schema, as forward-only migrations numbered by ``PRAGMA user_version``.

Each entry is applied once, in order, inside one transaction. Never edit an entry that has
shipped: add a new one.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: jobs, their input media, and a small key-value table for the bot's own bookkeeping.
    """
    CREATE TABLE jobs (
        id                   INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at           REAL    NOT NULL,
        updated_at           REAL    NOT NULL,
        origin               TEXT    NOT NULL DEFAULT 'discord',
        guild_id             INTEGER,
        channel_id           INTEGER,
        user_id              INTEGER,
        source_message_id    INTEGER,
        status_message_id    INTEGER,
        mode                 TEXT    NOT NULL,
        prompt               TEXT    NOT NULL,
        duration             INTEGER,
        aspect_ratio         TEXT,
        resolution           TEXT,
        parent_job_id        INTEGER REFERENCES jobs(id),
        status               TEXT    NOT NULL,
        request_id           TEXT,
        progress             INTEGER,
        submitted_at         REAL,
        finished_at          REAL,
        downloaded_at        REAL,
        delivered_at         REAL,
        error_code           TEXT,
        error_message        TEXT,
        cost_usd_ticks       INTEGER,
        output_path          TEXT,
        output_bytes         INTEGER,
        video_duration_s     REAL,
        delivered_channel_id INTEGER,
        delivered_message_id INTEGER,
        delivery_method      TEXT
    );
    CREATE TABLE job_inputs (
        job_id    INTEGER PRIMARY KEY REFERENCES jobs(id),
        mime_type TEXT NOT NULL,
        filename  TEXT NOT NULL,
        data      BLOB NOT NULL
    );
    CREATE TABLE kv (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE INDEX jobs_active ON jobs (status)
        WHERE status NOT IN ('delivered', 'failed', 'moderated', 'expired', 'cancelled');
    CREATE INDEX jobs_user_created ON jobs (user_id, created_at);
    CREATE INDEX jobs_guild_created ON jobs (guild_id, created_at);
    """,
    # 2: who removed a delivered video (Delete button), and when.
    """
    ALTER TABLE jobs ADD COLUMN deleted_at REAL;
    ALTER TABLE jobs ADD COLUMN deleted_by INTEGER;
    """,
    # 3: when the requester was told that a job ended without a video (an outbox: a crash between
    #    ending the job and telling them is caught up on the next start).
    """
    ALTER TABLE jobs ADD COLUMN notified_at REAL;
    UPDATE jobs SET notified_at = updated_at
        WHERE status IN ('failed', 'moderated', 'expired', 'cancelled');
    CREATE INDEX jobs_unnotified ON jobs (status)
        WHERE notified_at IS NULL AND status IN ('failed', 'moderated', 'expired');
    """,
    # 4: each server's rules (only what its moderators changed, as JSON) and who is blocked from the bot.
    """
    CREATE TABLE guild_settings (
        guild_id   INTEGER PRIMARY KEY,
        overrides  TEXT    NOT NULL,
        updated_at REAL    NOT NULL,
        updated_by INTEGER
    );
    CREATE TABLE guild_bans (
        guild_id  INTEGER NOT NULL,
        user_id   INTEGER NOT NULL,
        banned_at REAL    NOT NULL,
        banned_by INTEGER,
        reason    TEXT,
        PRIMARY KEY (guild_id, user_id)
    );
    CREATE INDEX jobs_guild_user_created ON jobs (guild_id, user_id, created_at);
    -- covers the server-wide limits' count and spend sum, so each decision reads the index alone
    CREATE INDEX jobs_guild_day ON jobs (guild_id, created_at, status, cost_usd_ticks, mode, duration, resolution);
    """,
    # 5: whether a job's submit may have reached xAI ("charged"): from then on it counts against every limit,
    #    whatever its ending. Earlier rows: charged when xAI knew the job (a request id or a reported cost), when
    #    it was delivered or moderated, and when the bot could not tell whether xAI got it (caught mid-submit).
    """
    ALTER TABLE jobs ADD COLUMN charged INTEGER NOT NULL DEFAULT 0;
    UPDATE jobs SET charged = 1
        WHERE request_id IS NOT NULL
           OR cost_usd_ticks > 0
           OR status IN ('submitting', 'running', 'downloading', 'delivering', 'delivered', 'moderated')
           OR error_code = 'submit_uncertain';
    DROP INDEX jobs_guild_day;
    -- covers the server-wide limits' count and spend sum, so each decision reads the index alone
    CREATE INDEX jobs_guild_day ON jobs
        (guild_id, created_at, status, charged, cost_usd_ticks, mode, duration, resolution);
    """,
    # 6: retention. When a job ended (the clock the janitor keeps media by), when its files and stored input
    #    were removed (by age, the Delete button or a moderator's forget: the row, its costs and counts stay),
    #    and when a moderator had its member's prompts forgotten. Ended jobs so far ended at their last update.
    """
    ALTER TABLE jobs ADD COLUMN ended_at REAL;
    ALTER TABLE jobs ADD COLUMN media_purged_at REAL;
    ALTER TABLE jobs ADD COLUMN forgotten_at REAL;
    UPDATE jobs SET ended_at = COALESCE(delivered_at, updated_at)
        WHERE status IN ('delivered', 'failed', 'moderated', 'expired', 'cancelled');
    -- the janitor reads only the rows whose media is still kept
    CREATE INDEX jobs_media_kept ON jobs (id) WHERE media_purged_at IS NULL;
    """,
    # 7: when a job was charged (its request last went on the wire): a finished job counts in the limits' windows
    #    from then, not from when it was asked for, so one that waited through an outage counts when it was sent.
    #    A job still in the making (a cancelled one xAI still generates included: ``ended_at`` is only written
    #    once xAI is done with it) counts now, whatever its age. Earlier charged rows: from their submit, else
    #    their creation; a row charged without one (by another program) gets its creation, by the triggers.
    #    A job waiting to be sent is no longer charged (it is, from the moment its request goes on the wire).
    """
    ALTER TABLE jobs ADD COLUMN charged_at REAL;
    UPDATE jobs SET charged_at = COALESCE(submitted_at, created_at) WHERE charged = 1;
    CREATE TRIGGER jobs_charged_at AFTER INSERT ON jobs WHEN NEW.charged = 1 AND NEW.charged_at IS NULL
    BEGIN
        UPDATE jobs SET charged_at = NEW.created_at WHERE id = NEW.id;
    END;
    CREATE TRIGGER jobs_charged_at_update AFTER UPDATE OF charged ON jobs
        WHEN NEW.charged = 1 AND NEW.charged_at IS NULL
    BEGIN
        UPDATE jobs SET charged_at = NEW.created_at WHERE id = NEW.id;
    END;
    DROP INDEX jobs_guild_day;
    -- the finished, charged jobs of a window: covers the server-wide count and spend sum, and a member's count
    CREATE INDEX jobs_guild_charged ON jobs
        (guild_id, charged_at, charged, status, ended_at, cost_usd_ticks, mode, duration, resolution)
        WHERE charged = 1;
    CREATE INDEX jobs_user_charged ON jobs (guild_id, user_id, charged_at, charged, status, ended_at)
        WHERE charged = 1;
    -- the jobs in the making (few at any time): counted now, whatever their age
    CREATE INDEX jobs_in_flight ON jobs (guild_id, user_id)
        WHERE status IN ('delivering', 'downloading', 'queued', 'running', 'submitting')
           OR (status = 'cancelled' AND charged = 1 AND ended_at IS NULL);
    """,
    # 8: what the polling policy learns across restarts. The model a job was sent to (set at submit), and how
    #    long xAI took to make it, as judged from xAI's answers when the video was found ready (NULL when they
    #    could not tell, or the job was resumed: its age spans the downtime). ``finished_at - submitted_at`` is
    #    not that: it includes the time a finished video waited to be noticed. Earlier rows have neither.
    """
    ALTER TABLE jobs ADD COLUMN model TEXT;
    ALTER TABLE jobs ADD COLUMN generation_s REAL;
    -- the latest learnt generation times, read at every start
    CREATE INDEX jobs_generation ON jobs (id) WHERE generation_s IS NOT NULL;
    """,
    # 9: xAI's temporary address of a finished video and when it stops working (about 24 h after xAI made it):
    #    posted instead of the file when the video cannot be shrunk to fit Discord's upload limit. Only an
    #    address on xAI's allowed hosts, without credentials, is kept. And the job a result message carries,
    #    found by that message (a context menu used on a bot result records it as the new job's parent).
    """
    ALTER TABLE jobs ADD COLUMN result_url TEXT;
    ALTER TABLE jobs ADD COLUMN result_url_expires_at REAL;
    CREATE INDEX jobs_delivered_message ON jobs (delivered_message_id) WHERE delivered_message_id IS NOT NULL;
    """,
    # 10: /metrics counts jobs by status and ending, and sums reported costs, at every scrape: from this index
    #     alone instead of a scan of every job (about 10 ms at 100,000 jobs instead of 50-120 ms).
    """
    CREATE INDEX jobs_status_ending ON jobs (status, error_code, cost_usd_ticks);
    """,
    # 11: a token written with each move to "submitting": only the process that made that move may mark the job
    #     charged and send it, so a leader that froze and came back after another took its jobs sends nothing.
    """
    ALTER TABLE jobs ADD COLUMN send_token TEXT;
    """,
)
