"""Datasets: the manifest contract, importers, validation, duplicates, splits, inspect, relabel."""
