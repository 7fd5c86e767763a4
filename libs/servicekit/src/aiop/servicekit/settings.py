from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Settings every service reads from ``AIOP_*`` environment variables; a field's name
    carries its unit (``_s`` seconds, ``_bytes``).

    A service adds its own fields by subclassing; ``aiop up`` and docker-compose set them.
    """

    model_config = SettingsConfigDict(env_prefix="AIOP_", extra="ignore")

    nats_url: str = "nats://127.0.0.1:4222"
    # The service's NATS identity: an nkey seed file (0600). None connects anonymously,
    # which only a server without authorization accepts (docs/security.md, "The bus").
    nats_seed_file: Path | None = None
    # The CA that signed the NATS servers' certificates, for a tls:// URL (docker-compose,
    # Kubernetes). None uses the system's trust store.
    nats_ca_file: Path | None = None
    # Create or update AIOP's streams at start. Off where an operator set them up and the
    # service's identity may not (`aiop up` does it before starting the services).
    create_streams: bool = True
    # Where the embedded stack's span exporter writes JSON lines that `aiop trace` reads.
    trace_dir: Path | None = None
    log_level: str = "INFO"
    # 1 on one machine, 3 in a cluster (docs/delivery.md, "Durable storage").
    stream_replicas: int = 1
    # How long in-flight handlers get to finish at shutdown before they are cancelled.
    stop_grace_s: float = 10.0
