"""Near-real-time flow, plain parts: events, pacing, delivery to Kafka, the transactions log."""
