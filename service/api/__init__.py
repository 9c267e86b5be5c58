"""The HTTP contract: pydantic schemas and one router module per resource."""
