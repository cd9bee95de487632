"""NATS: connection, stream provisioning and checks, subject builder, JetStream publisher.

from ssmd.bus import subjects
subjects.record("prod", "kalshi", "trade", "KXBTCD-26MAR1213-T69499.99")
# -> "prod.kalshi.trade.KXBTCD-26MAR1213-T69499%2E99"
"""
