"""What the API asks of the service besides ingest, one module per question.

`registry` (subscribers and the profiles rating reads), `quotes` (what a call would cost),
`cdrs` (a stored CDR and its rating, explained again), `usage` (a subscriber's month),
`tariffs` (the published tariff versions: catalogue, publishing, a server's live set) and
`audit` (the audit log); `registry_cache` keeps registry profiles per worker on PostgreSQL.
Each takes a database session and the rater, and returns the `service.schemas` the API
answers with.
"""
