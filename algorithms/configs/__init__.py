"""The Hydra configs of the command line (``supernet-train``, ``python train.py``), shipped inside the
package so that an installed CLI finds them: ``config.yaml`` and one folder per config group."""
