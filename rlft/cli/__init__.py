"""The ``rlft`` command line (:func:`rlft.cli.main.main`): one command list, one module per group of commands."""
