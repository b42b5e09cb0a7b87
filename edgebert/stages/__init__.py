"""Pipeline stages: one module per stage kind (its config, its function and its declarations).

The registry (:mod:`edgebert.stages.registry`) finds them by importing every module here; modules
whose names start with ``_`` hold helpers shared by several stages.
"""
