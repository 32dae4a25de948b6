"""Connectors that pull the three raw sources into DuckDB: the webshop database (SQLite or PostgreSQL), the helpdesk
HTTP API and survey export files. Each lands rows set-wise into temporary tables of a DuckDB connection and keeps its
incremental state (high-water marks, loaded-file manifest) in the warehouse's `raw` schema."""
