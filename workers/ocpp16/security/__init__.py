"""The Security Whitepaper ed.2 for ocpp16: security profiles 0-3 (how a connection is opened),
the CA certificates the CSMS installs, the station's own key and certificate, and the security
log. `Security` (feature.py) is `ctx.security`; the other modules each do one job for it."""
