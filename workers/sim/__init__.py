"""The simulator: every station device on the same wire protocols as the real ones
(Modbus TCP servers, an EM4100 reader on a pseudo-terminal), plus simulated EVs.
`workers/sim/csms.py` (a development CSMS) lives here too but is its own program."""
