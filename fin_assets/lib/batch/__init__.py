"""Batch flow, plain parts: price frames and their rules, the stored history, the extraction log."""
