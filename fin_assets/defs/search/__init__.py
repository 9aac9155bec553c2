"""Search flow: the Elasticsearch indices that Logstash fills, observed and reconciled."""
