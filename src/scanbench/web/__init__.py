"""The web application of issue 12: accounts, per-site access, the audit chain and the
JSON API. Everything that changes state goes through one service function that also
writes the audit entry (:mod:`scanbench.web.audit`); every read of site data goes
through :class:`scanbench.web.scope.Scope`, which cannot be built without the
caller's grants."""
