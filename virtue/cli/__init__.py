"""The `virtue` command: one thin module per command group."""
