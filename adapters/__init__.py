"""Partner adapters: one package per partner, each with its adapter, contract and simulator.

A package whose name starts with an underscore is a library, not an adapter
(``_shared``: resilience; ``_magda``: the MAGDA envelope, replies, mappings and
simulator engine): adapters import it, and it never imports an adapter.
"""
