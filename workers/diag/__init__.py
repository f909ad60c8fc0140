"""The diag service: self-tests of every configured device and service, judged from what
their owners publish on the bus, and the log-folder rotation."""
