-- Data issues: someone (an agent through the MCP server, a person through the gateway or
-- the command line) saw something wrong in the data of a market over a time range. Kept
-- here, with who reported it, until resolved; `ssmd data quality` shows the open ones next
-- to the day's gaps. Times are ISO-8601 UTC text with milliseconds, as elsewhere.

-- migrate:up
CREATE TABLE data_issues (
    id {{id}},
    feed TEXT NOT NULL,
    ticker TEXT,
    start_time TEXT NOT NULL,
    end_time TEXT NOT NULL,
    description TEXT NOT NULL,
    reporter TEXT NOT NULL,
    reported_at TEXT NOT NULL,
    status TEXT NOT NULL,
    resolved_at TEXT,
    resolved_by TEXT,
    resolution TEXT
);
CREATE INDEX data_issues_open ON data_issues (status, start_time);

-- migrate:down
DROP TABLE data_issues;
