"""Thin typer commands: parse -> config -> one library call -> print."""
