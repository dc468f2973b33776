"""Who may call the exporter, and over what.

``tls`` serves with a certificate that is re-read when it changes; ``auth`` checks every
caller with the API server (TokenReview, SubjectAccessReview); ``front_proxy`` trusts the
aggregation layer's client certificate as the cluster says.
"""

from exporter.security.auth import AuthApi, auth_middleware
from exporter.security.tls import TLSConfigError, ssl_context

__all__ = ["AuthApi", "TLSConfigError", "auth_middleware", "ssl_context"]
