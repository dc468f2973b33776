"""Who may call the exporter, and over what.

``tls`` serves with a certificate that is re-read when it changes; ``auth`` checks every
caller with the API server (TokenReview, SubjectAccessReview); ``front_proxy`` trusts the
aggregation layer's client certificate as the cluster says.
"""

from exporter.security.auth import AuthApi, AuthPolicy, auth_middleware
from exporter.security.front_proxy import ClusterRequestHeader, FileRequestHeader
from exporter.security.tls import ServerContext, TLSConfigError, server_context

__all__ = [
    "AuthApi",
    "AuthPolicy",
    "ClusterRequestHeader",
    "FileRequestHeader",
    "ServerContext",
    "TLSConfigError",
    "auth_middleware",
    "server_context",
]
