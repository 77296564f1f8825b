"""JSON Schemas of the files tsreport writes; ``results.schema.json`` describes results.json (CONTRACT §5)."""
