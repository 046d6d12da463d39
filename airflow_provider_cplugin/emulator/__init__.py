"""Local emulator of the CPlugin Cloud WebAPI."""
