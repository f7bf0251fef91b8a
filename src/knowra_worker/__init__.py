"""Knowra Worker: a distributed document-parsing service for knowledge bases."""

__version__ = "0.1.0"
