"""The hub's HTTP face: REST under /v1 (NLGov API Design Rules), SOAP, health."""
