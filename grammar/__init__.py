"""The Lark grammar of the .smash language, shipped as package data (``smash.lark``)."""
