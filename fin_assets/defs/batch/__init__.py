"""Batch flow: Alpha Vantage daily prices -> raw JSON -> price history -> Datos_financieros.csv."""
