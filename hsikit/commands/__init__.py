"""Task commands of the ``hsikit`` CLI, one module per task.

A module here defines ``register(app: typer.Typer) -> None`` that adds its command(s) with
``app.command()``; :mod:`hsikit.cli` discovers the modules. Commands parse options, call the task's
``api`` function and print; they hold no logic of their own. Errors are raised as
:class:`hsikit.errors.HsikitError` subclasses and turned into one line + exit 2 by ``hsikit.cli.main``.
"""
