"""Digikoppeling building blocks shared by the Dutch adapters (no adapter of its own).

- :mod:`.wss`         WS-Security: sign and verify SOAP 1.1 envelopes (RSA-SHA256, exclusive C14N)
- :mod:`.soap`        SOAP 1.1 envelopes with WS-Addressing (OIN in the addresses) and SOAP faults
- :mod:`.faults`      the errors those raise, each with its SOAP faultcode
- :mod:`.reliability` duplicate elimination, retry windows of days, RelatesTo correlation
- :mod:`.reconcile`   per-period counts and checksums for completeness checks
- :mod:`.transfer`    HTTP exchanges with a cap on the answer, partner text cleaned for error details
- :mod:`.config`      typed reads of an adapter's configuration
- :mod:`.testpki`     a throw-away CA and party certificates for tests and demos
- :mod:`.simserver`   shared machinery of the simulators (fault injection, recording, uvicorn in a thread)
"""
