"""The long-running live path: the WebSocket collector and the landing zone it writes."""
