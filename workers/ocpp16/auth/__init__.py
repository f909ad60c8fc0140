"""Authorization of idTags (OCPP 1.6 §3.5, §4.1, §5.4, §5.10, §5.15; errata 3.58-3.74).

`authorizer.Authorizer` answers the bus command contract.AUTHORIZE and every question the
handlers ask about idTags; it decides with the pure rules of `rules.py` over two persisted
stores: the local authorization list the CSMS manages (`local_list.py`) and the cache of the
CSMS's own answers (`cache.py`). `invalid_id.py` acts on a StartTransaction.conf that refuses
the idTag of a running transaction; `remote_start.py` runs the Authorize a RemoteStart needs
after its answer has left.
"""
