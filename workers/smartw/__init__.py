"""smartw: connector state machines, contactors, controllers and power sharing."""
