"""The Spark engine: the same tables, vocabularies, weighting and aggregates as the polars path,
for data that outgrows one machine. Importing this package does not import pyspark; the modules do.
"""
