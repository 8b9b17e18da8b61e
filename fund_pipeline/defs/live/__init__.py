"""Live curve: snapshots landed by the collector, materialised per funding window by a sensor."""
