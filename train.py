"""``python train.py <overrides>`` in the checkout: the same command line as the installed ``supernet-train``
(``algorithms/cli.py``; the configs are in ``algorithms/configs``)."""

from algorithms.cli import cli

if __name__ == "__main__":
    cli()
