"""Settings: one pydantic-settings object, built once and passed down.

Every value comes from a ``KNOOPPUNT_*`` environment variable (nested keys
with ``__``, e.g. ``KNOOPPUNT_DELIVERY__MAX_ATTEMPTS``). Nothing here is
read at import time; ``Settings()`` is called by the app factory, the worker
entry point or the CLI.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.errors import ConfigurationError

ROOT = Path(__file__).resolve().parent.parent
_PROFILE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")

# Development-only keys: the hub refuses to start with them outside development.
DEV_PAYLOAD_KEY = base64.b64encode(b"knooppunt-development-payload-k!").decode()
DEV_AUDIT_KEY = base64.b64encode(b"knooppunt-development-audit-hmac").decode()
# Ed25519 private seed that signs audit checkpoints in development.
DEV_SIGNING_KEY = base64.b64encode(b"knooppunt-development-audit-sign").decode()


class DeliverySettings(BaseModel):
    """How delivery workers retry."""

    max_attempts: int = Field(default=8, ge=1)
    backoff_base_seconds: float = Field(default=1.0, gt=0)
    backoff_max_seconds: float = Field(default=3600.0, gt=0)
    # jobs one process delivers at once on the in-process transport (the embedded default; RabbitMQ
    # bounds them by broker.prefetch instead). Each waits for its partner and then for the writer's
    # next commit, so a few would leave the writer with batches of one or two.
    workers: int = Field(default=32, ge=1)
    poll_seconds: float = Field(default=0.5, gt=0)
    timeout_seconds: float = Field(default=10.0, gt=0)
    # A published job not finished within the lease is published again by the relay; a
    # worker's claim on a delivery lasts half the lease, so it must exceed the partner timeout.
    lease_seconds: float = Field(default=60.0, gt=0)
    # Scale mode: how long a worker may hold a small batch of claims or records open for more jobs
    # (so load split over several workers still gives large batches); 0 = never wait.
    batch_linger_ms: float = Field(default=5.0, ge=0, le=100)
    #: set by `knooppunt run --processes N`: its API processes ring the leader's relay here after
    #: committing messages, so they are published at once (hub.doorbell); not set by hand
    relay_socket: Path | None = None

    @model_validator(mode="after")
    def _claim_outlasts_the_partner_call(self) -> DeliverySettings:
        if self.lease_seconds / 2 <= self.timeout_seconds:
            raise ValueError("delivery.lease_seconds must be more than twice delivery.timeout_seconds")
        return self

    @property
    def claim_seconds(self) -> float:
        return self.lease_seconds / 2


class BrokerSettings(BaseModel):
    """RabbitMQ (scale mode): names, deadlines, prefetch and the publisher-confirm window."""

    namespace: str = Field(default="knooppunt", pattern=r"^[A-Za-z0-9_.-]{1,80}$")
    # broker messages in hand per partner queue and worker (each carries up to jobs_per_message
    # jobs): enough that a load one worker can carry stays on one worker (large batches of claims
    # and records); the partner client's connections bound the calls under way (at most 64 to one
    # partner, 256 in all: the rest wait for one, see hub/http.py)
    prefetch: int = Field(default=64, ge=1, le=1000)
    # the jobs of one partner published together travel as one broker message of up to this many
    # (the broker's and pika's work is per message: one publish, confirm, delivery and ack for all)
    jobs_per_message: int = Field(default=32, ge=1, le=1000)
    # Workers consume with consumer priorities (a random one each): the broker fills one worker's
    # prefetch window before the next gets a job, so a load one worker can carry is not split into
    # small batches over all of them; off = round robin over the workers.
    fill_first: bool = True
    confirm_window: int = Field(default=1000, ge=1)
    timeout_seconds: float = Field(default=10.0, gt=0)
    heartbeat_seconds: int = Field(default=10, ge=1)
    reconnect_seconds: float = Field(default=1.0, gt=0)
    delivery_limit: int = Field(default=20, ge=1)


class StoreSettings(BaseModel):
    """Group commit of the single writer."""

    batch_max: int = Field(default=256, ge=1)
    #: under sustained load a unit waits this long for others to share its transaction (0: never);
    #: unset: 2 ms on SQLite, 8 ms on PostgreSQL (see ``Settings.writer_linger_seconds``)
    linger_ms: float | None = Field(default=None, ge=0, le=50)
    switch_interval_ms: float = Field(default=5.0, gt=0, le=10)
    statement_timeout_ms: int = Field(default=5000, ge=100)


class TLSSettings(BaseModel):
    """HTTPS with partner client certificates (mutual TLS); off while ``certfile`` is unset."""

    certfile: Path | None = None
    keyfile: Path | None = None
    ca_certs: Path | None = Field(default=None, description="CA bundle that partner certificates must chain to")
    client_cert: Literal["none", "optional", "required"] = "optional"
    # SHA-256 fingerprint (hex, colons allowed) of a partner certificate -> partner id, for
    # certificates that carry neither an OIN nor a KBO number.
    fingerprints: dict[str, str] = Field(default_factory=dict)
    # CRLs (PEM or DER) of the CAs in ca_certs, one for each: revoked partner certificates are
    # refused at the handshake (hub/revocation.py). Read again when they change.
    crl_files: list[Path] = Field(default_factory=list)
    crl_refresh_seconds: float = Field(default=300.0, ge=1.0)

    @property
    def enabled(self) -> bool:
        return self.certfile is not None


class OutboundTLSProfile(BaseModel):
    """Two-way TLS to partners (MAGDA, Digikoppeling): the hub's client certificate and the CAs (and
    their CRLs) trusted for the partner's server certificate. A partner picks one with its adapter
    config key ``tls_profile``; ``default`` serves every partner that names none (hub/tls.py)."""

    # PEM: the hub's certificate, then the intermediates the partner needs to build the chain
    client_cert: Path | None = None
    client_key: Path | None = None  # unset: the key is in client_cert
    client_key_password_file: Path | None = None  # for an encrypted key
    # CA bundle (PEM) trusted for the partner's server certificate: it REPLACES certifi's list
    ca_certs: Path | None = None
    # CRLs (PEM or DER) of the CAs in ca_certs, one for each: a revoked server certificate is refused
    crl_files: list[Path] = Field(default_factory=list)
    crl_refresh_seconds: float = Field(default=300.0, ge=1.0)


class OAuthSettings(BaseModel):
    """OAuth2 client credentials: the signing key of the access tokens and the keys still accepted."""

    signing_key: str | None = Field(default=None, description="PEM private key (Ed25519) that signs new tokens")
    signing_key_file: Path | None = None
    verification_keys: list[str] = Field(default_factory=list, description="PEM keys of earlier signing keys")
    verification_key_files: list[Path] = Field(default_factory=list)
    token_ttl_seconds: int = Field(default=300, ge=30, le=3600)
    # the tokens' iss (and, + "/v1", aud); defaults to public_url. Every instance behind one
    # address must share it so a token from one instance is good at all of them.
    issuer: str | None = None

    @model_validator(mode="after")
    def _read_key_files(self) -> OAuthSettings:
        if self.signing_key_file is not None:
            if self.signing_key is not None:
                raise ConfigurationError("set oauth signing_key or signing_key_file, not both")
            self.signing_key = _read_secret(self.signing_key_file)
        self.verification_keys = [*self.verification_keys, *(_read_secret(f) for f in self.verification_key_files)]
        return self


class LimitSettings(BaseModel):
    """Per-partner request rates (token bucket) and body sizes; overrides per partner id."""

    requests_per_second: float = Field(default=100.0, gt=0)
    burst: int = Field(default=200, ge=1)
    partner_requests_per_second: dict[str, float] = Field(default_factory=dict)
    partner_burst: dict[str, int] = Field(default_factory=dict)
    partner_max_body_bytes: dict[str, int] = Field(default_factory=dict)
    # failed authentications per client address (each one is audited, so it is bounded)
    anonymous_per_second: float = Field(default=5.0, gt=0)
    anonymous_burst: int = Field(default=20, ge=1)
    # several API processes take a partner's tokens from one shared bucket: on PostgreSQL a row
    # (hub/store/buckets.py), under `knooppunt run --processes N` a slot of bucket_file (hub/limits.py);
    # off: each process keeps its own (a partner may then send N times its rate)
    shared: bool = True
    bucket_file: Path | None = None  # set by `knooppunt run --processes N` for its processes


def _read_secret(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigurationError(f"secret file {path} cannot be read: {exc.strerror}") from exc


class OidcSettings(BaseModel):
    """The citizen's OpenID Connect provider (FAS/CSAM for eID and itsme, DigiD through a broker).

    Endpoints come from ``issuer``/.well-known/openid-configuration unless given.
    """

    issuer: str
    client_id: str
    client_secret: str = ""
    scope: str = "openid"
    subject_claim: str = Field(default="sub", description="The claim holding the national number, e.g. egovNRN or bsn")
    subject_type: Literal["INSZ", "BSN"] = "INSZ"
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    jwks_uri: str | None = None


class PortalSettings(BaseModel):
    """The upload portal of plateau-1 partners."""

    max_upload_bytes: int = Field(default=5_242_880, ge=1024)
    max_upload_rows: int = Field(default=5000, ge=1)
    session_hours: float = Field(default=8.0, gt=0)
    session_idle_minutes: float = Field(default=30.0, gt=0)
    upload_wait_seconds: float = Field(default=5.0, ge=0)
    # e-mail that something arrived in a plateau-1 inbox: off unless smtp_host is set
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "knooppunt@localhost"
    notify_interval_seconds: float = Field(default=900.0, ge=0)


class Settings(BaseSettings):
    """The hub's configuration."""

    model_config = SettingsConfigDict(env_prefix="KNOOPPUNT_", env_nested_delimiter="__", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str = f"sqlite:///{ROOT / 'var' / 'knooppunt.db'}"
    transport: Literal["memory", "rabbitmq"] = "memory"
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"

    schemas_dir: Path = ROOT / "schemas"
    protocols_dir: Path = ROOT / "protocols"
    routing_file: Path = ROOT / "config" / "routing.yaml"
    partners_file: Path | None = None

    public_url: str = "http://127.0.0.1:8000"
    payload_key: str = DEV_PAYLOAD_KEY
    payload_old_keys: list[str] = Field(default_factory=list)
    audit_hmac_key: str = DEV_AUDIT_KEY
    # Secrets may come from files instead (Docker/Kubernetes secrets): one key per file,
    # old payload keys one per line.
    payload_key_file: Path | None = None
    payload_old_keys_file: Path | None = None
    audit_hmac_key_file: Path | None = None
    audit_signing_key_file: Path | None = None

    tls: TLSSettings = Field(default_factory=TLSSettings)
    # outgoing TLS profiles by name (KNOOPPUNT_OUTBOUND_TLS__<NAME>__CLIENT_CERT, ...); see hub/tls.py
    outbound_tls: dict[str, OutboundTLSProfile] = Field(default_factory=dict)
    oauth: OAuthSettings = Field(default_factory=OAuthSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS; none by default")
    # Static bearer tokens (API keys) on the API; None = only in development and test.
    # Outside those, the token is only the client secret at the OAuth2 token endpoint.
    api_keys: bool | None = None

    # Ed25519 private seed (base64 of 32 bytes) that signs audit checkpoints,
    # and the log's name (the checkpoint origin line and the signer's key name).
    audit_signing_key: str = DEV_SIGNING_KEY
    audit_origin: str = "knooppunt.local/audit"
    audit_checkpoint_seconds: float = Field(default=300.0, gt=0)

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_xml_depth: int = Field(default=64, ge=8)
    insz_test_numbers: bool = False
    magda_url: str | None = None
    run_workers: bool = True
    # `knooppunt run`: processes serving the API on one port (embedded default; see docs/architecture.md)
    api_processes: int = Field(default=1, ge=1, le=64)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    opentelemetry: bool = Field(
        default=False,
        description="FastAPI's native OpenTelemetry spans, metrics and logs per request (off: /metrics and the"
        " audit trace ids cover operations, and the no-op providers still cost CPU on every request)",
    )
    # the inburgeraar's own view (/mijn-dossier): which identity step (hub/identity.py)
    # ("auto": the development login outside production, off in production)
    citizen_login: Literal["auto", "off", "development", "oidc"] = "auto"
    citizen_oidc: OidcSettings | None = None
    # how stale the running hub's view of the partner configuration may get (plateau moves)
    partners_refresh_seconds: float = Field(default=5.0, ge=0)

    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    portal: PortalSettings = Field(default_factory=PortalSettings)

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name in ("payload_key", "audit_hmac_key", "audit_signing_key", "payload_old_keys"):
            path = data.get(f"{name}_file")
            if path is None:
                continue
            if data.get(name) not in (None, "", []):
                raise ConfigurationError(f"set {name} or {name}_file, not both")
            text = _read_secret(Path(path))
            data[name] = text.split() if name == "payload_old_keys" else text
        return data

    @field_validator("payload_key", "audit_hmac_key", "audit_signing_key")
    @classmethod
    def _key_is_32_bytes(cls, value: str) -> str:
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError as exc:
            raise ValueError("key must be base64") from exc
        if len(raw) != 32:
            raise ValueError("key must be 32 bytes (base64 of 32 random bytes)")
        return value

    @model_validator(mode="after")
    def _no_placeholder_secrets_outside_development(self) -> Settings:
        # Only "development" may run on the published development keys: a "test" or
        # "production" hub that forgot its keys must not start and encrypt real data with them.
        if self.env != "development" and (
            self.payload_key in (DEV_PAYLOAD_KEY, DEV_AUDIT_KEY)
            or self.audit_hmac_key in (DEV_PAYLOAD_KEY, DEV_AUDIT_KEY)
            or DEV_PAYLOAD_KEY in self.payload_old_keys
            or self.audit_signing_key == DEV_SIGNING_KEY
        ):
            raise ConfigurationError(
                "KNOOPPUNT_PAYLOAD_KEY, KNOOPPUNT_AUDIT_HMAC_KEY and KNOOPPUNT_AUDIT_SIGNING_KEY must be set "
                f"(env {self.env}): the development keys are public"
            )
        if self.payload_key == self.audit_hmac_key and self.env != "development":
            raise ConfigurationError("KNOOPPUNT_PAYLOAD_KEY and KNOOPPUNT_AUDIT_HMAC_KEY must differ")
        if self.tls.enabled and self.tls.client_cert != "none" and self.tls.ca_certs is None:
            raise ConfigurationError("KNOOPPUNT_TLS__CA_CERTS is needed to verify partner certificates")
        if self.tls.crl_files and (not self.tls.enabled or self.tls.ca_certs is None or self.tls.client_cert == "none"):
            raise ConfigurationError(
                "KNOOPPUNT_TLS__CRL_FILES checks partner certificates: it needs KNOOPPUNT_TLS__CERTFILE, "
                "KNOOPPUNT_TLS__CA_CERTS and client certificates (KNOOPPUNT_TLS__CLIENT_CERT optional or required)"
            )
        if "*" in self.cors_origins:
            raise ConfigurationError("CORS: name the published origins, a wildcard is not allowed")
        return self

    @model_validator(mode="after")
    def _whole_outbound_tls_profiles(self) -> Settings:
        # the files themselves are read when the hub starts (hub.tls.OutboundTLS): a CLI command
        # that never calls a partner must not need them
        for name, profile in self.outbound_tls.items():
            env = f"KNOOPPUNT_OUTBOUND_TLS__{name.upper()}"
            if not _PROFILE_NAME.fullmatch(name) or name == "none":
                raise ConfigurationError(
                    f"{env}: profile names are lower-case letters, digits, '-' and '_' ('none' is reserved: no profile)"
                )
            if profile.client_cert is None and profile.ca_certs is None:
                raise ConfigurationError(f"{env}: set __CLIENT_CERT and/or __CA_CERTS, the profile sets nothing")
            if profile.client_cert is None and (profile.client_key or profile.client_key_password_file):
                raise ConfigurationError(f"{env}__CLIENT_KEY is set but __CLIENT_CERT is not")
            if profile.crl_files and profile.ca_certs is None:
                raise ConfigurationError(
                    f"{env}__CRL_FILES checks the partner's server certificate against __CA_CERTS: set it"
                )
        return self

    @model_validator(mode="after")
    def _no_development_login_in_production(self) -> Settings:
        if self.env == "production" and self.citizen_login == "development":
            raise ConfigurationError("KNOOPPUNT_CITIZEN_LOGIN=development is refused in production")
        if self.citizen_login == "oidc" and self.citizen_oidc is None:
            raise ConfigurationError(
                "KNOOPPUNT_CITIZEN_LOGIN=oidc needs KNOOPPUNT_CITIZEN_OIDC__ISSUER and __CLIENT_ID"
            )
        return self

    @property
    def citizen_login_provider(self) -> str:
        if self.citizen_login == "auto":
            return "off" if self.env == "production" else "development"
        return self.citizen_login

    @property
    def api_keys_allowed(self) -> bool:
        """Static bearer tokens work on the API only in development and test unless configured."""
        return self.api_keys if self.api_keys is not None else self.env != "production"

    @property
    def payload_key_bytes(self) -> bytes:
        return base64.b64decode(self.payload_key)

    @property
    def audit_key_bytes(self) -> bytes:
        return base64.b64decode(self.audit_hmac_key)

    @property
    def audit_signing_seed(self) -> bytes:
        return base64.b64decode(self.audit_signing_key)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def writer_linger_seconds(self) -> float:
        """How long a unit that finds the writer busy waits for company (``store.linger_ms``).

        Unset, it depends on the database. SQLite: 2 ms; a batch costs an fsync and GIL
        hand-overs, and longer waits only add latency. PostgreSQL: 8 ms; a batch costs about
        a dozen round trips whatever its size, so with 2 ms batches held about 3 messages and
        the API process spent a third more CPU per message (docs/performance.md, "Scale mode").
        """
        if self.store.linger_ms is not None:
            return self.store.linger_ms / 1000
        return 0.002 if self.is_sqlite else 0.008
