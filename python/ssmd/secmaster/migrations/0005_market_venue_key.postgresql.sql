-- A market is one venue's: the same ticker may name a market at two venues (BTC/USD on
-- two exchanges), so markets are unique by (venue, ticker), and each history row names
-- its venue. Rows from before this version are Kalshi's (the venue column's default).

-- migrate:up
ALTER TABLE markets DROP CONSTRAINT markets_ticker_key;
ALTER TABLE markets ADD CONSTRAINT markets_venue_ticker_key UNIQUE (venue, ticker);
ALTER TABLE market_history ADD COLUMN venue TEXT NOT NULL DEFAULT 'kalshi';
DROP INDEX market_history_ticker;
CREATE INDEX market_history_ticker ON market_history (venue, ticker, id);

-- migrate:down
DROP INDEX market_history_ticker;
ALTER TABLE market_history DROP COLUMN venue;
CREATE INDEX market_history_ticker ON market_history (ticker, id);
ALTER TABLE markets DROP CONSTRAINT markets_venue_ticker_key;
ALTER TABLE markets ADD CONSTRAINT markets_ticker_key UNIQUE (ticker);
