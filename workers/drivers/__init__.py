"""Device drivers: the station side of every wire protocol (Modbus through pymodbus, serial
through pyserial). A driver has one typed snapshot per cadence and raises one domain error,
`DeviceError`, whatever the library or the OS reported (STYLE habits 5-7).

The simulator (workers/sim) serves the same protocols, so these drivers cannot tell it from
hardware; nothing here knows whether it talks to a simulator.
"""
