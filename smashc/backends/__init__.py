"""Backends: pure functions of the IR to artefacts (fx modules, c-tensor encodings, diagrams)."""
