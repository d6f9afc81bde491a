"""Reports: tables (polars), plots (matplotlib), the results page."""
