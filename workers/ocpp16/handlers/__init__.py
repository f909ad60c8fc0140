"""Handlers for the CALLs a CSMS sends, one mixin per feature profile; `StationChargePoint`
(protocol.py) combines them. Each handler answers from `self.ctx` (context.py) and never
calls the CSMS itself: follow-up CALLs go through `ctx.notices` from an `@after` hook."""
