"""Launchers: the `hiresgan` command line, local ranks through torch's elastic agent, and (later)
SLURM and DeepSpeed hostfile command builders. Nothing imports this package."""
