"""Tests of service.ingest."""
