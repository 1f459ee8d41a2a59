"""Exported models: `cnnrecon export` writes them (`writer`), `load` runs them.

Importing this package pulls in jax and numpy only, so `load` runs an exported
StableHLO model where the model code cannot be imported; `writer` and the
`params` form import the models when they are used.
"""

from cnnrecon.export.loader import ExportedModel, load, verify

__all__ = ['ExportedModel', 'load', 'verify']
