"""Compiler passes over the graph IR (filled in by the IR issue)."""
