"""Smart Charging (OCPP 1.6 §3.13): charging profiles stored and stacked, the composite
schedule, and its present value on the bus as the limits smartw obeys.

model.py (typed profiles) -> validation.py (may it be installed) -> profiles.py (installed,
persisted, tied to transactions) -> schedule.py (pure composite) -> composite.py
(GetCompositeSchedule's answer) and publisher.py (contract.OCPP_LIMIT keys); feature.py ties
them together for the handlers (handlers/smart_charging.py) and the service.
"""

from workers.ocpp16.smart_charging.feature import SmartCharging, scopes_of

__all__ = ["SmartCharging", "scopes_of"]
