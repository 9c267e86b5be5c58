"""Developers' tools, run through `callrate bench`, `callrate loadtest` and
`callrate numbering build`: benchmarks with the limits they are measured against, a load
generator, and the numbering-table builder. Nothing in the service imports them."""
