"""The ``yuedu`` command line.

Each layer contributes its own sub-commands from a module in this package; every module exposes
``register(app, data_app)``. Heavy imports (models, MLflow, FastAPI) happen inside the commands so
that ``yuedu --help`` stays instant. Errors are reported in one format by the root group
(:mod:`serving.cli.errors`): a command raises a ``YueduError`` or calls ``fail``.
"""

from __future__ import annotations

import importlib
import logging
import os

import typer

from serving.cli.errors import ErrorMappingGroup

app = typer.Typer(
    name="yuedu",
    cls=ErrorMappingGroup,
    help="yuedu (悦读): reading-promotion recommendations and 'you choose, I buy' acquisition.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Data: synthesise, ingest, adapt public data sets, describe.", no_args_is_help=True)
app.add_typer(data_app, name="data")

#: Modules contributing commands, in help order.
COMMAND_MODULES = (
    "serving.cli.data_synth",
    "serving.cli.data_ingest",
    "serving.cli.data_public",
    "serving.cli.recsys_cmds",
    "serving.cli.nightly_cmds",
    "serving.cli.simulate_cmds",
    "serving.cli.counter_cmds",
    "serving.cli.acquisition_cmds",
    "serving.cli.demand_check_cmds",
    "serving.cli.funds_cmds",
    "serving.cli.whatif_cmds",
    "serving.cli.notices_cmds",
    "serving.cli.training_cmds",
    "serving.cli.serve_cmds",
    "serving.cli.bench_cmds",
    "serving.cli.demo",
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else getattr(logging, os.environ.get("YUEDU_LOG_LEVEL", "WARNING")),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app, data_app)


def main() -> None:
    app()
