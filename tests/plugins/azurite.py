"""Azurite (Azure Blob emulator) for the tests: filled in by the Blob backend work."""
