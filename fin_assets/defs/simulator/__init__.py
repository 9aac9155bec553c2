"""Near-real-time flow: a trading-system simulator producing to Kafka."""
