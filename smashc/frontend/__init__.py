"""Front end: .smash text to AST, canonical printing, and template/loop expansion."""
