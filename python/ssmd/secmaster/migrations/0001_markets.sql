-- The seed's markets and market_history, plus events and series.
-- {{id}} is the auto-increment primary key of the dialect (SQLite or PostgreSQL).
-- Times are ISO-8601 UTC text (2026-07-20T21:00:00Z); prices, sizes and volumes are
-- integers in units of 1e-6 (dollars or contracts); strikes are exact decimal text.

-- migrate:up
CREATE TABLE series (
    ticker TEXT PRIMARY KEY,
    title TEXT,
    category TEXT,
    frequency TEXT,
    tags TEXT,
    fee_type TEXT,
    fee_multiplier TEXT,
    settlement_sources TEXT,
    contract_url TEXT,
    contract_terms_url TEXT,
    first_seen_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX series_category ON series (category);

CREATE TABLE events (
    event_ticker TEXT PRIMARY KEY,
    series_ticker TEXT,
    title TEXT,
    sub_title TEXT,
    category TEXT,
    mutually_exclusive SMALLINT,
    collateral_return_type TEXT,
    strike_date TEXT,
    strike_period TEXT,
    first_seen_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX events_series ON events (series_ticker);

CREATE TABLE markets (
    id {{id}},
    ticker TEXT NOT NULL UNIQUE,
    kalshi_id TEXT,
    event_ticker TEXT,
    series_ticker TEXT,
    category TEXT,
    market_type TEXT,
    title TEXT,
    subtitle TEXT,
    yes_sub_title TEXT,
    no_sub_title TEXT,
    status TEXT NOT NULL,
    kalshi_status TEXT,
    open_time TEXT,
    close_time TEXT,
    expected_expiration_time TEXT,
    expiration_time TEXT,
    latest_expiration_time TEXT,
    determination_time TEXT,
    settlement_time TEXT,
    created_time TEXT,
    result TEXT,
    settlement_value_e6 BIGINT,
    can_close_early SMALLINT,
    fractional_trading_enabled SMALLINT,
    strike_type TEXT,
    floor_strike TEXT,
    cap_strike TEXT,
    functional_strike TEXT,
    custom_strike TEXT,
    price_level_structure TEXT,
    price_ranges TEXT,
    rules_primary TEXT,
    rules_secondary TEXT,
    yes_bid_e6 BIGINT,
    yes_ask_e6 BIGINT,
    no_bid_e6 BIGINT,
    no_ask_e6 BIGINT,
    last_price_e6 BIGINT,
    volume_e6 BIGINT,
    volume_24h_e6 BIGINT,
    open_interest_e6 BIGINT,
    notional_value_e6 BIGINT,
    kalshi_updated_time TEXT,
    first_seen_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX markets_status ON markets (status);
CREATE INDEX markets_series ON markets (series_ticker);
CREATE INDEX markets_event ON markets (event_ticker);
CREATE INDEX markets_category ON markets (category);

CREATE TABLE market_history (
    id {{id}},
    ticker TEXT NOT NULL,
    field TEXT NOT NULL,
    old_value TEXT,
    new_value TEXT,
    changed_at TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX market_history_ticker ON market_history (ticker, id);

-- migrate:down
DROP TABLE market_history;
DROP TABLE markets;
DROP TABLE events;
DROP TABLE series;
