"""Backends: pure functions of the IR to artefacts (fx GraphModules, c-tensor encodings, diagrams)."""
