"""Partner adapters: one package per partner, each with its adapter, contract and simulator."""
