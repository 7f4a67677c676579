"""Partner adapters: one package per partner, plus private libraries (``_shared``, ``_magda``).

A package whose name starts with an underscore is a library, not an adapter:
adapters import it, and it never imports an adapter.
"""
