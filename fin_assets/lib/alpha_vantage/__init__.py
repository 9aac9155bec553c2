"""Alpha Vantage's TIME_SERIES_DAILY: a client that tells data from its many HTTP-200 failure
bodies without leaking the API key, and a local stand-in server speaking the same protocol."""
