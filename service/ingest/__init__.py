"""Ingest (SPEC §6.2): a switch's body turned into stored, rated CDRs and an answer.

`pipeline` runs POST /v1/cdrs: `cut` splits a body into records with their exact bytes;
`scan` cuts the ordinary ones straight into columns, which `columns` rates in one kernel
pass, stores by COPY and answers as JSON text (`text_kernels`); every other record goes
through `records` (rated one by one, checked against what is stored, stored, answered).
`suspense` keeps the rejected byte for byte, lists them and recycles them.
"""
