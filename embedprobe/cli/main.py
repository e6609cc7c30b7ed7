"""The ``embedprobe`` command. Each sub-command lives in its own module of this package."""

from __future__ import annotations

import sys

try:  # Ctrl-C while the modules load (the first ~0.3 s) ends like any other interruption
    import typer

    from embedprobe import __version__
    from embedprobe.cli import acoustics, bench, domain, extract, info, listing, probe, report
except KeyboardInterrupt:
    sys.stderr.write("interrupted: nothing was done; run the same command again.\n")
    raise SystemExit(130) from None

app = typer.Typer(
    name="embedprobe",
    help="How much emotion does a frozen audio embedding carry, and does it survive a change of corpus?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"embedprobe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """embedprobe: extract embeddings once, probe them across corpora, report."""


for module in (listing, extract, info, probe, report, acoustics, domain, bench):
    module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
