"""Inputs opened, decompressed and split into rows: one module per format."""
