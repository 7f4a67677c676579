"""Knooppunt: the data-exchange hub of the inburgering chain."""

__version__ = "0.1.0"
