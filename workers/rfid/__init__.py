"""The `rfid` service: reads the card reader, publishes each card presentation once."""
