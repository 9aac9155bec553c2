"""Search flow, plain parts: the Elasticsearch client, index observation, CSV reconciliation."""
