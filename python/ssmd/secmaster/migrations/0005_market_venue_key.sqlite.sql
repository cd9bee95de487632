-- A market is one venue's: the same ticker may name a market at two venues (BTC/USD on
-- two exchanges), so markets are unique by (venue, ticker), and each history row names
-- its venue. Rows from before this version are Kalshi's (the venue column's default).
-- SQLite cannot drop the old UNIQUE (ticker) in place: the table is rebuilt, ids kept.

-- migrate:up
CREATE TABLE markets_rebuilt (
    id {{id}},
    venue TEXT NOT NULL DEFAULT 'kalshi',
    ticker TEXT NOT NULL,
    venue_id TEXT,
    event_ticker TEXT,
    series_ticker TEXT,
    category TEXT,
    market_type TEXT,
    title TEXT,
    subtitle TEXT,
    yes_sub_title TEXT,
    no_sub_title TEXT,
    status TEXT NOT NULL,
    status_text TEXT,
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
    venue_updated_time TEXT,
    price_decimals INTEGER,
    size_decimals INTEGER,
    tick_size TEXT,
    min_order_size TEXT,
    venue_fields TEXT,
    first_seen_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (venue, ticker)
);
INSERT INTO markets_rebuilt (id, venue, ticker, venue_id, event_ticker, series_ticker, category, market_type, title, subtitle, yes_sub_title, no_sub_title, status, status_text, open_time, close_time, expected_expiration_time, expiration_time, latest_expiration_time, determination_time, settlement_time, created_time, result, settlement_value_e6, can_close_early, fractional_trading_enabled, strike_type, floor_strike, cap_strike, functional_strike, custom_strike, price_level_structure, price_ranges, rules_primary, rules_secondary, yes_bid_e6, yes_ask_e6, no_bid_e6, no_ask_e6, last_price_e6, volume_e6, volume_24h_e6, open_interest_e6, notional_value_e6, venue_updated_time, price_decimals, size_decimals, tick_size, min_order_size, venue_fields, first_seen_at, updated_at)
    SELECT id, venue, ticker, venue_id, event_ticker, series_ticker, category, market_type, title, subtitle, yes_sub_title, no_sub_title, status, status_text, open_time, close_time, expected_expiration_time, expiration_time, latest_expiration_time, determination_time, settlement_time, created_time, result, settlement_value_e6, can_close_early, fractional_trading_enabled, strike_type, floor_strike, cap_strike, functional_strike, custom_strike, price_level_structure, price_ranges, rules_primary, rules_secondary, yes_bid_e6, yes_ask_e6, no_bid_e6, no_ask_e6, last_price_e6, volume_e6, volume_24h_e6, open_interest_e6, notional_value_e6, venue_updated_time, price_decimals, size_decimals, tick_size, min_order_size, venue_fields, first_seen_at, updated_at FROM markets;
DROP TABLE markets;
ALTER TABLE markets_rebuilt RENAME TO markets;
CREATE INDEX markets_status ON markets (status);
CREATE INDEX markets_series ON markets (series_ticker);
CREATE INDEX markets_event ON markets (event_ticker);
CREATE INDEX markets_category ON markets (category);
CREATE INDEX markets_venue ON markets (venue, status);
ALTER TABLE market_history ADD COLUMN venue TEXT NOT NULL DEFAULT 'kalshi';
DROP INDEX market_history_ticker;
CREATE INDEX market_history_ticker ON market_history (venue, ticker, id);

-- migrate:down
DROP INDEX market_history_ticker;
ALTER TABLE market_history DROP COLUMN venue;
CREATE INDEX market_history_ticker ON market_history (ticker, id);
CREATE TABLE markets_rebuilt (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    venue TEXT NOT NULL DEFAULT 'kalshi',
    ticker TEXT NOT NULL,
    venue_id TEXT,
    event_ticker TEXT,
    series_ticker TEXT,
    category TEXT,
    market_type TEXT,
    title TEXT,
    subtitle TEXT,
    yes_sub_title TEXT,
    no_sub_title TEXT,
    status TEXT NOT NULL,
    status_text TEXT,
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
    venue_updated_time TEXT,
    price_decimals INTEGER,
    size_decimals INTEGER,
    tick_size TEXT,
    min_order_size TEXT,
    venue_fields TEXT,
    first_seen_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (ticker)
);
INSERT INTO markets_rebuilt (id, venue, ticker, venue_id, event_ticker, series_ticker, category, market_type, title, subtitle, yes_sub_title, no_sub_title, status, status_text, open_time, close_time, expected_expiration_time, expiration_time, latest_expiration_time, determination_time, settlement_time, created_time, result, settlement_value_e6, can_close_early, fractional_trading_enabled, strike_type, floor_strike, cap_strike, functional_strike, custom_strike, price_level_structure, price_ranges, rules_primary, rules_secondary, yes_bid_e6, yes_ask_e6, no_bid_e6, no_ask_e6, last_price_e6, volume_e6, volume_24h_e6, open_interest_e6, notional_value_e6, venue_updated_time, price_decimals, size_decimals, tick_size, min_order_size, venue_fields, first_seen_at, updated_at)
    SELECT id, venue, ticker, venue_id, event_ticker, series_ticker, category, market_type, title, subtitle, yes_sub_title, no_sub_title, status, status_text, open_time, close_time, expected_expiration_time, expiration_time, latest_expiration_time, determination_time, settlement_time, created_time, result, settlement_value_e6, can_close_early, fractional_trading_enabled, strike_type, floor_strike, cap_strike, functional_strike, custom_strike, price_level_structure, price_ranges, rules_primary, rules_secondary, yes_bid_e6, yes_ask_e6, no_bid_e6, no_ask_e6, last_price_e6, volume_e6, volume_24h_e6, open_interest_e6, notional_value_e6, venue_updated_time, price_decimals, size_decimals, tick_size, min_order_size, venue_fields, first_seen_at, updated_at FROM markets;
DROP TABLE markets;
ALTER TABLE markets_rebuilt RENAME TO markets;
CREATE INDEX markets_status ON markets (status);
CREATE INDEX markets_series ON markets (series_ticker);
CREATE INDEX markets_event ON markets (event_ticker);
CREATE INDEX markets_category ON markets (category);
CREATE INDEX markets_venue ON markets (venue, status);
