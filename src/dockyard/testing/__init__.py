"""Fakes and conformance suites shipped with the code, for tests of logic."""
