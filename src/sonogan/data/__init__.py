"""Datasets: the manifest contract, importers, the phantom, splits, duplicates."""
