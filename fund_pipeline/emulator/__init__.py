"""Local exchange emulator: the venues' REST and WebSocket formats served from the simulated market."""
