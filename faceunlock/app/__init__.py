"""Application services between the engine and the front ends (CLI, UI): no Qt, no torch."""
