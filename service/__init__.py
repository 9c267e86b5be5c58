"""callrate: telephony call rating to the fen (docs/architecture.md draws the house).

Lowest layer first; each imports only from the layers below it (tests/test_layout.py):
`rating` (the pure core), then `clock`, `config`, `errors` and `schemas`, `db`, `security`,
`ops`, `flows`, `ingest`, `jobs`, `api` (with the console in `web/`), `tools` and `cli`.
"""
