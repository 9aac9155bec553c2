"""Kafka security settings: checked before anything connects, and connection failures named.

kafka-python reports a refused password or an untrusted broker certificate only as
`KafkaTimeoutError: Unable to bootstrap` once its bootstrap timeout has passed; the cause is
only logged by `kafka.net.manager`. `named_bootstrap_failures()` listens to that logger while a
client bootstraps and raises an error that says what was refused and which setting to check.
No message here ever contains the password.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from kafka.errors import KafkaTimeoutError, SaslAuthenticationFailedError

from fin_assets.lib.settings import KAFKA_SASL_MECHANISMS, KAFKA_SECURITY_PROTOCOLS

# One list, in fin_assets/lib/settings.py, for the variables and for the resource's fields.
SECURITY_PROTOCOLS = KAFKA_SECURITY_PROTOCOLS
SASL_MECHANISMS = KAFKA_SASL_MECHANISMS

# kafka-python 3 logs each failed bootstrap attempt here, with the exception as an argument.
_BOOTSTRAP_LOGGER = "kafka.net.manager"
# ... and here, at DEBUG, every admin client's configuration, password included.
_ADMIN_LOGGER = "kafka.admin.client"
_SECRET_SETTINGS = ("sasl_plain_password", "ssl_password", "sasl_oauth_token_provider")


class KafkaSecurityConfigError(ValueError):
    """The security settings cannot work (unknown protocol, missing password, no CA file)."""


class KafkaAuthenticationError(KafkaTimeoutError):
    """The brokers refused the SASL credentials. A KafkaTimeoutError subclass so that callers
    that retry unreachable brokers retry this too (a password may be fixed on the broker)."""


def check_security_settings(
    security_protocol: str,
    sasl_mechanism: str | None,
    sasl_username: str | None,
    sasl_password: str | None,
    ssl_cafile: str | None,
) -> None:
    """Raises KafkaSecurityConfigError naming the variable at fault; silent when usable."""
    if security_protocol not in SECURITY_PROTOCOLS:
        raise KafkaSecurityConfigError(
            f"KAFKA_SECURITY_PROTOCOL={security_protocol!r} is not one of"
            f" {', '.join(SECURITY_PROTOCOLS)}"
        )
    uses_sasl = security_protocol.startswith("SASL_")
    if uses_sasl:
        if sasl_mechanism not in SASL_MECHANISMS:
            raise KafkaSecurityConfigError(
                f"KAFKA_SASL_MECHANISM={sasl_mechanism!r} is not one of"
                f" {', '.join(SASL_MECHANISMS)} (required with {security_protocol})"
            )
        missing = [
            name
            for name, value in (
                ("KAFKA_SASL_USERNAME", sasl_username),
                ("KAFKA_SASL_PASSWORD", sasl_password),
            )
            if not value
        ]
        if missing:
            raise KafkaSecurityConfigError(
                f"{' and '.join(missing)} must be set with"
                f" KAFKA_SECURITY_PROTOCOL={security_protocol}"
            )
    elif sasl_mechanism or sasl_username or sasl_password:
        # Credentials that would silently not be sent are a misconfiguration, not a default.
        raise KafkaSecurityConfigError(
            f"SASL credentials are set but KAFKA_SECURITY_PROTOCOL={security_protocol} sends"
            " none: use SASL_SSL (or SASL_PLAINTEXT)"
        )
    if ssl_cafile:
        if not security_protocol.endswith("SSL"):
            raise KafkaSecurityConfigError(
                f"KAFKA_SSL_CAFILE is set but KAFKA_SECURITY_PROTOCOL={security_protocol}"
                " does not use TLS: use SSL or SASL_SSL"
            )
        if not os.access(ssl_cafile, os.R_OK):
            raise KafkaSecurityConfigError(f"KAFKA_SSL_CAFILE={ssl_cafile}: no such readable file")


class _RedactSecretSettings(logging.Filter):
    """Masks secret values in kafka-python's logged configuration dicts, so that DEBUG logs
    of the `kafka` loggers (e.g. captured by Dagster's managed Python loggers) hold none."""

    def filter(self, record: logging.LogRecord) -> bool:
        # A lone dict argument becomes record.args itself (logging's %(name)s support).
        if isinstance(record.args, dict):
            record.args = _redacted(record.args)
        elif isinstance(record.args, tuple):
            record.args = tuple(_redacted(arg) for arg in record.args)
        return True


def _redacted(value: object) -> object:
    if not isinstance(value, dict):
        return value
    return {k: ("***" if k in _SECRET_SETTINGS and v else v) for k, v in value.items()}


def install_log_redaction() -> None:
    """Idempotent: one filter on the logger that prints admin client configurations."""
    logger = logging.getLogger(_ADMIN_LOGGER)
    if not any(isinstance(f, _RedactSecretSettings) for f in logger.filters):
        logger.addFilter(_RedactSecretSettings())


install_log_redaction()


class _BootstrapFailureRecorder(logging.Handler):
    """Keeps the most telling exceptions of the failed bootstrap attempts: a refused
    authentication or certificate wins over the disconnects that follow it."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.authentication: BaseException | None = None
        self.certificate: BaseException | None = None
        self.last: BaseException | None = None

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, SaslAuthenticationFailedError):
                self.authentication = arg
            elif isinstance(arg, KafkaTimeoutError):
                continue  # the final "Bootstrap failed" record: the outcome, not a cause
            elif isinstance(arg, Exception):
                if "CERTIFICATE_VERIFY_FAILED" in str(arg):
                    self.certificate = arg
                self.last = arg


def describe_failure(
    exc: KafkaTimeoutError,
    recorder: _BootstrapFailureRecorder,
    bootstrap_servers: str,
    security_protocol: str,
    sasl_mechanism: str | None,
    sasl_username: str | None,
) -> KafkaTimeoutError:
    """The error to raise instead of kafka-python's bare bootstrap timeout."""
    if recorder.authentication is not None:
        return KafkaAuthenticationError(
            f"Kafka at {bootstrap_servers} refused the SASL {sasl_mechanism} credentials of"
            f" user {sasl_username!r} ({recorder.authentication}); check KAFKA_SASL_USERNAME"
            " and KAFKA_SASL_PASSWORD"
        )
    if recorder.certificate is not None:
        return KafkaTimeoutError(
            f"{exc}: the brokers' TLS certificate is not trusted ({recorder.certificate});"
            " check KAFKA_SSL_CAFILE"
        )
    last = recorder.last
    if last is not None:
        return KafkaTimeoutError(f"{exc} over {security_protocol}; last connection error: {last}")
    return exc


@contextmanager
def named_bootstrap_failures(
    bootstrap_servers: str,
    security_protocol: str,
    sasl_mechanism: str | None,
    sasl_username: str | None,
) -> Iterator[None]:
    """Around a kafka-python client constructor: its bootstrap timeout becomes an error that
    names the cause. The logger is process-wide, so a concurrent client's failures could be
    recorded too; the simulator bootstraps one client at a time."""
    recorder = _BootstrapFailureRecorder()
    logger = logging.getLogger(_BOOTSTRAP_LOGGER)
    logger.addHandler(recorder)
    try:
        yield
    except KafkaTimeoutError as exc:
        named = describe_failure(
            exc, recorder, bootstrap_servers, security_protocol, sasl_mechanism, sasl_username
        )
        if named is exc:
            raise
        raise named from None
    finally:
        logger.removeHandler(recorder)
