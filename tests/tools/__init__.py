"""Tests of service.tools."""
