-- Markets of every venue, not only Kalshi's. Each row names its venue; the columns that
-- held Kalshi's own words hold the venue's: its id for the market (venue_id), its status
-- word (status_text, as status records carry it) and its update time. A market states
-- its precision: decimals of its prices and sizes (Kraken's pair and lot decimals), its
-- tick and minimum order size as the venue writes them, and the venue's other reference
-- fields as a JSON object (venue_fields). A ticker stayed unique across venues here (the
-- store refused a clash); 0005 keys markets by (venue, ticker).

-- migrate:up
ALTER TABLE markets ADD COLUMN venue TEXT NOT NULL DEFAULT 'kalshi';
ALTER TABLE markets RENAME COLUMN kalshi_id TO venue_id;
ALTER TABLE markets RENAME COLUMN kalshi_status TO status_text;
ALTER TABLE markets RENAME COLUMN kalshi_updated_time TO venue_updated_time;
ALTER TABLE markets ADD COLUMN price_decimals INTEGER;
ALTER TABLE markets ADD COLUMN size_decimals INTEGER;
ALTER TABLE markets ADD COLUMN tick_size TEXT;
ALTER TABLE markets ADD COLUMN min_order_size TEXT;
ALTER TABLE markets ADD COLUMN venue_fields TEXT;
CREATE INDEX markets_venue ON markets (venue, status);

-- migrate:down
DROP INDEX markets_venue;
ALTER TABLE markets DROP COLUMN venue_fields;
ALTER TABLE markets DROP COLUMN min_order_size;
ALTER TABLE markets DROP COLUMN tick_size;
ALTER TABLE markets DROP COLUMN size_decimals;
ALTER TABLE markets DROP COLUMN price_decimals;
ALTER TABLE markets RENAME COLUMN venue_updated_time TO kalshi_updated_time;
ALTER TABLE markets RENAME COLUMN status_text TO kalshi_status;
ALTER TABLE markets RENAME COLUMN venue_id TO kalshi_id;
ALTER TABLE markets DROP COLUMN venue;
