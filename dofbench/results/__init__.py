"""The results store and everything computed from it: the DuckDB store (connections, writes,
migrations), its views (``views.sql``), the read queries, threshold statistics, published
references, and the tables results are shown in. Every SQL statement of dofbench lives here."""
