"""MarketSource implementations: simulated (default), files (exports), ccxt (real venues or the emulator)."""
