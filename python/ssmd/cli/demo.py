"""`ssmd normalize`: run the normalizer over a capture and print the records."""

import typer

app = typer.Typer()


@app.command()
def normalize() -> None:
    """Normalize Kalshi frames and print the records."""
    raise typer.Exit(1)
