@0xcd0170e85f54e8a4;
# ssmd normalized market data, version 1.
#
# This file is the single source of every normalized field. The Rust core's
# generated code (rust/ssmd-core/src/generated/) and every reader (pycapnp,
# `capnp decode`) come from it; `just check-schemas` fails when they drift.
#
# Messages
#   Every normalized message, on NATS and in archives, has the root struct
#   `Record`: provenance fields shared by every kind, then a union that holds
#   one kind of record. Archives are streams of *packed* messages, zstd
#   compressed:  zstd -dc data.capnp.zst | capnp decode --packed ssmd.capnp Record
#
# Compatibility
#   The seed structs (Trade, OrderBookUpdate, Level, MarketStatus, Side,
#   Status) keep their names, fields and ordinals. New fields only ever get new
#   ordinals; no field changes type or number.
#
# Exact numbers
#   Kalshi prices are dollar strings with up to 4 decimals ("0.9990") and
#   counts are fixed-point strings with 2 decimals ("2233487.48"). Every price
#   and size is therefore also carried as a fixed-point Int64 with scale 1e-6
#   (field suffix E6): "0.9990" -> 999000, "2233487.48" -> 2233487480000.
#   The seed's Float64 price and UInt32 size are the nearest representable
#   values (sizes rounded half away from zero, clamped to UInt32).
#   A value the exchange did not send, or sent in a form that could not be
#   read, is `undefE6` (Int64 minimum) in E6 fields, 0 in timestamps, and an
#   unset pointer in Text fields. NaN is never written.
#
# Time
#   All timestamps are Unix nanoseconds (UInt64), UTC. Kalshi sends seconds,
#   milliseconds or RFC3339 strings depending on message and era; the parser
#   prefers the most precise one present (ts_ms over ts, RFC3339 kept to the
#   nanosecond).

const undefE6 :Int64 = -9223372036854775808;
# Sentinel for "absent or unreadable" in every E6 field.

const scaleE6 :Int64 = 1000000;
# Units per dollar (prices) and per contract (sizes) in every E6 field.

enum Side {
  # Taker side of a trade in the seed's terms: buy = the taker bought YES
  # (Kalshi taker_side / taker_outcome_side "yes"), sell = the taker bought NO.
  buy @0;
  sell @1;
  unknown @2;                # a spot trade whose taker side was not sent or not readable
}

enum Status {
  # Market status. The seed's three values keep their ordinals.
  open @0;          # Kalshi "active" (trading)
  closed @1;        # trading ended, not yet determined
  halted @2;        # Kalshi "inactive"/deactivated (paused)
  initialized @3;   # created, open_time not reached
  determined @4;    # result known
  settled @5;       # paid out
  unknown @6;       # a status string this version does not know (kept in statusText)
}

enum Outcome {
  # A side of a binary contract.
  unknown @0;
  yes @1;
  no @2;
}

struct Level {
  # One price level of a book.
  price @0 :Float64;   # dollars, nearest to priceE6
  size @1 :UInt32;     # contracts, nearest to sizeE6
  priceE6 @2 :Int64;   # exact price, 1e-6 dollars
  sizeE6 @3 :Int64;    # exact resting size, 1e-6 contracts
}

struct Trade {
  # Kalshi `trade` (channel trade). Kalshi fields:
  #   trade_id -> tradeId; market_ticker -> ticker
  #   yes_price_dollars (era B/C) | yes_price cents (era A) -> priceE6, price
  #   no_price_dollars | no_price cents -> noPriceE6
  #   count_fp | count -> sizeE6, size
  #   taker_outcome_side | taker_side -> takerOutcome, side
  #   taker_book_side -> takerBookSide ("bid" = yes, "ask" = no)
  #   is_block_trade -> isBlockTrade; ts_ms | ts (s) -> timestamp
  timestamp @0 :UInt64;      # exchange time, ns (same as Record.exchangeTs)
  ticker @1 :Text;
  price @2 :Float64;         # YES price in dollars
  size @3 :UInt32;           # contracts
  side @4 :Side;             # meaningful only when takerOutcome is yes or no
  tradeId @5 :Text;
  priceE6 @6 :Int64;         # exact YES price
  noPriceE6 @7 :Int64;       # exact NO price
  sizeE6 @8 :Int64;          # exact count
  takerOutcome @9 :Outcome;
  takerBookSide @10 :Outcome; # bid -> yes, ask -> no
  isBlockTrade @11 :Bool;
  # Venues with a per-instrument precision (Kraken). Kraken `trade` fields:
  #   price -> priceUnits (exact, units of 10^-priceDecimals), priceE6/price (nearest)
  #   qty -> sizeUnits (exact, units of 10^-sizeDecimals), sizeE6/size (nearest)
  #   side (the taker's: buy/sell) -> side, takerOutcome unknown; trade_id -> tradeId;
  #   ord_type -> ordType; symbol -> ticker; timestamp (RFC3339) -> timestamp
  # For such a venue priceE6 and sizeE6 are the nearest 1e-6 value (half away
  # from zero) when the precision is finer; the Units fields are exact.
  priceUnits @12 :Int64;     # undefE6 when not sent
  sizeUnits @13 :Int64;
  priceDecimals @14 :UInt8;
  sizeDecimals @15 :UInt8;
  ordType @16 :Text;
  spot @17 :Bool;            # a spot venue's trade: read priceUnits/sizeUnits
}

struct OrderBookUpdate {
  # A full view of a book, YES-centric: bids are YES bids, asks are YES asks
  # derived from NO bids (ask = 1 - NO bid), both best first. Built by the
  # order-book state (ssmd._core.Book), not by the parser.
  timestamp @0 :UInt64;
  ticker @1 :Text;
  bids @2 :List(Level);
  asks @3 :List(Level);
  valid @4 :Bool;            # false while the book awaits a resync
  spot @5 :Bool;             # a spot book: bids and asks at face value, any
                             # price (E6 nearest when the venue is finer)
}

struct OrderBookSnapshot {
  # Kalshi `orderbook_snapshot`. Kalshi fields:
  #   yes_dollars_fp (C) | yes_dollars (B) | yes cents (A) -> yes
  #   no_dollars_fp | no_dollars | no -> no
  # A side Kalshi omits is an empty list. Levels keep Kalshi's order
  # (ascending by price). NO levels are on the NO price scale unless the
  # subscription asked for use_yes_price (useYesPrice).
  ticker @0 :Text;
  marketId @1 :Text;
  yes @2 :List(Level);
  no @3 :List(Level);
  useYesPrice @4 :Bool;
}

struct SpotLevel {
  # One level of a spot book, exact at the instrument's precision.
  price @0 :Int64;           # units of 10^-priceDecimals
  qty @1 :Int64;             # units of 10^-qtyDecimals; 0 removes the level
}

struct SpotBook {
  # Kraken `book` (WebSocket v2): a snapshot (replace both sides) or an update
  # (changed levels, in the venue's order; qty 0 deletes). Kraken fields:
  #   symbol -> ticker; bids, asks [{price, qty}] -> bids, asks (exact integers);
  #   checksum -> checksum; timestamp (RFC3339) -> Record.exchangeTs.
  # After applying it, the book is cut to `depth` levels per side and the CRC32
  # of its top 10 levels is compared with `checksum`: checksumOk says whether
  # they matched (a mismatch makes the book invalid until a new snapshot).
  ticker @0 :Text;
  snapshot @1 :Bool;
  bids @2 :List(SpotLevel);
  asks @3 :List(SpotLevel);
  priceDecimals @4 :UInt8;
  qtyDecimals @5 :UInt8;
  checksum @6 :UInt32;
  checksumOk @7 :Bool;
  depth @8 :UInt16;
}

struct SpotTicker {
  # Kraken `ticker` (level 1, 24 h statistics). Kraken fields: bid, bid_qty,
  # ask, ask_qty, last, volume, vwap, low, high, change -> the same names
  # (exact integers: prices in units of 10^-priceDecimals, quantities and
  # volume in units of 10^-qtyDecimals, vwap and change in units of
  # 10^-priceDecimals, rounded half away from zero when finer); change_pct ->
  # changePct (hundredths of a percent); timestamp -> Record.exchangeTs.
  # A value not sent is undefE6.
  ticker @0 :Text;
  bid @1 :Int64;
  bidQty @2 :Int64;
  ask @3 :Int64;
  askQty @4 :Int64;
  last @5 :Int64;
  volume @6 :Int64;
  vwap @7 :Int64;
  low @8 :Int64;
  high @9 :Int64;
  change @10 :Int64;
  changePct @11 :Int64;
  priceDecimals @12 :UInt8;
  qtyDecimals @13 :UInt8;
}

struct Instrument {
  # Kraken `instrument` pairs[] (reference data of one pair). Kraken fields:
  #   symbol -> ticker; base, quote, status; price_precision -> priceDecimals;
  #   qty_precision -> qtyDecimals; price_increment, qty_increment, qty_min ->
  #   exact integers at those precisions; cost_min -> costMin (verbatim).
  ticker @0 :Text;
  base @1 :Text;
  quote @2 :Text;
  status @3 :Text;
  priceDecimals @4 :UInt8;
  qtyDecimals @5 :UInt8;
  priceIncrement @6 :Int64;
  qtyIncrement @7 :Int64;
  qtyMin @8 :Int64;
  costMin @9 :Text;
}

struct VenueStatus {
  # The venue's engine status (Kraken `status`: system, api_version,
  # connection_id, version). Not about one market: no ticker.
  system @0 :Text;           # online, maintenance, cancel_only, post_only, ...
  apiVersion @1 :Text;
  connectionId @2 :UInt64;
  version @3 :Text;
}

struct OrderBookDelta {
  # Kalshi `orderbook_delta`. Kalshi fields:
  #   price_dollars | price cents -> priceE6; delta_fp | delta -> deltaE6
  #   side -> side; client_order_id -> clientOrderId; ts_ms | ts (RFC3339) -> Record.exchangeTs
  ticker @0 :Text;
  marketId @1 :Text;
  side @2 :Outcome;          # which bid book: yes or no
  priceE6 @3 :Int64;
  deltaE6 @4 :Int64;         # signed change of the resting size at priceE6
  clientOrderId @5 :Text;
}

struct Ticker {
  # Kalshi `ticker`. Kalshi fields:
  #   price_dollars | price -> lastPriceE6 ("" -> undef)
  #   yes_bid_dollars | yes_bid -> yesBidE6; yes_ask_dollars | yes_ask -> yesAskE6
  #   yes_bid_size_fp, yes_ask_size_fp, last_trade_size_fp -> *SizeE6
  #   volume_fp | volume -> volumeE6; open_interest_fp | open_interest -> openInterestE6
  #   dollar_volume, dollar_open_interest -> whole dollars (-1 when absent)
  #   ts_ms | time (RFC3339) | ts (s) -> Record.exchangeTs
  ticker @0 :Text;
  marketId @1 :Text;
  lastPriceE6 @2 :Int64;
  yesBidE6 @3 :Int64;
  yesAskE6 @4 :Int64;
  yesBidSizeE6 @5 :Int64;
  yesAskSizeE6 @6 :Int64;
  lastTradeSizeE6 @7 :Int64;
  volumeE6 @8 :Int64;
  openInterestE6 @9 :Int64;
  dollarVolume @10 :Int64;
  dollarOpenInterest @11 :Int64;
}

enum LifecycleEvent {
  other @0;                  # kept verbatim in eventTypeText
  created @1;
  activated @2;
  deactivated @3;
  closeDateUpdated @4;
  determined @5;
  settled @6;
  metadataUpdated @7;
}

struct MarketLifecycle {
  # Kalshi `market_lifecycle_v2`. Kalshi fields:
  #   event_type -> eventType, eventTypeText; open_ts, close_ts,
  #   determination_ts, settled_ts (s) -> *Ts (ns); result (or
  #   additional_metadata.result) -> result; settlement_value (dollar string,
  #   or cents in old frames) -> settlementValueE6; is_deactivated;
  #   additional_metadata -> metadataJson (verbatim JSON) and eventTicker, title
  ticker @0 :Text;
  eventType @1 :LifecycleEvent;
  eventTypeText @2 :Text;
  openTs @3 :UInt64;
  closeTs @4 :UInt64;
  determinationTs @5 :UInt64;
  settledTs @6 :UInt64;
  result @7 :Text;
  settlementValueE6 @8 :Int64;
  isDeactivated @9 :Bool;
  eventTicker @10 :Text;
  title @11 :Text;
  metadataJson @12 :Text;
}

struct EventLifecycle {
  # Kalshi `event_lifecycle`. subtitle accepts sub_title; strike_date (s) -> ns.
  eventTicker @0 :Text;
  title @1 :Text;
  subtitle @2 :Text;
  collateralReturnType @3 :Text;
  seriesTicker @4 :Text;
  strikeDate @5 :UInt64;
  strikePeriod @6 :Text;
}

struct MarketStatus {
  # A market's status as ssmd knows it (from the security master, including
  # the silent initialized -> open transition at open_time).
  timestamp @0 :UInt64;
  ticker @1 :Text;
  status @2 :Status;
  statusText @3 :Text;       # the exchange's own word ("active", "finalized", ...)
}

enum ConnectorEventKind {
  connected @0;
  disconnected @1;
  gap @2;                    # sequence gap on a sid: books on it are invalid
  resync @3;                 # books on a sid are exact again
  subscribed @4;
  unsubscribed @5;
  bufferFull @6;             # a bounded buffer reached its limit
  error @7;
  heartbeat @8;              # the connector process is capturing (Record.connId: its run id)
  stopped @9;                # the connector process stopped on request (Record.connId: its run id)
}

struct ConnectorEvent {
  # What happened to a connection, so that gaps are data, not log lines.
  kind @0 :ConnectorEventKind;
  shard @1 :UInt32;
  reason @2 :Text;
  durationNs @3 :UInt64;     # disconnected: how long the connection lived; heartbeat: the interval
  expectedSeq @4 :UInt64;    # gap: the seq that should have come
  receivedSeq @5 :UInt64;    # gap: the seq that came
  tickers @6 :List(Text);    # markets affected
}

struct Record {
  # The root of every normalized message.
  receiveTs @0 :UInt64;      # local receive time, ns
  exchangeTs @1 :UInt64;     # exchange time, ns; 0 when the exchange sent none
  connId @2 :UInt64;         # connection id: unique per connection, never reused
  sid @3 :UInt32;            # exchange subscription id; 0 = none
  seq @4 :UInt64;            # exchange sequence on sid; 0 = none
  union {
    trade @5 :Trade;
    bookSnapshot @6 :OrderBookSnapshot;
    bookDelta @7 :OrderBookDelta;
    ticker @8 :Ticker;
    lifecycle @9 :MarketLifecycle;
    eventLifecycle @10 :EventLifecycle;
    status @11 :MarketStatus;
    connectorEvent @12 :ConnectorEvent;
    book @13 :OrderBookUpdate;
    spotBook @14 :SpotBook;
    spotTicker @15 :SpotTicker;
    instrument @16 :Instrument;
    venueStatus @17 :VenueStatus;
  }
}
