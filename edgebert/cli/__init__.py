"""The ``edgebert`` command line: a thin Click layer over the library.

Commands parse options, call one library function and print the result. Heavy libraries (torch,
transformers) are imported inside command bodies so ``edgebert --help`` is instant. Library errors
(:class:`edgebert.errors.EdgebertError`) become one clear message and a non-zero exit code, never a
traceback.
"""

from edgebert.cli.main import main

__all__ = ["main"]
